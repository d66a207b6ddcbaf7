"""Running a stage script as its own process, exactly as a user would (run_pipeline.py, retrain.py)."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

from config import PROJECT_ROOT
from intent_pipeline.errors import PipelineError

log = logging.getLogger(__name__)


def run_script(name: str, script: str, args: Sequence[str] = (), env: Mapping[str, str] | None = None) -> None:
    """Run `python <script> <args>` from the project root; a failure is a PipelineError naming the stage.

    `env` replaces the environment of the stage process (benchmarks point stages at their own data).
    """
    command = [sys.executable, str(PROJECT_ROOT / script), *args]
    log.info("stage %s: %s", name, " ".join(command[1:]))
    started = time.monotonic()
    result = subprocess.run(command, cwd=PROJECT_ROOT, env=None if env is None else dict(env))
    if result.returncode != 0:
        raise PipelineError(
            f"stage {name} ({script}) failed with exit code {result.returncode}; "
            "fix the error above and re-run: completed stages are skipped"
        )
    log.info("stage %s done in %.1f s", name, time.monotonic() - started)
