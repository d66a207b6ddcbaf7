"""Files written atomically (never half-written), JSON artifacts read with a clear error, file hashes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from intent_pipeline.errors import PipelineError


def _set_final_mode(tmp_name: str, path: Path) -> None:
    """mkstemp creates 0600 files; give the result the mode a plain open() would (or the old file's)."""
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(tmp_name, mode)


@contextlib.contextmanager
def atomic_path(path: Path | str, mode: int | None = None) -> Iterator[Path]:
    """Yield a temp path beside `path` for libraries that write by file name; renamed on success.

    A crash or interrupt midway leaves any previous file untouched and no partial file behind.
    `mode` (e.g. 0o600 for secrets) sets the file's permissions; by default a new file gets what a
    plain open() would give and a replaced file keeps its mode. The temp file is 0600 throughout.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp_name)
        if mode is None:
            _set_final_mode(tmp_name, path)
        else:
            os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


@contextlib.contextmanager
def atomic_write(path: Path | str, mode: str = "w", encoding: str | None = "utf-8",
                 permissions: int | None = None) -> Iterator[IO[Any]]:
    """Open a temp file beside `path` for writing; it replaces `path` only if the block succeeds."""
    with atomic_path(path, permissions) as tmp, open(tmp, mode, encoding=None if "b" in mode else encoding) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def write_text_atomic(path: Path | str, text: str, permissions: int | None = None) -> None:
    with atomic_write(path, permissions=permissions) as handle:
        handle.write(text)


def write_json_atomic(path: Path | str, obj: Any, permissions: int | None = None) -> None:
    """`permissions=0o600` for files holding secrets (readable by the owner only)."""
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n", permissions)


def write_csv_atomic(frame: Any, path: Path | str) -> None:
    """Write a pandas DataFrame as UTF-8 CSV without an index, atomically."""
    with atomic_write(path) as handle:
        frame.to_csv(handle, index=False, lineterminator="\n")


def read_json(path: Path | str, what: str, fix: str) -> Any:
    """Load a JSON artifact, or raise a PipelineError that names the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{what} not found at {path}: {fix}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PipelineError(f"{what} at {path} is not valid JSON ({exc}): {fix}") from None


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
