import filecmp
import subprocess
import sys

from harness.processes import ROOT


def test_committed_stubs_match_the_proto_files(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "proto" / "generate.py"), "--out", str(tmp_path)], check=True)
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*_pb2*.py*"))
    assert generated, "nothing generated"
    for relative in generated:
        committed = ROOT / "proto" / relative
        assert committed.is_file() and filecmp.cmp(committed, tmp_path / relative, shallow=False), (
            f"{committed} is stale: run `make protos`"
        )
