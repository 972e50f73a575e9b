"""The command line every load benchmark shares."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.results import default_path
from harness.processes import IMDB_TARBALL


def benchmark_parser(module: str, doc: str, results_name: str, duration: float) -> argparse.ArgumentParser:
    """A parser with the models, the reviews, the seconds of load per measurement and the
    results file; a benchmark adds its own arguments to it."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--data", type=Path, default=IMDB_TARBALL, help="the IMDB tarball")
    parser.add_argument("--duration", type=float, default=duration,
                        help=f"seconds of load per measurement [{duration:g}]")
    parser.add_argument("--out", type=Path, default=default_path(results_name))
    return parser
