"""Figures in the docs, rendered from the published results files: one home per figure.

    python -m benchmarks.report           # rewrite every rendered block from docs/results
    python -m benchmarks.report --check   # exit 1 naming each block that differs from its file

A page holds a block between `<!-- results: NAME -->` and `<!-- /results: NAME -->`;
`BLOCKS` names the results file and the function that renders NAME. Each block ends
with the line naming its source: the file, the command, the commit and the date it
records. Pages link to a block instead of copying its figures.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "docs" / "results"
PAGES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
BLOCK = re.compile(r"(<!-- results: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results: (?P=name) -->)", re.S)
HEADER = ("commit", "command")  # and a date: "measured_at" (benchmarks.results) or "date"


@dataclass(frozen=True)
class Block:
    results_file: str  # under docs/results
    renderer: str  # "module:function", given the file's results


BLOCKS: dict[str, Block] = {
    "attacks": Block("attacks.json", "harness.attack_report:table"),
    "peers": Block("peers.json", "benchmarks.peers.report:render"),
    "profile": Block("profile.json", "benchmarks.profile:render"),
    "compare-inline": Block("compare-inline.json", "benchmarks.compare:render"),
    "compare-sentiment-route": Block("compare-sentiment-route.json", "benchmarks.compare:render"),
    "request-path": Block("request-path.json", "benchmarks.request_path:render"),
    # docs/benchmarks.md
    "serving-path": Block("serving-path.json", "benchmarks.__main__:render_serving_path"),
    "open-inference": Block("serving-path.json", "benchmarks.__main__:render_open_inference"),
    "explain": Block("explain.json", "benchmarks.explain:render"),
    "features": Block("features.json", "benchmarks.features:render"),
    "http-servers": Block("http-servers.json", "benchmarks.http_servers:render"),
    "batch-timeout": Block("batch-timeout.json", "benchmarks.batch_timeout:render"),
    "warmup": Block("warmup.json", "benchmarks.warmup:render"),
    "edge": Block("edge.json", "benchmarks.edge:render"),
    "front-door": Block("front_door.json", "benchmarks.front_door:render"),
    "snippets": Block("snippets.json", "benchmarks.snippets:render"),
    "soak": Block("soak.json", "benchmarks.soak:render"),
    "batch-scoring": Block("batch-scoring.json", "benchmarks.batch_scoring:render"),
    # docs/model-cost.md
    "model-cost-raw": Block("model-cost.json", "benchmarks.model_cost:render_raw"),
    "model-cost-targets": Block("model-cost.json", "benchmarks.model_cost:render_targets"),
    "model-cost-stack": Block("model-cost.json", "benchmarks.model_cost:render_stack"),
    # docs/deployment.md
    "sizing": Block("front_door.json", "benchmarks.front_door:render_sizing"),
    # docs/model-card.md
    "model-card-overview": Block("model-card.json", "benchmarks.model_card:render_overview"),
    "model-card-accuracy": Block("model-card.json", "benchmarks.model_card:render_accuracy"),
    "model-card-length": Block("model-card.json", "benchmarks.model_card:render_by_length"),
    "model-card-first-words": Block("model-card.json", "benchmarks.model_card:render_first_words"),
    "model-card-oov": Block("model-card.json", "benchmarks.model_card:render_by_oov_share"),
    "model-card-calibration": Block("model-card.json", "benchmarks.model_card:render_calibration"),
    "model-card-truncation": Block("model-card.json", "benchmarks.model_card:render_truncation"),
    "model-card-negation": Block("model-card.json", "benchmarks.model_card:render_negation"),
    "model-card-examples": Block("model-card.json", "benchmarks.model_card:render_examples"),
}


def read_results(file_name: str, results_dir: Path = RESULTS_DIR) -> dict[str, Any]:
    return json.loads((results_dir / file_name).read_text(encoding="utf-8"))


def header_problems(document: dict[str, Any]) -> list[str]:
    """What a results file lacks of the header naming its run."""
    missing = [key for key in HEADER if not document.get(key)]
    if not (document.get("measured_at") or document.get("date")):
        missing.append("date")
    return missing


def _payload(document: dict[str, Any]) -> Any:
    return document["results"] if "results" in document else document


def _short(commit: str) -> str:
    """A full hash cut to 12 characters; `git describe` output ("abc1234-dirty") as it is."""
    return commit[:12] if re.fullmatch(r"[0-9a-f]{40}", commit) else commit


def render_block(name: str, page: Path, results_dir: Path = RESULTS_DIR) -> str:
    block = BLOCKS[name]
    document = read_results(block.results_file, results_dir)
    module, function = block.renderer.split(":")
    table = getattr(importlib.import_module(module), function)(_payload(document)).rstrip("\n")
    link = os.path.relpath(results_dir / block.results_file, page.parent)
    date = document.get("measured_at") or document.get("date")
    return (f"\n{table}\n\n<sub>Rendered from [`{block.results_file}`]({link}): "
            f"`{document['command']}`, commit `{_short(document['commit'])}`, {date}.</sub>\n\n")


def rendered(page: Path, results_dir: Path = RESULTS_DIR) -> str:
    """``page``'s text with every block rendered from its results file."""
    def replace(match: re.Match) -> str:
        name = match["name"]
        if name not in BLOCKS:
            raise SystemExit(f"{page}: unknown results block {name!r} (known: {', '.join(BLOCKS)})")
        return f"{match[1]}{render_block(name, page, results_dir)}{match[4]}"

    return BLOCK.sub(replace, page.read_text(encoding="utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block differs")
    args = parser.parse_args()
    stale = []
    for page in PAGES:
        text = rendered(page)
        if text != page.read_text(encoding="utf-8"):
            stale.append(page)
            if not args.check:
                page.write_text(text, encoding="utf-8")
    if args.check and stale:
        sys.exit("rendered blocks differ from docs/results in: " + ", ".join(str(p.relative_to(ROOT)) for p in stale)
                 + "\nrun: python -m benchmarks.report")
    for page in stale:
        print(f"rendered {page.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
