"""The sentence polarity dataset v1.0 (Pang and Lee, 2005): short movie-review snippets.

5,331 positive and 5,331 negative snippets of about 20 words, the length of text
users often send. Evaluation data only: the models never train on it.
Sources: the tarball ``rt-polaritydata.tar.gz`` (or any tarball with its
``rt-polaritydata/rt-polarity.{pos,neg}`` files), the extracted folder, or, when
none is given, the official download.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.dataset import DatasetError
from training.download import RemoteFile, fetch

# Its publisher gives no checksum.
OFFICIAL = RemoteFile(
    url="https://www.cs.cornell.edu/people/pabo/movie-review-data/rt-polaritydata.tar.gz",
    name="rt-polaritydata.tar.gz",
)
_FILES = {"rt-polarity.pos": 1, "rt-polarity.neg": 0}


@dataclass(frozen=True)
class Snippets:
    texts: list[str]
    labels: list[int]  # 1 = positive, 0 = negative

    def __len__(self) -> int:
        return len(self.texts)

    def label_array(self) -> np.ndarray:
        return np.asarray(self.labels, dtype=np.float32)


def load_snippets(source: Path | None = None) -> Snippets:
    """Both polarity files, positive first, one snippet per line."""
    source = source if source is not None else fetch(OFFICIAL)
    if not source.exists():
        raise DatasetError(f"{source}: no such file or directory (expected rt-polarity tarball or folder)")
    try:
        contents = _read_directory(source) if source.is_dir() else _read_tarball(source)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise DatasetError(f"{source}: cannot read the snippets ({error})") from error
    missing = sorted(set(_FILES) - set(contents))
    if missing:
        raise DatasetError(f"{source}: {', '.join(missing)} not found (expected rt-polaritydata/rt-polarity.pos/.neg)")
    texts: list[str] = []
    labels: list[int] = []
    for name, label in _FILES.items():
        lines = [line.strip() for line in _decode(contents[name]).splitlines()]
        kept = [line for line in lines if line]
        texts += kept
        labels += [label] * len(kept)
    return Snippets(texts, labels)


def _decode(raw: bytes) -> str:
    # The official files are Windows-1252; re-encoded copies are UTF-8.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def _read_tarball(path: Path) -> dict[str, bytes]:
    if not tarfile.is_tarfile(path):
        raise DatasetError(f"{path}: not a tar archive (expected rt-polaritydata.tar.gz or a folder)")
    found: dict[str, bytes] = {}
    with tarfile.open(path, mode="r|*") as archive:
        for member in archive:
            name = member.name.rsplit("/", 1)[-1]
            if member.isfile() and name in _FILES:
                handle = archive.extractfile(member)
                if handle is not None:
                    found[name] = handle.read()
    return found


def _read_directory(path: Path) -> dict[str, bytes]:
    return {
        file.name: file.read_bytes()
        for folder in (path, path / "rt-polaritydata")
        for file in (folder / name for name in _FILES)
        if file.is_file()
    }
