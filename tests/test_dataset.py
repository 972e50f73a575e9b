import io
import subprocess
import sys
import tarfile

import pytest

from harness.processes import ROOT
from training.dataset import DatasetError, load_imdb

REVIEWS = {
    "aclImdb/train/pos/1_9.txt": "Great film<br />loved it",
    "aclImdb/train/pos/0_8.txt": "Wonderful",
    "aclImdb/train/neg/3_1.txt": "Awful",
    "aclImdb/test/pos/5_10.txt": "Superb",
    "aclImdb/test/neg/2_2.txt": "Boring",
    "aclImdb/train/unsup/9_0.txt": "not labeled: ignored",
    "aclImdb/README": "readme",
}


def write_tarball(path, files):
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def write_tree(root, files):
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_tarball_and_directory_give_the_same_dataset(tmp_path):
    from_tar = load_imdb(write_tarball(tmp_path / "imdb.tar.gz", REVIEWS))
    tree = write_tree(tmp_path / "tree", REVIEWS)
    for source in (tree, tree / "aclImdb"):
        assert load_imdb(source) == from_tar
    assert from_tar.train.texts == ["Awful", "Wonderful", "Great film<br />loved it"]
    assert from_tar.train.labels == [0, 1, 1]
    assert (len(from_tar.train), len(from_tar.test)) == (3, 2)


def test_shared_tarball_has_25k_reviews_per_split(shared_tarball):
    dataset = load_imdb(shared_tarball)
    assert (len(dataset.train), len(dataset.test)) == (25_000, 25_000)
    assert sum(dataset.train.labels) == 12_500 and sum(dataset.test.labels) == 12_500


def test_sample_is_seeded():
    from training.dataset import Split

    split = Split([str(i) for i in range(100)], [i % 2 for i in range(100)])
    assert split.sample(10, seed=1) == split.sample(10, seed=1)
    assert split.sample(10, seed=1) != split.sample(10, seed=2)
    assert split.sample(None, seed=1) is split


def test_hold_out_is_seeded_and_disjoint():
    from training.dataset import Split

    split = Split([str(i) for i in range(100)], [i % 2 for i in range(100)])
    rest, held_out = split.hold_out(0.2, seed=3)
    assert (len(rest), len(held_out)) == (80, 20)
    assert sorted(rest.texts + held_out.texts) == sorted(split.texts)
    assert all(split.labels[int(text)] == label for text, label in zip(held_out.texts, held_out.labels))
    assert split.hold_out(0.2, seed=3) == (rest, held_out) != split.hold_out(0.2, seed=4)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing.tar.gz", "no such file or directory"),
        (lambda p: (p / "notes.txt").write_text("hello") and p / "notes.txt", "not a tar archive"),
        (lambda p: (p / "empty_dir").mkdir() or p / "empty_dir", "no aclImdb/ folder"),
        (lambda p: write_tarball(p / "other.tar.gz", {"data/x.txt": "x"}), "train split is empty"),
        (
            lambda p: write_tarball(p / "notest.tar.gz", {"aclImdb/train/pos/1_9.txt": "x"}),
            "test split is empty",
        ),
    ],
)
def test_bad_sources_raise_a_clear_error(tmp_path, make, message):
    with pytest.raises(DatasetError, match=message):
        load_imdb(make(tmp_path))


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "training", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing", "no such file or directory"),
        (lambda p: (p / "bad.tar.gz").write_bytes(b"\x1f\x8b garbage") and p / "bad.tar.gz", "bad.tar.gz"),
        (lambda p: write_tarball(p / "layout.tar.gz", {"x/y.txt": "x"}), "split is empty"),
    ],
)
def test_cli_bad_data_exits_non_zero_with_one_line_and_writes_nothing(tmp_path, make, message):
    out = tmp_path / "out"
    result = run_cli("--data", str(make(tmp_path)), "--out", str(out))
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last
    assert not out.exists() or not any(out.iterdir())


def test_cli_unwritable_output_is_reported(tmp_path, shared_tarball):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_cli("--data", str(shared_tarball), "--out", str(blocker / "models"))
    assert result.returncode == 2
    assert "output folder is not writable" in result.stderr and str(blocker / "models") in result.stderr


def test_cli_without_data_or_network_says_how_to_give_a_local_copy(tmp_path):
    # The discard port: nothing listens, as on a machine without network.
    result = run_cli("--data-url", "http://127.0.0.1:9/aclImdb_v1.tar.gz", "--cache-dir", str(tmp_path / "cache"),
                     "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "cannot download http://127.0.0.1:9/aclImdb_v1.tar.gz" in result.stderr
    assert "make run DATA=" in result.stderr and "--data" in result.stderr
