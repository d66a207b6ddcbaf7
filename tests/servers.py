"""Child servers for tests: started on port 0, address read from their own startup line, always killed.

Picking a "free" port in the test and handing it to the child is a race (another process can take
it between the check and the child's bind). Here the child binds port 0 itself and the test reads
the address the child reports in its output (e.g. streamlit's "URL: http://127.0.0.1:PORT"; serve.py
writes a --port-file instead, see test_serve_processes.api_process).
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ChildServer:
    """A running child: its base URL, its process, and every output line it printed so far."""

    url: str
    proc: subprocess.Popen
    lines: list[str] = field(default_factory=list)

    def output(self) -> str:
        return "".join(self.lines)


def _pump(stream, lines: list[str], ready: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        lines.append(line)
        ready.put(line)
    ready.put(None)  # end of output: the child exited or closed stdout


def stop(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the child's process group, SIGKILL it if it is still there after `grace_s`."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace_s)


@contextlib.contextmanager
def child_server(command: Sequence[str], env: dict[str, str], ready: re.Pattern,
                 startup_s: float = 120.0) -> Iterator[ChildServer]:
    """Start `command` (a server told to bind port 0), wait for `ready` (group 1: the base URL) to match
    a line of its output, yield, then stop it.

    The child runs in its own process group so that workers it forks die with it.
    """
    proc = subprocess.Popen(list(command), cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    events: queue.Queue = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines, events), daemon=True).start()
    try:
        deadline = time.monotonic() + startup_s
        url = None
        while url is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"server did not report its address in {startup_s:.0f} s:\n{''.join(lines)[-3000:]}")
            try:
                line = events.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                proc.wait(timeout=10)
                raise AssertionError(f"server exited with {proc.returncode} before it was ready:\n{''.join(lines)[-3000:]}")
            if match := ready.search(line):
                url = match.group(1)
        yield ChildServer(url=url, proc=proc, lines=lines)
    finally:
        stop(proc)
