"""Stage 2 (load_to_mysql.py) on SQLite and MariaDB: idempotence, relabel, --replace, rollback on a
failure midway, byte-for-byte text, and one clear error line for every kind of bad input."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

import load_to_mysql
from intent_pipeline import db
from intent_pipeline.cli import run_cli
from intent_pipeline.errors import PipelineError
from intent_pipeline.files import write_csv_atomic

from conftest import PROJECT_ROOT

ROWS = [
    ("Where is my order?", "check_order"),
    ("I want my money back.", "refund"),
    ("hello there", "other"),
    ("Cancel order 42.", "cancel_order"),
    ("Track my parcel please.", "check_order"),
]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_cleaned(path: Path, rows: list[tuple[str, str]]) -> Path:
    frame = pd.DataFrame(rows, columns=["text", "label"])
    frame["text_hash"] = [sha(t) for t in frame["text"]]
    write_csv_atomic(frame, path)
    return path


def load(path: Path, *args: str) -> int:
    return run_cli(load_to_mysql.main, ["--input", str(path), *args])


def error_lines(stderr: str) -> list[str]:
    """The user-facing error lines (log lines also go to stderr)."""
    assert "Traceback" not in stderr
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def table(url: str) -> pd.DataFrame:
    engine = db.connect(url)
    try:
        return db.read_messages(engine)
    finally:
        engine.dispose()


def snapshot(url: str) -> list[tuple]:
    frame = table(url)
    return sorted(frame[["id", "text", "label", "text_hash", "source"]].itertuples(index=False, name=None))


def test_double_load_is_idempotent(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_cleaned(tmp_path / "cleaned.csv", ROWS)
    assert load(path) == 0
    assert "inserted 5, updated 0 (relabelled 0), unchanged 0, removed 0" in capsys.readouterr().out
    first = snapshot(db_url)
    assert load(path) == 0
    assert "inserted 0, updated 0 (relabelled 0), unchanged 5, removed 0" in capsys.readouterr().out
    assert snapshot(db_url) == first
    assert {row[4] for row in first} == {"cleaned.csv"}  # --source defaults to the file name
    assert {(row[1], row[2]) for row in first} == set(ROWS)


def test_relabel_updates_row_in_place_and_is_reported(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    load(write_cleaned(tmp_path / "v1.csv", ROWS))
    before = {row[3]: row for row in snapshot(db_url)}
    relabelled = [(ROWS[0][0], "refund"), *ROWS[1:], ("A brand new message.", "other")]
    capsys.readouterr()
    assert load(write_cleaned(tmp_path / "v2.csv", relabelled), "--source", "review-batch-7") == 0
    assert "inserted 1, updated 1 (relabelled 1), unchanged 4, removed 0" in capsys.readouterr().out
    after = {row[3]: row for row in snapshot(db_url)}
    changed = after[sha(ROWS[0][0])]
    assert changed[0] == before[sha(ROWS[0][0])][0]  # same id: updated, not re-inserted
    assert changed[2] == "refund" and changed[4] == "review-batch-7"
    assert after[sha(ROWS[1][0])][4] == "v1.csv"  # unchanged rows keep their source
    assert len(after) == 6


def test_replace_mirrors_the_file(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    load(write_cleaned(tmp_path / "all.csv", ROWS))
    capsys.readouterr()
    subset = [ROWS[1], (ROWS[3][0], "other"), ("Fresh one.", "refund")]
    assert load(write_cleaned(tmp_path / "subset.csv", subset), "--replace") == 0
    assert "inserted 1, updated 1 (relabelled 1), unchanged 1, removed 3; table now holds 3 rows" in capsys.readouterr().out
    assert {(row[1], row[2]) for row in snapshot(db_url)} == set(subset)


def test_dry_run_writes_nothing(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    load(write_cleaned(tmp_path / "a.csv", ROWS[:2]))
    before = snapshot(db_url)
    capsys.readouterr()
    assert load(write_cleaned(tmp_path / "b.csv", ROWS[2:]), "--replace", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "dry run" in out and "inserted 3" in out and "removed 2; table now holds 3 rows" in out
    assert snapshot(db_url) == before


@pytest.mark.parametrize("interrupt", [RuntimeError("disk full"), KeyboardInterrupt()], ids=["error", "interrupt"])
def test_failure_midway_leaves_table_as_before(db_url: str, tmp_path: Path, interrupt: BaseException) -> None:
    load(write_cleaned(tmp_path / "v1.csv", ROWS))
    before = snapshot(db_url)
    bigger = [(ROWS[0][0], "refund")] + [(f"message number {i}", "other") for i in range(10)]
    seen: list[tuple[str, int]] = []

    def fail_after_some_inserts(step: str, done: int) -> None:
        seen.append((step, done))
        if step == "insert" and done >= 4:  # rows of 2 earlier batches are already in the table
            raise interrupt

    with pytest.raises(type(interrupt)):
        load_to_mysql.load_file(
            write_cleaned(tmp_path / "v2.csv", bigger), db_url, replace=True, batch_size=2, after_batch=fail_after_some_inserts
        )
    assert ("remove", 2) in seen and ("update", 1) in seen and ("insert", 4) in seen
    assert snapshot(db_url) == before


POISON_TRIGGER = {
    "sqlite": "CREATE TRIGGER poison BEFORE INSERT ON messages WHEN NEW.text = 'poison' "
    "BEGIN SELECT RAISE(ABORT, 'poison row refused'); END",
    "mysql": "CREATE TRIGGER poison BEFORE INSERT ON messages FOR EACH ROW IF NEW.text = 'poison' THEN "
    "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'poison row refused'; END IF",
}


def test_database_error_in_late_batch_rolls_back(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A real database error (a trigger refuses the last row) after earlier batches were written."""
    load(write_cleaned(tmp_path / "v1.csv", ROWS))
    before = snapshot(db_url)
    engine = db.connect(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(POISON_TRIGGER[engine.dialect.name]))
    finally:
        engine.dispose()
    rows = [(ROWS[0][0], "refund")] + [(f"early {i}", "other") for i in range(5)] + [("poison", "other")]
    capsys.readouterr()
    assert load(write_cleaned(tmp_path / "v2.csv", rows), "--replace", "--batch-size", "2") == 1
    (line,) = error_lines(capsys.readouterr().err)
    assert "nothing was changed" in line and "poison row refused" in line
    assert snapshot(db_url) == before


TRICKY = [
    "It's \"quoted\" and 'single' and `back`",
    "C:\\path\\to\\file \\n not a newline \\\\",
    "'); DROP TABLE messages; --",
    "Robert'); DELETE FROM messages WHERE ('1'='1",
    "100% sure %s %(name)s {0} $1 ? :param",
    "Hello",
    "hello",
    "hello ",
    "hello  ",
    "Order 🍕 please 👍🏽",
    "Order 🍕 please",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ü é ñ 中文 العربية",
    "two\nlines\r\nand a\ttab",
    "NA",
    "null",
    "  leading spaces",
]


def test_tricky_text_round_trips_byte_for_byte(db_url: str, tmp_path: Path) -> None:
    rows = [(text, "other") for text in TRICKY]
    assert load(write_cleaned(tmp_path / "tricky.csv", rows)) == 0
    stored = table(db_url)
    assert len(stored) == len(TRICKY)  # no two texts collided (case, trailing space, emoji)
    by_hash = dict(zip(stored["text_hash"], stored["text"]))
    for text in TRICKY:
        assert by_hash[sha(text)].encode("utf-8") == text.encode("utf-8")
    assert load(tmp_path / "tricky.csv") == 0  # and a second load sees every row as unchanged
    assert len(table(db_url)) == len(TRICKY)


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good_hash = sha("x")
    cases = {
        "missing file": (tmp_path / "nope.csv", None, "not found"),
        "zero bytes": (tmp_path / "empty.csv", b"", "is empty"),
        "header only": (tmp_path / "header.csv", b"text,label,text_hash\n", "no rows"),
        "missing column": (tmp_path / "cols.csv", f"text,intent,text_hash\nhi,other,{good_hash}\n".encode(), "lacks column(s) label"),
        "ragged row": (tmp_path / "ragged.csv", f"text,label,text_hash\nhi,other,{good_hash},extra,more\n".encode(), "not a valid CSV"),
        "short row": (tmp_path / "short.csv", f"text,label,text_hash\nhi,other,{good_hash}\nlonely\n".encode(), "empty label on line(s) 3"),
        "not utf-8": (tmp_path / "latin1.csv", f"text,label,text_hash\ncaf\xe9,other,{good_hash}\n".encode("latin-1"), "not UTF-8"),
        "bad hash": (tmp_path / "hash.csv", b"text,label,text_hash\nhi,other,abc\n", "text_hash that is not 64"),
        "empty label": (tmp_path / "label.csv", f"text,label,text_hash\nhi,,{good_hash}\n".encode(), "empty label on line(s) 2"),
        "conflicting labels": (
            tmp_path / "clash.csv",
            f"text,label,text_hash\nhi,other,{good_hash}\nhi,refund,{good_hash}\n".encode(),
            "different labels on line(s) 2, 3",
        ),
    }
    for path, content, _ in cases.values():
        if content is not None:
            path.write_bytes(content)
    return {name: (path, expected) for name, (path, _, expected) in cases.items()}


def test_bad_input_files_give_one_line_and_change_nothing(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    load(write_cleaned(tmp_path / "good.csv", ROWS))
    before = snapshot(db_url)
    capsys.readouterr()
    for name, (path, expected) in _bad_files(tmp_path).items():
        code = load(path, "--replace")
        captured = capsys.readouterr()
        assert code == 1, name
        lines = error_lines(captured.err)
        assert len(lines) == 1 and expected in lines[0], (name, captured.err)
    assert snapshot(db_url) == before


def test_unreachable_database_never_shows_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    path = write_cleaned(tmp_path / "c.csv", ROWS)
    monkeypatch.setenv("DATABASE_URL", "mysql+pymysql://loader:Sup3r-s3cret@127.0.0.1:1/intent_pipeline")
    assert load(path) == 1
    captured = capsys.readouterr()
    assert "Sup3r-s3cret" not in captured.err + captured.out
    (line,) = error_lines(captured.err)
    assert "cannot connect to database mysql+pymysql://loader:***@127.0.0.1:1" in line


def test_wrong_password_via_cli_one_line_exit_1(mariadb_server: str, tmp_path: Path) -> None:
    """The real entry point (`python load_to_mysql.py`), MYSQL_* variables as the seed's users set them."""
    path = write_cleaned(tmp_path / "c.csv", ROWS)
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MYSQL_HOST": "127.0.0.1", "MYSQL_USER": "root",
        "MYSQL_PASSWORD": "definitely-Wrong-pw", "MYSQL_DB": "ip_never_created",
    }
    result = subprocess.run(
        [sys.executable, "load_to_mysql.py", "--input", str(path)],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert "definitely-Wrong-pw" not in result.stdout + result.stderr
    (line,) = error_lines(result.stderr)
    assert "root:***@127.0.0.1" in line and "Access denied" in line


def test_help_documents_every_flag() -> None:
    text = load_to_mysql.build_parser().format_help()
    for flag in ("--input", "--source", "--replace", "--batch-size", "--dry-run"):
        assert flag in text
    with pytest.raises(PipelineError):
        load_to_mysql.main(["--batch-size", "0", "--input", "x.csv"])


def test_per_row_source_column_is_kept_and_source_flag_overrides_it(db_url: str, tmp_path: Path) -> None:
    frame = pd.DataFrame(ROWS[:3], columns=["text", "label"])
    frame["text_hash"] = [sha(t) for t in frame["text"]]
    frame["source"] = ["chat_export.csv", "email_2024.csv", ""]  # a blank one falls back to the file name
    write_csv_atomic(frame, tmp_path / "cleaned.csv")
    assert load(tmp_path / "cleaned.csv") == 0
    stored = {row[3]: row[4] for row in snapshot(db_url)}
    assert stored == {sha(ROWS[0][0]): "chat_export.csv", sha(ROWS[1][0]): "email_2024.csv",
                      sha(ROWS[2][0]): "cleaned.csv"}
    relabelled = frame.assign(label="relabelled")
    write_csv_atomic(relabelled, tmp_path / "cleaned.csv")
    assert load(tmp_path / "cleaned.csv", "--source", "manual-fix") == 0
    assert {row[4] for row in snapshot(db_url)} == {"manual-fix"}
