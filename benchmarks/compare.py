"""Two commits side by side: `make run`'s stack of each in turn, under the same load, so a
change's before/after comes from one run.

    python -m benchmarks.compare --before REF --change "what changed" --models-dir models --out .bench/compare.json

"After" is this checkout as it is; "before" runs from a temporary git worktree of REF with
this checkout's environment (`python -m` puts the worktree's code first; its protocol
buffer modules are generated anew for the installed protobuf). Rounds alternate before and after; each
sends the same ~230-word review with `hey` straight to the gateway's port from 1 and
from 64 clients, and reads each process's CPU from /proc.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks import results as results_file
from benchmarks.__main__ import bench_hey
from benchmarks.arguments import benchmark_parser
from benchmarks.peers.__main__ import CLIENTS, MODEL, pick_review, project_role
from benchmarks.peers.process_tree import StackMeter
from harness.local_stack import local_stack
from harness.processes import ROOT


def commit_of(ref: str) -> str:
    return subprocess.run(["git", "rev-parse", "--short=12", ref], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


@contextmanager
def worktree(ref: str) -> Iterator[Path]:
    """A checkout of ``ref`` in a temporary folder, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="compare-")) / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(path), ref], cwd=ROOT, check=True)
    try:
        subprocess.run([sys.executable, "proto/generate.py"], cwd=path, check=True, stdout=subprocess.DEVNULL)
        yield path
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=True)


def measure(root: Path, side: str, commit: str, models_dir: Path, review: str, duration: float) -> list[dict]:
    rows = []
    with local_stack(models_dir, Path(tempfile.mkdtemp(prefix=f"compare-{side}-")), root=root) as stack:
        meter = StackMeter(stack.process.pid, project_role)
        try:
            for clients in CLIENTS:
                print(f"== {side} ({commit}), {clients} client(s)", flush=True)
                row = bench_hey(f"{stack.gateway}/v1/sentiment", {"text": review, "model": MODEL}, clients,
                                duration, "gateway HTTP", MODEL, cpu=meter.cpu_seconds)
                rows.append({"side": side, "commit": commit, **row})
        finally:
            meter.stop()
    return rows


def main() -> None:
    parser = benchmark_parser("benchmarks.compare", __doc__, "compare.json", duration=10.0)
    parser.add_argument("--before", required=True, help="the commit before the change")
    parser.add_argument("--change", required=True, help="what changed between them, for the table")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    models_dir = args.models_dir.resolve()
    review = pick_review(args.data)
    rows: list[dict] = []
    with worktree(args.before) as before:
        for round_number in range(1, args.rounds + 1):
            for side, root, commit in (("before", before, commit_of(args.before)),
                                     ("after", ROOT, results_file.describe_commit())):
                for row in measure(root, side, commit, models_dir, review, args.duration):
                    rows.append({"round": round_number, **row})
    results_file.save(args.out, {"change": args.change, "duration_s": args.duration, "rows": rows})
    print(render(results_file.load(args.out)))


def render(results: dict) -> str:
    """Before and after, round by round: latency, throughput and each role's CPU per request."""
    lines = [f"{results['change']}:", "",
             "| round | commit | clients | req/s | p50 ms | p99 ms | CPU ms/request: gateway / model server |",
             "|---|---|---|---|---|---|---|"]
    for row in sorted(results["rows"], key=lambda r: (r["clients"], r["round"], r["side"] != "before")):
        cpu = row["cpu_ms_per_request"]
        lines.append(f"| {row['round']} | {row['side']} `{row['commit']}` | {row['clients']} | "
                     f"{row['requests_per_s']:.0f} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | "
                     f"{cpu['gateway']:.2f} / {cpu['model_server']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
