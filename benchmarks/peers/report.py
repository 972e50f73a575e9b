"""The peers' table and the targets against them, from `python -m benchmarks.peers`'s results file."""

from __future__ import annotations

PROJECT_EDGE = "this project, through the edge"
PROJECT_STACKS = (PROJECT_EDGE, "this project, gateway port")

# (what, measured, bound, lower is better): the targets, each a ratio within one run.
Target = tuple[str, float, float, bool]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _row(rows: list[dict], stack: str, setting: str, clients: int) -> dict:
    return next(r for r in rows if r["scenario"] == stack and r["setting"] == setting and r["clients"] == clients)


def _settings(rows: list[dict]) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for row in rows:
        if (row["scenario"], row["setting"]) not in seen:
            seen.append((row["scenario"], row["setting"]))
    return seen


def best_peer(rows: list[dict]) -> tuple[dict, dict]:
    """The peer rows with the most req/s at 64 clients and with the lowest p50 at 1 client."""
    peers = [r for r in rows if r["scenario"] not in PROJECT_STACKS]
    throughput = max((r for r in peers if r["clients"] == 64), key=lambda r: r["requests_per_s"])
    latency = min((r for r in peers if r["clients"] == 1), key=lambda r: r["p50_ms"])
    return throughput, latency


def targets(results: dict) -> list[Target]:
    rows = results["rows"]
    edge1, edge64 = (_row(rows, PROJECT_EDGE, "make run", clients) for clients in (1, 64))
    throughput, latency = best_peer(rows)
    tensorflow = next(cost for cost in results["tensorflow_cpu_ms_single_review"]
                      if cost["intra_op_threads"] == cost["inter_op_threads"] == 0)
    return [
        (f"req/s at 64 clients through the edge, x best peer ({throughput['scenario']}, {throughput['setting']})",
         edge64["requests_per_s"] / throughput["requests_per_s"], 2.0, False),
        (f"p50 at 1 client through the edge, x best peer ({latency['scenario']}, {latency['setting']})",
         edge1["p50_ms"] / latency["p50_ms"], 0.6, True),
        ("gateway CPU ms per request, 64 clients", edge64["cpu_ms_per_request"]["gateway"], 0.7, True),
        ("gateway CPU ms per request, 1 client", edge1["cpu_ms_per_request"]["gateway"], 1.0, True),
        (f"model server CPU per request at 1 client, x TensorFlow's own for the call after idle "
         f"({tensorflow['after_idle']:.2f} ms; back to back {tensorflow['back_to_back']:.2f} ms)",
         edge1["cpu_ms_per_request"]["model_server"] / tensorflow["after_idle"], 1.5, True),
    ]


# (column, clients, value of a row, lower is better)
COLUMNS = (
    ("p50 at 1 client", 1, lambda r: r["p50_ms"], True),
    ("p99 at 1 client", 1, lambda r: r["p99_ms"], True),
    ("req/s at 64 clients", 64, lambda r: r["requests_per_s"], False),
    ("p99 at 64 clients", 64, lambda r: r["p99_ms"], True),
    ("CPU per request at 1 client", 1, lambda r: r["cpu_ms_per_request"]["stack"], True),
    ("CPU per request at 64 clients", 64, lambda r: r["cpu_ms_per_request"]["stack"], True),
    ("peak memory", 64, lambda r: r["peak_rss_mib"], True),
)


def ceiling(results: dict) -> str:
    """What the machine's cores allow through the edge at 64 clients, whatever the latency:
    every core busy with the stack and the load generator at their measured CPU per request."""
    edge64 = _row(results["rows"], PROJECT_EDGE, "make run", 64)
    throughput, _ = best_peer(results["rows"])
    spent = edge64["cpu_ms_per_request"]["stack"] + edge64["cpu_ms_per_request"]["load_generator"]
    most = results["cores"] * 1000 / spent
    return (f"What {results['cores']} cores allow: through the edge at 64 clients the stack and `hey` spent "
            f"{spent:.2f} ms of CPU per request, so at that cost the machine serves at most {most:.0f} req/s "
            f"this way, {most / throughput['requests_per_s']:.2f}x the best peer's {throughput['requests_per_s']:.0f}.")


def winners(rows: list[dict]) -> list[tuple[str, str, str]]:
    """Per column, the stack and setting with the best figure: a peer that wins says so."""
    best = []
    for what, clients, value, lower_is_better in COLUMNS:
        candidates = [r for r in rows if r["clients"] == clients and value(r) is not None]
        pick = (min if lower_is_better else max)(candidates, key=value)
        best.append((what, pick["scenario"], pick["setting"]))
    return best


def render(results: dict) -> str:
    rows = results["rows"]
    throughput, latency = best_peer(rows)
    lines = [
        "| stack | setting | p50 ms, 1 client | p99 ms, 1 client | req/s, 64 clients | p50 ms, 64 | p99 ms, 64 "
        "| CPU ms/request, whole stack: 1 client / 64 | peak memory, MiB | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for stack, setting in _settings(rows):
        one, many = _row(rows, stack, setting, 1), _row(rows, stack, setting, 64)
        best = " (best peer)" if many is throughput or one is latency else ""
        lines.append(
            f"| {stack}{best} | {setting} | {_ms(one['p50_ms'])} | {_ms(one['p99_ms'])} | {many['requests_per_s']:.0f} "
            f"| {_ms(many['p50_ms'])} | {_ms(many['p99_ms'])} | {one['cpu_ms_per_request']['stack']:.2f} / "
            f"{many['cpu_ms_per_request']['stack']:.2f} | {many['peak_rss_mib']:.0f} | {one['errors'] + many['errors']} |"
        )
    lines += ["", "Best in each column: " + "; ".join(
        f"{what}: **{stack}** ({setting})" for what, stack, setting in winners(rows)) + "."]
    lines += ["", "TensorFlow's own CPU ms for one single-review call, in process (thread pools: intra-op, "
              "inter-op; 0 = its default): " + "; ".join(
                  f"{c['intra_op_threads']}/{c['inter_op_threads']}: {c['back_to_back']:.2f} back to back, "
                  f"{c['after_idle']:.2f} after idle" for c in results["tensorflow_cpu_ms_single_review"]) + "."]
    lines += ["", "| target | measured | bound | met |", "|---|---|---|---|"]
    for what, measured, bound, lower_is_better in targets(results):
        met = measured <= bound if lower_is_better else measured >= bound
        lines.append(f"| {what} | {measured:.2f} | {'<=' if lower_is_better else '>='} {bound:g} "
                     f"| {'yes' if met else '**no**'} |")
    lines += ["", ceiling(results)]
    return "\n".join(lines)
