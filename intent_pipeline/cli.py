"""The command-line wrapper shared by every entry point: expected failures become one line and exit 1."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from config import ConfigError
from intent_pipeline.errors import PipelineError


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run a stage's `main`, turning expected failures into one clear line and a non-zero exit."""
    try:
        return int(main(argv) or 0)
    except (PipelineError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; outputs were left as they were before this run", file=sys.stderr)
        return 130
