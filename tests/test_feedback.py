"""Reviewed feedback: the feedback table's review columns (and their migration), the review queue,
and stage 3 training only on approved corrections, on SQLite and MariaDB."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

import config
import prepare_data
from intent_pipeline import db
from intent_pipeline.feedback import (
    approved_not_trained_on,
    approved_since,
    merge_corrections,
    review_queue,
    trained_feedback_ids,
)
from intent_pipeline.cli import run_cli
from conftest import PROJECT_ROOT

LABELS = ["contact_support", "queries_related_to_order", "request_invoice", "review", "other"]


def insert_messages(engine: sa.Engine, rows: list[tuple[str, str]]) -> None:
    with engine.begin() as conn:
        conn.execute(db.messages.insert(), [
            {"text": t, "label": l, "text_hash": hashlib.sha256(t.encode()).hexdigest(), "source": "test"}
            for t, l in rows
        ])


def seed_rows(per_label: int = 40) -> list[tuple[str, str]]:
    raw = pd.read_csv(PROJECT_ROOT / "data" / "raw_customer_interactions.csv")
    raw = raw[raw["intent"].isin(LABELS)].groupby("intent", group_keys=False).sample(n=per_label, random_state=3)
    return list(zip(raw["query"], raw["intent"]))


def test_feedback_is_pending_until_reviewed_and_decisions_are_final(db_url: str) -> None:
    engine = db.connect(db_url)
    try:
        insert_messages(engine, [("where is my parcel", "queries_related_to_order")])
        first = db.save_feedback(engine, "where is my parcel", "other", "request_invoice", model_version="m1")
        second = db.save_feedback(engine, "send me the bill", "other", "request_invoice", model_version="m1")
        third = db.save_feedback(engine, "hello there", "other", "other", model_version="m1")
        assert db.count_feedback(engine) == {"pending": 3, "approved": 0, "rejected": 0}

        queue = review_queue(engine)
        assert list(queue["id"]) == [first, second, third]
        assert list(queue["curated_label"]) == ["queries_related_to_order", "", ""]  # identical text only
        assert list(queue["predicted_label"]) == ["other"] * 3 and set(queue["model_version"]) == {"m1"}

        before = db.utc_now() - timedelta(seconds=1)
        assert db.review_feedback(engine, [second, third], "approved", "lead@example.com") == 2
        assert db.review_feedback(engine, [first, second], "rejected", "someone") == 1  # second already decided
        assert db.review_feedback(engine, [], "approved") == 0
        with pytest.raises(Exception, match="approved or rejected"):
            db.review_feedback(engine, [first], "pending")
        rows = db.read_feedback(engine).set_index("id")
        assert rows.loc[second, "status"] == "approved" and rows.loc[second, "reviewed_by"] == "lead@example.com"
        assert rows.loc[first, "status"] == "rejected" and rows.loc[first, "reviewed_at"] is not None
        assert review_queue(engine).empty

        assert list(approved_since(engine, before)["id"]) == [second, third]
        assert approved_since(engine, db.utc_now() + timedelta(minutes=1)).empty
        assert list(approved_not_trained_on(engine, {second})["id"]) == [third]
        assert trained_feedback_ids({"feedback_ids": [2, 3]}) == {2, 3} and trained_feedback_ids({}) == set()
    finally:
        engine.dispose()


def test_old_feedback_rows_become_pending_on_upgrade(db_url: str) -> None:
    # The feedback table as stages 1-7 created it before review existed.
    old = sa.MetaData()
    sa.Table("predictions", old, sa.Column("id", sa.Integer, primary_key=True))
    table = sa.Table(
        "feedback", old, sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime, nullable=False), sa.Column("prediction_id", sa.Integer, nullable=True),
        sa.Column("text", sa.Text, nullable=False), sa.Column("predicted_label", sa.String(191), nullable=False),
        sa.Column("correct_label", sa.String(191), nullable=False), sa.Column("is_correct", sa.Boolean, nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False, server_default=""),
    )
    raw = sa.create_engine(db_url)
    old.create_all(raw)
    with raw.begin() as conn:
        conn.execute(table.insert().values(created_at=db.utc_now(), text="old correction", predicted_label="a",
                                           correct_label="b", is_correct=False))
    raw.dispose()
    engine = db.connect(db_url)  # the schema upgrade path every stage and the app take
    try:
        [row] = db.read_feedback(engine).to_dict("records")
        assert row["status"] == "pending" and row["reviewed_by"] == "" and pd.isna(row["reviewed_at"])
    finally:
        engine.dispose()


def test_merge_corrections_reports_contradictions_and_respects_the_setting() -> None:
    messages = pd.DataFrame({"text": ["a b c", "d e f"], "label": ["x", "y"]})
    approved = pd.DataFrame({"id": [1, 2, 3, 4, 5], "text": ["new text", "a b c", "d e f", "other new", "odd"],
                             "correct_label": ["y", "y", "y", "x", "never_seen"]})
    curated = merge_corrections(messages, approved)
    assert curated.used_ids == [1, 4] and curated.agreeing == 1 and curated.unknown_labels == ["never_seen"]
    assert curated.contradictions == [{"feedback_id": 2, "text": "a b c", "curated_label": "x", "correction": "y",
                                       "kept": "curated"}]
    rows = curated.rows.set_index("text")
    assert rows.loc["a b c", "label"] == "x" and not rows.loc["a b c", "from_feedback"]
    assert rows.loc["new text", "label"] == "y" and rows.loc["new text", "from_feedback"] and "odd" not in rows.index

    wins = merge_corrections(messages, approved, feedback_wins=True)
    assert wins.used_ids == [1, 2, 4] and wins.contradictions[0]["kept"] == "correction"
    rows = wins.rows.set_index("text")
    assert rows.loc["a b c", "label"] == "y" and rows.loc["a b c", "from_feedback"] and len(wins.rows) == 4
    assert merge_corrections(messages, approved.iloc[:0]).rows["text"].tolist() == ["a b c", "d e f"]


def read_splits(artifacts: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_csv(artifacts / "splits" / f"{name}.csv", keep_default_na=False)
            for name in ("train", "val", "test", "test_noisy")}


def test_only_approved_corrections_reach_training(db_url: str, settings_env: Path) -> None:
    """Through stage 3's real entry point (`python prepare_data.py`) on a small database."""
    seed = seed_rows()
    engine = db.connect(db_url)
    curated_text, curated_label = seed[0]
    contradicted = next(t for t, label in seed if label == "review")
    try:
        insert_messages(engine, seed)
        pending = db.save_feedback(engine, "zzqx pending please send the invoice", "other", "request_invoice")
        rejected = db.save_feedback(engine, "zzqx rejected talk to a person now", "other", "contact_support")
        approved = db.save_feedback(engine, "zzqx approved my parcel never arrived", "other", "queries_related_to_order")
        wrong = db.save_feedback(engine, contradicted, "review", "other")  # contradicts the curated label
        sneaky = db.save_feedback(engine, curated_text, curated_label, "other")  # pending: must change nothing
        db.review_feedback(engine, [approved, wrong], "approved", "lead")
        db.review_feedback(engine, [rejected], "rejected", "lead")
    finally:
        engine.dispose()

    artifacts = settings_env / "artifacts"
    stage = subprocess.run([sys.executable, str(PROJECT_ROOT / "prepare_data.py"), "--database-url", db_url,
                            "--no-augment"], env=config.child_env(), capture_output=True, text=True, timeout=300)
    assert stage.returncode == 0, stage.stderr
    splits = read_splits(artifacts)
    everything = pd.concat(splits.values())
    assert not everything["text"].str.contains("zzqx pending|zzqx rejected").any()
    train = splits["train"].set_index("text")
    assert train.loc["zzqx approved my parcel never arrived", "label"] == "queries_related_to_order"
    labels = everything.drop_duplicates("text").set_index("text")["label"]
    assert labels[contradicted] == "review" and labels[curated_text] == curated_label  # curated labels kept

    report = json.loads((artifacts / "data_report.json").read_text())["splits"]["feedback"]
    assert report["approved"] == 2 and report["used"] == 1 and report["pending_not_used"] == 2
    assert report["rejected"] == 1 and report["on_contradiction"] == "curated label wins"
    assert [(c["feedback_id"], c["kept"]) for c in report["contradictions"]] == [(wrong, "curated")]
    fingerprint = json.loads((artifacts / "dataset_fingerprint.json").read_text())
    assert fingerprint["feedback_ids"] == [approved] and fingerprint["feedback_rows"] == 1
    logged = stage.stderr  # stage 3's log
    assert "used 1 approved corrections" in logged and "2 pending review" in logged
    assert f"feedback {wrong} contradicts the curated label" in logged
    assert pending and sneaky

    # The setting turns the rule around: the approved contradiction now wins, and only in train.
    assert run_cli(prepare_data.main, ["--database-url", db_url, "--no-augment", "--feedback-overrides-curated"]) == 0
    splits = read_splits(artifacts)
    assert splits["train"].set_index("text").loc[contradicted, "label"] == "other"
    assert contradicted not in set(splits["val"]["text"]) | set(splits["test"]["text"])
    assert json.loads((artifacts / "dataset_fingerprint.json").read_text())["feedback_ids"] == [approved, wrong]

    assert run_cli(prepare_data.main, ["--database-url", db_url, "--no-augment", "--no-feedback"]) == 0
    assert "zzqx approved" not in " ".join(read_splits(artifacts)["train"]["text"])
