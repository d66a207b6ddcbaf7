"""Files that hold customer messages or PII digests are created readable by their owner only."""

from __future__ import annotations

import os
from pathlib import Path

from intent_pipeline import db
from intent_pipeline.pii_digests import PiiDigests


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_sqlite_file_is_created_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "new" / "pipeline.db"
    engine = db.connect(f"sqlite:///{path}")
    db.log_predictions(engine, [{"text": "t", "intent": "a", "confidence": 0.5}])
    with engine.connect():  # WAL mode: the -wal and -shm files exist while a connection is open
        files = sorted(path.parent.iterdir())
        assert {mode(f) for f in files} == {0o600}, [(f.name, oct(mode(f))) for f in files]
    engine.dispose()
    assert mode(path) == 0o600 and len(files) >= 2


def test_pii_digests_are_owner_only_even_over_an_open_file(tmp_path: Path) -> None:
    path = tmp_path / "artifacts" / "pii_values.json"
    path.parent.mkdir()
    path.write_text("{}")
    os.chmod(path, 0o644)  # a file from before this rule
    digests = PiiDigests("salt")
    digests.add("PERSON", "Jane Smith")
    digests.save(path)
    assert mode(path) == 0o600 and "Jane" not in path.read_text()
    assert not [p for p in path.parent.iterdir() if p.name != path.name]  # no temp file left behind
