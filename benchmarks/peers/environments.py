"""Each peer's (and each measuring tool's) own virtual environment, so the project's lock
never carries them.

`<name>.txt` beside this module pins the peer or tool; a peer also gets TensorFlow at the
project's locked version, so every stack runs the exported version on the same runtime.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOCK = HERE.parents[1] / "requirements.lock"


def locked_version(package: str) -> str:
    found = re.search(rf"^{re.escape(package)}==(\S+)$", LOCK.read_text(), re.MULTILINE)
    if found is None:
        raise SystemExit(f"{package} is not in {LOCK}")
    return found.group(1)


def requirements(name: str, tensorflow: bool) -> list[str]:
    pins = (HERE / f"{name}.txt").read_text().split()
    return [*pins, f"tensorflow=={locked_version('tensorflow')}"] if tensorflow else pins


def environment(name: str, venvs: Path, *, tensorflow: bool = True) -> Path:
    """The bin/ folder of ``name``'s environment under ``venvs``, created or updated when its pins changed."""
    wanted = requirements(name, tensorflow)
    home = venvs / name
    python = home / "bin" / "python"
    stamp = home / ".installed"
    digest = hashlib.sha256("\n".join(wanted).encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return python.parent
    print(f"== installing {' '.join(wanted)} into {home} (once)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *wanted], check=True)
    stamp.write_text(digest)
    return python.parent
