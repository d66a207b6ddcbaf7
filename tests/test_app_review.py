"""app.py through AppTest: the Review view, the Batch view's cache and limits, and database trouble
shown as one-line warnings (real model, real spaCy/Presidio, real SQLite and MariaDB)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import sqlalchemy as sa

import config
from intent_pipeline import db
from test_app import app_env, classify, metric, rows, show_view, start_app  # noqa: F401  (app_env: fixture)


def add_feedback(url: str, items: list[tuple[str, str, str]], curated: dict[str, str] | None = None) -> list[int]:
    engine = db.connect(url)
    try:
        if curated:
            with engine.begin() as conn:
                conn.execute(db.messages.insert(), [
                    {"text": t, "label": l, "text_hash": hashlib.sha256(t.encode()).hexdigest()} for t, l in curated.items()
                ])
        return [db.save_feedback(engine, text, said, label, model_version="test-untrained") for text, said, label in items]
    finally:
        engine.dispose()


def statuses(url: str) -> dict[int, tuple[str, str]]:
    return {r["id"]: (r["status"], r["reviewed_by"]) for r in rows(url, "feedback")}


def test_a_correction_waits_for_review_then_is_approved(app_env: Path, db_url: str) -> None:
    at = classify(start_app(), "I want my money back, mail me at jane@example.org")
    at.selectbox(key="feedback_label").set_value("refund").run()
    at.button(key="feedback_save").click().run()
    assert any("waits" in s.value or "review" in s.value for s in at.success)
    [fb] = rows(db_url, "feedback")
    assert fb["status"] == "pending" and fb["model_version"] == "test-untrained" and "jane@" not in fb["text"]

    show_view(at, "Review")
    assert metric(at, "Pending") == "1" and metric(at, "Approved") == "0"
    assert [t.value for t in at.text] == [fb["text"]]  # the masked text, shown as plain text
    shown = " ".join(m.value for m in at.markdown)
    assert f"`{fb['predicted_label']}`" in shown and "`refund`" in shown and "*none*" in shown  # no curated label
    at.button(key=f"approve_{fb['id']}").click().run()
    assert not at.exception and at.success[0].value == "1 correction approved."
    assert statuses(db_url) == {fb["id"]: ("approved", "local user")}
    assert metric(at, "Approved") == "1" and any("Nothing to review" in s.value for s in at.success)


def test_bulk_review_and_the_curated_label(app_env: Path) -> None:
    url = config.get_settings().database_url
    curated_text = "where is my parcel"
    ids = add_feedback(url, [(curated_text, "other", "refund"), ("refund me now", "other", "refund"),
                             ("hello", "refund", "other"), ("cancel it", "other", "check_order")],
                       curated={curated_text: "check_order"})
    at = show_view(start_app(), "Review")
    assert metric(at, "Pending") == "4"
    shown = " ".join(m.value for m in at.markdown)
    assert "`check_order` :orange[differs]" in shown  # the correction contradicts the curated label

    at.button(key=f"reject_{ids[0]}").click().run()
    assert at.success[0].value == "1 correction rejected."
    at.checkbox(key="review_select_all").check().run()
    assert at.button(key="review_approve_selected").label == "Approve selected (3)"
    at.checkbox(key=f"review_select_{ids[3]}").uncheck().run()
    at.button(key="review_approve_selected").click().run()
    assert at.success[0].value == "2 corrections approved."
    at.checkbox(key="review_select_all").check().run()
    at.button(key="review_reject_selected").click().run()
    assert {i: s for i, (s, _) in statuses(url).items()} == {
        ids[0]: "rejected", ids[1]: "approved", ids[2]: "approved", ids[3]: "rejected"}
    assert metric(at, "Pending") == "0" and not at.exception


def test_only_named_reviewers_decide(app_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    from test_app import APP, TIMEOUT
    from test_app_access import OIDC

    monkeypatch.setenv("DASHBOARD_REVIEWERS", "Lead@Example.com, second@example.com")
    [fid] = add_feedback(config.get_settings().database_url, [("refund me now", "other", "refund")])

    def review_as(email: str) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
        at.secrets.update(OIDC)
        at.user = {"is_logged_in": True, "email": email}
        at.run()
        return show_view(at, "Review")

    at = review_as("agent@example.com")
    assert [t.value for t in at.text] == ["refund me now"] and "DASHBOARD_REVIEWERS" in at.info[0].value
    assert not any(b.key and b.key.startswith(("approve_", "reject_", "review_")) for b in at.button) and not at.checkbox
    at = review_as("lead@example.com")
    at.button(key=f"approve_{fid}").click().run()
    assert statuses(config.get_settings().database_url) == {fid: ("approved", "lead@example.com")}


def test_batch_results_are_cached_and_logged_once(app_env: Path) -> None:
    at = show_view(start_app(), "Batch")
    csv = b"text\nWhere is my order?\nRefund please\nhello there\n"
    at.file_uploader(key="batch_upload").set_value(("a.csv", csv, "text/csv")).run()
    first = at.dataframe[0].value
    url = config.get_settings().database_url
    assert len(rows(url, "predictions")) == 3
    at.sidebar.slider(key="threshold").set_value(1.0).run()  # reruns the page: no re-classifying, no re-logging
    at.file_uploader(key="batch_upload").set_value(("same-content.csv", csv, "text/csv")).run()
    assert len(rows(url, "predictions")) == 3
    table = at.dataframe[0].value
    assert list(table["top_intent"]) == list(first["top_intent"]) and list(table["confidence"]) == list(first["confidence"])
    assert set(table["intent"]) == {config.get_settings().fallback_label}  # the new threshold, applied to the cache
    at.file_uploader(key="batch_upload").set_value(("b.csv", csv + b"one more\n", "text/csv")).run()
    assert len(rows(url, "predictions")) == 7  # a different file is classified and logged


@pytest.mark.parametrize("data, message", [
    (b"text\n" + b"x" * 5_100_000 + b"\n", "5.1 MB; the dashboard takes at most 5 MB"),
    (b"text\n" + b"hi\n" * 5001, "more than 5,000 rows"),
])
def test_batch_limits_are_checked_before_any_work(app_env: Path, data: bytes, message: str) -> None:
    at = show_view(start_app(), "Batch")
    at.file_uploader(key="batch_upload").set_value(("big.csv", data, "text/csv")).run()
    assert not at.exception and message in at.error[0].value and not at.dataframe
    assert rows(config.get_settings().database_url, "predictions") == []


def test_database_errors_are_one_line_warnings(app_env: Path, db_url: str) -> None:
    at = classify(start_app(), "where is my order")
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE feedback"))
    engine.dispose()
    at.button(key="feedback_correct").click().run()
    assert not at.exception and not at.success
    [warning] = [w.value for w in at.warning if "Could not save your feedback" in w.value]
    show_view(at, "Monitoring & feedback")
    show_view(at, "Review")
    warnings = [w.value for w in at.warning]
    assert warnings and not at.exception
    for text in [warning, *warnings]:
        assert "\n" not in text and "SELECT" not in text.upper() and "INSERT" not in text.upper()
        assert "127.0.0.1" not in text and "root" not in text and "test.db" not in text and "db.sqlite" not in text


def test_unreachable_database_is_not_retried_on_every_rerun(app_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql+pymysql://root:s3cret@127.0.0.1:1/cooldown")
    at = start_app()
    assert "next try in 30 s" in at.sidebar.warning[0].value
    show_view(at, "Monitoring & feedback")  # a rerun within the cool-down: no new connection attempt
    show_view(at, "Review")
    show_view(at, "Monitoring & feedback")
    attempts = [r for r in caplog.records if r.name == "intent_pipeline.db_guard" and "unavailable" in r.getMessage()]
    assert len(attempts) == 1
    [warning] = [w.value for w in at.main.warning]
    assert "Could not read the logged predictions" in warning and "next try in" in warning
    assert "s3cret" not in warning and "127.0.0.1" not in warning
