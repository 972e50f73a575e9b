"""Where benchmark results go, and what they say about their own run.

By default under `.bench/` (ignored by git), so a local run never edits the
published figures; `make bench BENCH_OUT=docs/results` publishes them. Every file
records the date, the commit and the command, so a figure can be traced to its run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(".bench")


def default_path(file_name: str) -> Path:
    return RESULTS_DIR / file_name


def describe_commit() -> str:
    """The commit, with "-dirty" when files other than the published results differ from it
    (a publishing run rewrites docs/results as it goes: that is not a change of the code)."""
    try:
        commit = subprocess.run(["git", "describe", "--always"], capture_output=True,
                                text=True, check=True, timeout=10).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                  ":!docs/results", ":!docs/*.md", ":!README.md"],
                                 capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if changed else commit


def _module() -> str:
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    name = spec.name if spec else Path(sys.argv[0]).stem
    return name.removesuffix(".__main__")


# Read when the benchmark starts: the code it measures, even if the tree changes meanwhile.
_STARTED_AT = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
_STARTED_ON = describe_commit()


def save(path: Path, results: Any) -> None:
    """Write ``results`` as JSON under a header naming the run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "measured_at": _STARTED_AT,
        "commit": _STARTED_ON,
        "command": " ".join(["python -m", _module(), *sys.argv[1:]]),
        "results": results,
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten to {path}")


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))["results"]
