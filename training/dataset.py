"""Reading the Large Movie Review Dataset in its original ``aclImdb/`` layout.

Sources: the official ``aclImdb_v1.tar.gz`` (downloaded and checksummed when no
path is given), any tarball with the same layout (read directly, never unpacked),
or an extracted directory (the ``aclImdb`` folder itself or its parent).
"""

from __future__ import annotations

import random
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.download import RemoteFile

OFFICIAL = RemoteFile(
    url="https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
    name="aclImdb_v1.tar.gz",
    md5="7c2ac02c03563afcf9b574c7e56c153a",
)

# aclImdb/<split>/<pos|neg>/<id>_<rating>.txt, optionally below a leading folder.
_REVIEW_PATH = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/(\d+)_\d+\.txt$")
SPLITS = ("train", "test")


class DatasetError(Exception):
    """The dataset source is missing or is not in the aclImdb layout."""


@dataclass(frozen=True)
class Split:
    texts: list[str]
    labels: list[int]  # 1 = positive, 0 = negative

    def __len__(self) -> int:
        return len(self.texts)

    def sample(self, limit: int | None, seed: int) -> Split:
        """A seeded random subset of at most ``limit`` reviews (all of them when None)."""
        if limit is None or limit >= len(self.texts):
            return self
        order = random.Random(seed).sample(range(len(self.texts)), limit)
        return self._take(order)

    def hold_out(self, fraction: float, seed: int) -> tuple[Split, Split]:
        """``(rest, held_out)``: a seeded shuffle, the last ``fraction`` of it (at least one review) held out."""
        order = [int(i) for i in np.random.default_rng(seed).permutation(len(self.texts))]
        held_out = max(1, int(round(len(order) * fraction)))
        return self._take(order[:-held_out]), self._take(order[-held_out:])

    def _take(self, order: list[int]) -> Split:
        return Split([self.texts[i] for i in order], [self.labels[i] for i in order])


@dataclass(frozen=True)
class ImdbDataset:
    train: Split
    test: Split


def load_imdb(source: Path) -> ImdbDataset:
    """Read both labeled splits from a tarball or a directory, in a stable order."""
    if not source.exists():
        raise DatasetError(f"{source}: no such file or directory (expected an aclImdb tarball or folder)")
    reviews = _read_directory(source) if source.is_dir() else _read_tarball(source)
    by_split: dict[str, list[tuple[int, int, str]]] = {split: [] for split in SPLITS}
    try:
        for split, label, review_id, text in reviews:
            by_split[split].append((label, review_id, text))
    except (tarfile.TarError, EOFError, OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{source}: cannot read the dataset ({error})") from error
    for split, items in by_split.items():
        if not items:
            raise DatasetError(
                f"{source}: the {split} split is empty "
                f"(expected aclImdb/{split}/pos/*.txt and aclImdb/{split}/neg/*.txt)"
            )
    return ImdbDataset(**{split: _to_split(items) for split, items in by_split.items()})


def _to_split(items: list[tuple[int, int, str]]) -> Split:
    # Sorting makes the order independent of how the archive or file system lists files.
    items.sort(key=lambda item: (item[0], item[1]))
    return Split([text for _, _, text in items], [label for label, _, _ in items])


def _parse(path: str) -> tuple[str, int, int] | None:
    match = _REVIEW_PATH.search(path)
    if match is None:
        return None
    split, polarity, review_id = match.groups()
    return split, int(polarity == "pos"), int(review_id)


def _read_tarball(path: Path) -> Iterator[tuple[str, int, int, str]]:
    if not tarfile.is_tarfile(path):
        raise DatasetError(f"{path}: not a tar archive (expected aclImdb_v1.tar.gz or a folder)")
    # Stream mode reads members in order without building an index of 100k entries.
    with tarfile.open(path, mode="r|*") as archive:
        for member in archive:
            parsed = _parse(member.name) if member.isfile() else None
            if parsed is None:
                continue
            handle = archive.extractfile(member)
            if handle is not None:
                yield (*parsed, handle.read().decode("utf-8"))


def _read_directory(path: Path) -> Iterator[tuple[str, int, int, str]]:
    root = path if path.name == "aclImdb" else path / "aclImdb"
    if not root.is_dir():
        raise DatasetError(f"{path}: no aclImdb/ folder (expected aclImdb/train and aclImdb/test)")
    for file in root.glob("*/*/*.txt"):
        parsed = _parse(file.relative_to(root.parent).as_posix())
        if parsed is not None:
            yield (*parsed, file.read_text(encoding="utf-8"))
