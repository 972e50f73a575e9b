"""python -m serving.predictions_log summary FILE... : what the sampled predictions say per version."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from serving.predictions_log.summary import report, summarize


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.predictions_log", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    summary = commands.add_parser("summary", help="volume, score distribution and OOV trend per model version")
    summary.add_argument("files", nargs="+", type=Path, help="predictions.jsonl and its rotated files")
    args = parser.parse_args(argv)
    missing = [str(path) for path in args.files if not path.is_file()]
    if missing:
        parser.error(f"no such file: {', '.join(missing)}")
    print(report(*summarize(args.files)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
