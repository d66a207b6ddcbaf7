"""Retraining (issue 14, part 2): trigger on approved corrections, frozen test split, gold set never
trained on, champion/challenger comparison that blocks a worse model, report + MLflow run; real
stages 3-6 on a small slice of the seed data with real fine-tunes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest

import config
import retrain as retrain_cli
from conftest import PROJECT_ROOT, TRAINED_LABELS
from intent_pipeline import db, holdout, ood
from intent_pipeline import retrain as rt
from intent_pipeline.cli import run_cli
from intent_pipeline.pii_digests import PiiDigests
from intent_pipeline.retrain_report import compare, markdown, summary_line
from test_prepare_data import insert_messages


def _seed(per_label: int, skip: int = 0) -> list[tuple[str, str]]:
    raw = pd.read_csv(PROJECT_ROOT / "data" / "raw_customer_interactions.csv")
    raw = raw[raw["intent"].isin(TRAINED_LABELS)].drop_duplicates("query")
    raw = raw.sample(frac=1.0, random_state=3)
    rank = raw.groupby("intent").cumcount()
    picked = raw[(rank >= skip) & (rank < skip + per_label)]
    return list(zip(picked["query"], picked["intent"]))


def _add_corrections(url: str, rows: list[tuple[str, str]]) -> None:
    engine = db.connect(url)
    ids = [db.save_feedback(engine, text, next(other for other in TRAINED_LABELS if other != label), label)
           for text, label in rows]
    db.review_feedback(engine, ids, db.FEEDBACK_APPROVED, "reviewer")  # only approved corrections count
    engine.dispose()


@pytest.fixture
def retrain_env(settings_env: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{settings_env / 'test.db'}"
    insert_messages(url, _seed(30))
    artifacts = settings_env / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    PiiDigests().save(artifacts / "pii_values.json")  # stage 1's digests: the release scan needs them
    offtopic = settings_env / "off_topic.csv"
    pd.DataFrame({"text": ["what is the weather like on mars", "tell me a joke about penguins",
                           "blue whales are the largest animals"]}).to_csv(offtopic, index=False)
    monkeypatch.setenv("OFFTOPIC_EVAL_FILE", str(offtopic))
    for name, value in {"MLFLOW_TRACKING_URI": f"sqlite:///{artifacts / 'mlflow.db'}", "LEARNING_RATE": "3e-4",
                        "BATCH_SIZE": "16", "MAX_LENGTH": "32", "SEED": "0", "AUGMENT": "false",
                        "RETRAIN_MIN_CORRECTIONS": "5", "PROMOTION_TOLERANCE": "0.02"}.items():
        monkeypatch.setenv(name, value)
    return url


def _splits(artifacts: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_csv(artifacts / "splits" / f"{name}.csv", keep_default_na=False)
            for name in ("train", "val", "test")}


def test_retrain_publishes_skips_blocks_and_promotes(retrain_env: str, settings_env: Path, capsys) -> None:
    import mlflow

    artifacts = settings_env / "artifacts"
    repo = settings_env / "registry" / "intent-classifier"
    # 1. No release yet: a forced retrain draws and freezes the test split and publishes the first release.
    assert run_cli(retrain_cli.main, ["--force", "--epochs", "2"]) == 0
    assert (repo / "LATEST").read_text().strip() == "v1"
    assert "published v1" in capsys.readouterr().out
    frozen = pd.read_csv(artifacts / "frozen_test" / "test.csv", keep_default_na=False)
    v1_report = json.loads((artifacts / "retrain" / "latest.json").read_text())
    assert v1_report["decision"] == "published" and v1_report["champion"] is None
    assert next(r for r in v1_report["metrics"] if r["metric"] == "accuracy")["challenger"] > 0.7  # a real model

    # 2. Too few approved corrections since v1: nothing runs.
    _add_corrections(retrain_env, _seed(1, skip=30))
    assert run_cli(retrain_cli.main, []) == 0
    assert "4 approved correction(s) since v1; retraining needs 5" in capsys.readouterr().out

    # 3. Enough corrections, but a starved challenger (8 rows, 1 epoch): the champion keeps serving.
    corrections = _seed(6, skip=31)
    _add_corrections(retrain_env, corrections)
    assert run_cli(retrain_cli.main, ["--epochs", "1", "--max-train-rows", "8"]) == rt.KEPT_CHAMPION_EXIT
    out = capsys.readouterr().out
    assert "kept the champion v1: the challenger dropped" in out and "accuracy" in out
    assert (repo / "LATEST").read_text().strip() == "v1" and not (repo / "v2").exists()
    report = json.loads((artifacts / "retrain" / "latest.json").read_text())
    assert report["decision"] == "kept_champion" and "accuracy" in report["blocked"]
    assert report["new_corrections"] == 28 and set(report["sets"]) >= {"test", "noisy", "gold"}
    assert report["sets"]["offtopic"] == 3
    assert next(r for r in report["metrics"] if r["metric"] == "offtopic_handled")["verdict"] == "not guarded (n<10)"
    assert "| accuracy |" in (artifacts / "retrain" / "latest.md").read_text()

    # The challenger was scored on the frozen test split, and never trained on it or on the gold set.
    splits = _splits(artifacts)
    assert splits["test"]["text"].tolist() == frozen["text"].tolist()
    gold = {text for text, _ in corrections + _seed(1, skip=30) if holdout.is_gold([text], 0.2)[0]}
    assert gold and report["sets"]["gold"] == len(gold)
    trained = set(splits["train"]["text"]) | set(splits["val"]["text"])
    assert not (gold & trained) and not (set(frozen["text"]) & trained)
    assert (set(t for t, _ in corrections) - gold) <= set(splits["train"]["text"])  # the rest is learnt from

    # The comparison is an MLflow run of its own, with the report files.
    mlflow.set_tracking_uri(config.get_settings().mlflow_tracking_uri)
    run = mlflow.get_run(report["mlflow"]["run_id"])
    assert run.data.tags["decision"] == "kept_champion" and run.data.tags["champion"] == "v1"
    assert run.data.metrics["delta.accuracy"] == pytest.approx(
        next(r for r in report["metrics"] if r["metric"] == "accuracy")["delta"])
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "comparison")}
    assert len(logged) == 2

    # 4. With a looser tolerance the same challenger is promoted: v2 serves.
    settings = dataclasses.replace(config.get_settings(), promotion_tolerance=1.0)
    outcome = rt.decide(settings, rt.champion(settings), artifacts / "frozen_test", rt.approved_corrections(settings), 28)
    assert outcome.decision == "published" and outcome.exit_code == 0
    assert (repo / "LATEST").read_text().strip() == "v2"


def test_compare_blocks_only_guarded_drops_beyond_tolerance() -> None:
    champion = {"accuracy": {"value": 0.90, "n": 100}, "macro_f1": {"value": 0.85, "n": 100},
                "gold_accuracy": {"value": 0.5, "n": 4}, "ece_like": {"value": 0.5, "n": 100}}
    challenger = {"accuracy": {"value": 0.895, "n": 100}, "macro_f1": {"value": 0.80, "n": 100},
                  "gold_accuracy": {"value": 0.0, "n": 4}, "ece_like": {"value": 0.0, "n": 100}}
    report = compare(champion, challenger, ("accuracy", "macro_f1", "gold_accuracy", "noisy_accuracy"), 0.01)
    verdicts = {row["metric"]: row["verdict"] for row in report["metrics"]}
    assert verdicts == {"accuracy": "ok", "macro_f1": "BLOCKS", "gold_accuracy": "not guarded (n<10)",
                        "ece_like": "reported"}
    assert report["blocked"] == ["macro_f1"] and report["guarded_without_data"] == ["noisy_accuracy"]
    report.update(decision="kept_champion", champion={"version": "v3"}, created_at="now", new_corrections=9,
                  min_corrections=5, sets={"test": 100}, challenger={})
    assert summary_line(report) == ("kept the champion v3: the challenger dropped macro_f1 0.8500 -> 0.8000 "
                                    "(-0.0500) (tolerance 0.010)")
    assert "| macro_f1 | 100 | 0.8500 | 0.8000 | -0.0500 | BLOCKS |" in markdown(report)
    first = compare({}, challenger, ("accuracy",), 0.01)  # no champion: nothing can block a first release
    assert first["blocked"] == [] and first["metrics"][0]["verdict"] == "not compared"


def test_gold_membership_is_stable_and_near_the_share() -> None:
    texts = [f"message number {i}" for i in range(2000)]
    first, again = holdout.is_gold(texts, 0.2), holdout.is_gold(list(reversed(texts)), 0.2)[::-1]
    assert (first == again).all() and 0.17 < first.mean() < 0.23
    assert not holdout.is_gold(texts, 0.0).any()


def test_frozen_split_keeps_test_exact_and_near_duplicates_out() -> None:
    rows = pd.DataFrame({
        "text": [f"where is my order number {i} please {w}" for i, w in enumerate("abcdefghij")]
        + [f"I need an invoice for purchase {w} {w}{w}" for w in "abcdefghij"]
        + ["track order 4711 now", "refund me for this"],
        "label": ["order"] * 10 + ["invoice"] * 10 + ["order", "refund"],
    }).assign(from_feedback=False)
    frozen = pd.DataFrame({"text": ["track order 99 now", "refund me for this"], "label": ["order", "refund"]})
    split = holdout.split_around_frozen_test(rows, frozen, 0.1, 0.15, seed=0)
    test = split[split["split"] == "test"]
    assert test["text"].tolist() == frozen["text"].tolist()
    rest = set(split.loc[split["split"] != "test", "text"])
    assert "track order 4711 now" not in rest  # a near-duplicate of a frozen test message: left out
    assert "refund me for this" not in rest
    assert {"train", "val"} <= set(split["split"])


def test_offtopic_set_is_optional_and_checked(tmp_path: Path) -> None:
    assert ood.read_offtopic(tmp_path / "absent.csv") is None
    bad = tmp_path / "bad.csv"
    bad.write_text("message\nhello\n")
    with pytest.raises(Exception, match="needs a `text` column"):
        ood.read_offtopic(bad)
