"""docs/configuration.md names every GATEWAY_*, MODEL_SERVER_*, EDGE_* and SENTIMENT_* variable
the code reads, and no other, and gives each gateway setting the default the code has."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator
from pathlib import Path

from serving.gateway.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"
NAME = r"(?:GATEWAY|MODEL_SERVER|EDGE|SENTIMENT)_[A-Z0-9_]+"
# Python: os.environ.get("X"), os.environ["X"], os.getenv("X"), and the env("X") alias.
PYTHON_READ = re.compile(r'(?:environ\.get\(|environ\[|getenv\(|\benv\()\s*["\'](' + NAME + r')["\']')
# Shell: ${X:-default} / ${X-default} (plain $X is a script's own variable). Compose: ${X...}.
SHELL_READ = re.compile(r"\$\{(" + NAME + r"):?-")
COMPOSE_READ = re.compile(r"\$\{(" + NAME + r")\b")
SKIPPED_FOLDERS = {".venv", ".git", ".tools", "node_modules", "__pycache__", "docs", ".ablation", ".run", "models"}


def source_files() -> Iterator[Path]:
    for folder, subfolders, files in os.walk(ROOT):
        # Pruned, not walked and then filtered: .venv alone holds tens of thousands of files.
        subfolders[:] = [name for name in subfolders if name not in SKIPPED_FOLDERS]
        yield from (Path(folder) / name for name in files)


@functools.cache
def read_by_the_code() -> dict[str, frozenset[str]]:
    found: dict[str, set[str]] = {
        Settings.variable(name): {"serving/gateway/settings.py"} for name in Settings.model_fields}
    for path in source_files():
        if path.suffix == ".py":
            pattern = PYTHON_READ
        elif path.suffix == ".sh":
            pattern = SHELL_READ
        elif path.suffix in (".yml", ".yaml"):
            pattern = COMPOSE_READ
        else:
            continue
        for name in pattern.findall(path.read_text(encoding="utf-8", errors="replace")):
            found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return {name: frozenset(paths) for name, paths in found.items()}


def test_the_scan_finds_reads_in_each_kind_of_file():
    found = read_by_the_code()
    assert "serving/gateway/settings.py" in found["GATEWAY_HTTP_WORKERS"]  # a Settings field
    assert "training/__main__.py" in found["SENTIMENT_DATA_URL"]  # env("...")
    assert "serving/client/__main__.py" in found["SENTIMENT_GRPC_TARGET"]  # os.environ.get
    assert "deploy/local/run.sh" in found["MODEL_SERVER_PORT"]  # ${X:-default}
    assert "docker-compose.yml" in found["SENTIMENT_HTTP_PORT"]  # compose interpolation
    assert "deploy/edge/start.sh" in found["EDGE_RATE_LIMIT"]  # the edge's settings
    assert "MODEL_SERVER_PID" not in found  # run.sh's own variable, not configuration


def test_the_document_names_exactly_the_variables_the_code_reads():
    found = read_by_the_code()
    documented = set(re.findall(r"`(" + NAME + r")`", DOC.read_text(encoding="utf-8")))
    missing = {name: sorted(found[name]) for name in sorted(set(found) - documented)}
    assert not missing, f"read by the code but not in docs/configuration.md: {missing}"
    unread = sorted(documented - set(found))
    assert not unread, f"in docs/configuration.md but read by no code: {unread}"


def shown(value: object) -> str:
    """A default as the document writes it."""
    if value is None:
        return "unset"
    if value == ():
        return "empty"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict):
        return ",".join(f"{public}={served}" for public, served in value.items())
    return str(value)


def test_the_document_gives_the_defaults_of_the_gateway_settings():
    documented = {}
    rows = re.findall(r"^\| (`GATEWAY_[^|]*) \| ([^|]*) \|", DOC.read_text(encoding="utf-8"), re.MULTILINE)
    # A row of several variables gives one default for each of them, or one for all.
    for names, defaults in rows:
        variables = re.findall(r"`(GATEWAY_[A-Z0-9_]+)`", names)
        values = [re.sub(r"`| \(.*\)", "", value) for value in defaults.strip().split(", ")]
        documented.update(zip(variables, values if len(values) > 1 else values * len(variables), strict=True))
    defaults = {Settings.variable(name): shown(field.get_default(call_default_factory=True))
                for name, field in Settings.model_fields.items()}
    assert documented == defaults
