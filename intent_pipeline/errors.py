"""The error every stage raises for a problem the user can fix."""

from __future__ import annotations


class PipelineError(Exception):
    """A problem the user can fix (bad input, missing artifact): shown as one line, exit code 1."""
