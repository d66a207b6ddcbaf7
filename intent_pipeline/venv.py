"""Project virtual environment: create `.venv` and install the pinned requirements, standard library only.

Used before anything else is importable: by `python3 run_pipeline.py` on a fresh clone (which then
re-runs itself inside `.venv`) and by `make test`. The environment is (re)installed when it is
missing or when requirements*.txt changed since the last install (a hash is kept in `.venv`).

    python3 -m intent_pipeline.venv      # create or update .venv, then exit
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VENV_DIR = PROJECT_ROOT / ".venv"
REQUIREMENTS = ("requirements.txt", "requirements-dev.txt")
STAMP_FILE = ".requirements-installed"
MIN_PYTHON = (3, 11)


def venv_python() -> Path:
    return VENV_DIR / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def requirements_hash() -> str:
    digest = hashlib.sha256()
    for name in REQUIREMENTS:
        digest.update((PROJECT_ROOT / name).read_bytes())
    return digest.hexdigest()


def is_current() -> bool:
    stamp = VENV_DIR / STAMP_FILE
    return venv_python().is_file() and stamp.is_file() and stamp.read_text().strip() == requirements_hash()


def ensure_venv() -> Path:
    """Create or update `.venv` with the pinned requirements; returns its python."""
    if sys.version_info < MIN_PYTHON:
        raise SystemExit(f"error: Python {'.'.join(map(str, MIN_PYTHON))}+ is required, this is {sys.version.split()[0]}")
    if is_current():
        return venv_python()
    if not venv_python().is_file():
        print(f"Creating the virtual environment in {VENV_DIR} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV_DIR)
    print("Installing the pinned requirements (first run only; a few minutes) ...", flush=True)
    pip = [str(venv_python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    for command in (pip + ["--upgrade", "pip"], pip + ["-r", str(PROJECT_ROOT / "requirements-dev.txt")]):
        if subprocess.call(command, cwd=PROJECT_ROOT) != 0:
            raise SystemExit("error: installing the requirements failed (see pip's message above); fix it and re-run")
    (VENV_DIR / STAMP_FILE).write_text(requirements_hash() + "\n")
    return venv_python()


def running_in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV_DIR.resolve()


def reexec_in_venv(script: Path, argv: list[str]) -> None:
    """Replace this process with `script` run by the project's environment, creating it if needed."""
    python = ensure_venv()
    os.execv(str(python), [str(python), str(script), *argv])


if __name__ == "__main__":
    ensure_venv()
    print(f"Environment ready: {venv_python()}")
