"""Where a request's CPU goes: py-spy flame graphs of the gateway's HTTP server and the
model server while `hey` sends single ~230-word reviews from 1 and from 64 clients.

    python -m benchmarks.profile --models-dir models --profiles .bench/profiles --out .bench/profile.json

`make run`'s stack, straight to the gateway's port. py-spy (in its own environment,
`.bench-venvs/py-spy`) samples every thread 100 times a second without pausing the
processes; idle threads are left out, so a flame graph shows CPU, not waiting. Writes one
SVG per process and load, and, per profile, the functions where most samples were taken.
The recording spans `hey`'s warm-up and run, both under the same load. Published
(`make bench BENCH_OUT=docs/results`), the SVGs are in docs/results/profiles/, where the
rendered table links.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from benchmarks import results as results_file
from benchmarks.__main__ import bench_hey
from benchmarks.arguments import benchmark_parser
from benchmarks.peers.__main__ import MODEL, pick_review
from benchmarks.peers.environments import environment
from harness.local_stack import local_stack

CLIENTS = (1, 64)
TOP = 12  # functions listed per profile
FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def own_samples(collapsed: str) -> Counter:
    """Samples by the function they were taken in (the innermost frame), from py-spy's raw format."""
    counts: Counter = Counter()
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        innermost = stack.rsplit(";", 1)[-1]
        found = FRAME.match(innermost)
        counts[f"{found['function']} ({found['file']})" if found else innermost] += int(count)
    return counts


def record(py_spy: Path, pid: int, seconds: float, svg: Path, raw: Path) -> list[subprocess.Popen]:
    """py-spy recording ``pid`` and its subprocesses for ``seconds``: a flame graph, and the
    raw stacks the summary is counted from (two samplers side by side)."""
    common = [str(py_spy), "record", "--pid", str(pid), "--subprocesses", "--nonblocking",
              "--duration", str(round(seconds))]
    return [subprocess.Popen([*common, "--format", form, "--output", str(path)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for form, path in (("flamegraph", svg), ("raw", raw))]


def finished(sampler: subprocess.Popen) -> None:
    """Wait for one py-spy; its failure (no ptrace rights, the process gone) stops the run with its words."""
    _, errors = sampler.communicate()
    if sampler.returncode != 0:
        raise SystemExit(f"py-spy failed ({sampler.returncode}): {errors.strip()}")


def main() -> None:
    parser = benchmark_parser("benchmarks.profile", __doc__, "profile.json", duration=10.0)
    parser.add_argument("--venvs", type=Path, default=Path(".bench-venvs"), help="where py-spy's environment is")
    parser.add_argument("--profiles", type=Path, default=Path(".bench/profiles"), help="where the SVGs go")
    args = parser.parse_args()
    py_spy = environment("py-spy", args.venvs.resolve(), tensorflow=False) / "py-spy"
    review = pick_review(args.data)
    args.profiles.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="profile-"))
    profiles = []
    with local_stack(args.models_dir.resolve(), work) as stack:
        url = f"{stack.gateway}/v1/sentiment"
        processes = {"gateway": stack.http_server_pids()[0], "model_server": stack.pids_of("serving.model_server")[0]}
        for clients in CLIENTS:
            print(f"== {clients} client(s)", flush=True)
            samplers, outputs = [], {}
            for name, pid in processes.items():
                svg, raw = args.profiles / f"{name}-{clients}-clients.svg", work / f"{name}-{clients}.txt"
                samplers += record(py_spy, pid, args.duration, svg, raw)
                outputs[name] = (svg, raw)
            row = bench_hey(url, {"text": review, "model": MODEL}, clients, args.duration, "gateway HTTP", MODEL)
            for sampler in samplers:
                finished(sampler)
            for name, (svg, raw) in outputs.items():
                counts = own_samples(raw.read_text())
                total = sum(counts.values())
                profiles.append({
                    "process": name, "clients": clients, "requests_per_s": row["requests_per_s"],
                    "samples": total, "flame_graph": str(svg),
                    "top_functions": [{"function": function, "share": round(count / total, 3)}
                                      for function, count in counts.most_common(TOP)],
                })
    results_file.save(args.out, {"duration_s": args.duration, "profiles": profiles})
    print(render({"profiles": profiles}))


def render(results: dict) -> str:
    """Per profile, the functions where most CPU samples were taken."""
    lines = []
    for profile in results["profiles"]:
        svg = Path(profile["flame_graph"]).name
        lines += [f"**{profile['process'].replace('_', ' ')}, {profile['clients']} client(s)** "
                  f"({profile['samples']} samples, {profile['requests_per_s']:.0f} req/s; "
                  f"[flame graph](results/profiles/{svg})):", "",
                  "| share of samples | function (innermost frame) |", "|---|---|"]
        lines += [f"| {entry['share']:.1%} | `{entry['function']}` |" for entry in profile["top_functions"]]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
