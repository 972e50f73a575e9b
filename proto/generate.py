"""Generate the Python modules for every .proto under proto/ (committed beside them).

    python proto/generate.py            # rewrite proto/**/*_pb2*.py(i)
    python proto/generate.py --out DIR  # write elsewhere (the staleness test compares)

gRPC service stubs are generated only for files that declare a service.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent
WELL_KNOWN_TYPES = Path(grpc_tools.__file__).parent / "_proto"


def generate(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for proto in sorted(PROTO_ROOT.rglob("*.proto")):
        has_service = any(line.startswith("service ") for line in proto.read_text().splitlines())
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{WELL_KNOWN_TYPES}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            *([f"--grpc_python_out={out}"] if has_service else []),
            str(proto),
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed on {proto}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=PROTO_ROOT)
    generate(parser.parse_args().out)
    sys.exit(0)
