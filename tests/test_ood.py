"""Out-of-scope detection (issue 16): the detector's maths, then the real pipeline model's answers everywhere.

The model is `pipeline_run`'s (stages 1-5 on all 15 seed intents, `other` among them, tests/conftest.py):
stage 5 fitted and calibrated its detector exactly as on full data. The off-topic messages below are
written for this test; data/eval/off_topic.csv is for stage 5's report only.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

import config
import push_model
from conftest import PipelineRun
from intent_pipeline import artifacts as art
from intent_pipeline import backends, db, ood
from intent_pipeline.predict import OUT_OF_SCOPE, UNSURE, FallbackRule, IntentClassifier
from intent_pipeline.serving.api import create_app
from test_serve import api_settings, with_schema

# Obviously off-topic for a shop's support bot, several domains (none copied from the evaluation set).
OFF_TOPIC = [
    "will it snow in oslo this weekend",
    "who scored the winning goal in the cup final last night",
    "how do i reverse a linked list in python",
    "whats a good recipe for banana bread",
    "tell me a joke about penguins",
    "what is the capital of australia",
    "explain quantum entanglement like im five",
    "wie spät ist es in berlin",
    "recommend a good sci-fi novel",
    "how many moons does jupiter have",
    "what is the derivative of x squared",
    "best way to grow tomatoes on a balcony",
]


# ---------------------------------------------------------------- the maths

def test_calibrated_threshold_is_the_lowest_within_the_accuracy_budget() -> None:
    rng = np.random.default_rng(0)
    scores = rng.gamma(4.0, 10.0, size=400)
    correct = rng.random(400) < 0.95
    for budget in (0.0, 0.01, 0.05):
        threshold = ood.calibrate_threshold(scores, correct, budget)
        kept = (correct & (scores <= threshold)).mean()
        assert kept >= correct.mean() - budget - 1e-12
        lower = scores[correct & (scores < threshold)]
        if len(lower):  # the next lower candidate would break the budget
            assert (correct & (scores <= lower.max())).mean() < correct.mean() - budget - 1e-12
    assert ood.calibrate_threshold(scores, correct, 0.0) == scores[correct].max()
    assert ood.calibrate_threshold(np.zeros(0), np.zeros(0, bool), 0.01) == float("inf")


def test_detector_scores_far_points_higher_and_round_trips_in_a_small_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 384)) * 3
    labels = np.repeat(["a", "b", "c", "other"], 200)
    features = centres[np.searchsorted(["a", "b", "c", "other"], labels)] + rng.normal(size=(800, 384))
    detector = ood.fit_detector(features, labels, ["other"]).with_threshold(500.0, model_version="m1")
    assert detector.info["fit_rows"] == 600 and detector.info["classes"] == ["a", "b", "c"]
    near = centres[:3] + rng.normal(size=(3, 384))
    far = rng.normal(size=(3, 384)) * 3
    assert detector.score(near).max() < detector.score(far).min()

    path = tmp_path / art.OOD_DETECTOR
    detector.save(path)
    assert path.stat().st_size < 400_000  # a few hundred KB at most: it ships in every release
    loaded = ood.OodDetector.load(path)
    assert loaded.threshold == 500.0 and loaded.oos_labels == ("other",) and loaded.model_version == "m1"
    np.testing.assert_allclose(loaded.score(far), detector.score(far), rtol=1e-5)
    # A detector fitted for other weights is ignored with a warning, never applied.
    assert ood.load_for_model(path, "m2") is None and ood.load_for_model(path, "m1") is not None
    path.write_bytes(b"not an npz")
    with pytest.raises(Exception, match="cannot be read.*export_bert_metrics"):
        ood.OodDetector.load(path)


def test_out_of_scope_wins_over_unsure_and_known_offtopic_labels_count() -> None:
    rule = FallbackRule(0.5, 0.1, "unknown")
    assert rule.reason(0.9, 0.05, out_of_scope=False) is None
    assert rule.reason(0.3, 0.2, out_of_scope=False) == UNSURE
    assert rule.reason(0.3, 0.2, out_of_scope=True) == OUT_OF_SCOPE
    decisions = ood.decide(np.array(["a", "other", "a", "b"]), np.array([False, False, True, False]),
                           np.array([False, False, False, True]), ["other"], np.array(["a", "other", "a", "b"]))
    assert decisions.out_of_scope.tolist() == [False, True, False, True]
    assert decisions.unsure.tolist() == [False, False, True, False]
    assert decisions.correct.tolist() == [True, False, False, False]


# ---------------------------------------------------------------- the pipeline's model

@pytest.fixture(scope="module")
def classifier(pipeline_run: PipelineRun) -> IntentClassifier:
    return IntentClassifier.load(pipeline_run.model_dir)


def test_stage5_fitted_calibrated_and_reported_the_detector(pipeline_run: PipelineRun,
                                                            classifier: IntentClassifier) -> None:
    assert (pipeline_run.artifacts / art.OOD_DETECTOR).is_file()
    assert classifier.detector is not None and np.isfinite(classifier.detector.threshold)
    assert classifier.detector.oos_labels == ("other",)
    assert classifier.detector.model_version == classifier.version
    metrics = json.loads((pipeline_run.artifacts / art.METRICS).read_text())
    oos = metrics["oos"]
    assert oos["threshold"] == pytest.approx(classifier.detector.threshold)
    assert oos["off_topic"]["n"] == len(pd.read_csv(config.get_settings().offtopic_eval_file))
    # The detector adds to the softmax rule, never takes away (same rule, more messages flagged).
    assert oos["off_topic"]["recall"]["with_oos"] >= oos["off_topic"]["recall"]["softmax_only"]
    assert oos["test"]["in_scope_accuracy"]["with_oos"] <= oos["test"]["in_scope_accuracy"]["softmax_only"]


def test_off_topic_messages_are_answered_out_of_scope(classifier: IntentClassifier) -> None:
    predictions = classifier.predict(OFF_TOPIC)
    flagged = [p for p in predictions if p.fallback_reason == OUT_OF_SCOPE]
    assert len(flagged) >= 0.75 * len(OFF_TOPIC), [(p.text, p.top_intent, p.oos_score) for p in predictions]
    for p in flagged:
        assert p.is_fallback and p.intent == classifier.fallback.label and p.oos_score is not None


def test_in_scope_test_messages_are_mostly_not_out_of_scope(pipeline_run: PipelineRun,
                                                           classifier: IntentClassifier) -> None:
    test = pd.read_csv(art.Artifacts(pipeline_run.artifacts).split("test"), keep_default_na=False)
    in_scope = test[test["label"] != "other"]
    predictions = classifier.predict(in_scope["text"].tolist())
    flagged = sum(p.fallback_reason == OUT_OF_SCOPE for p in predictions)
    assert flagged <= 0.15 * len(predictions), flagged
    answered_right = sum(p.intent == label for p, label in zip(predictions, in_scope["label"]))
    assert answered_right >= 0.6 * len(predictions)


def test_a_model_folder_without_the_detector_answers_as_before(pipeline_run: PipelineRun, tmp_path: Path,
                                                               classifier: IntentClassifier) -> None:
    old = tmp_path / "old_release"
    shutil.copytree(pipeline_run.model_dir, old, ignore=shutil.ignore_patterns(art.OOD_DETECTOR))
    legacy = IntentClassifier.load(old)
    assert legacy.detector is None
    texts = OFF_TOPIC + ["where is my order", "i want a refund"]
    before, now = legacy.predict(texts), classifier.predict(texts)
    assert [p.top_intent for p in before] == [p.top_intent for p in now]
    for p in before:
        assert p.oos_score is None and p.fallback_reason in (None, UNSURE)
        assert p.intent == (legacy.fallback.label if p.fallback_reason else p.top_intent)


@pytest.fixture(scope="module")
def release(pipeline_run: PipelineRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pipeline's model published by stage 6 with its ONNX graphs (fp32 + int8)."""
    registry = tmp_path_factory.mktemp("oos_registry")
    settings = dataclasses.replace(
        config.get_settings(), artifacts_dir=pipeline_run.artifacts, model_dir=pipeline_run.model_dir,
        registry_dir=registry, hf_token="", hf_repo_id="", release_onnx=True, mlflow_tracking=False)
    return push_model.publish(settings)


def test_the_release_ships_the_detector(release: Path, pipeline_run: PipelineRun) -> None:
    info = json.loads((release / art.RELEASE_INFO).read_text())
    assert art.OOD_DETECTOR in info["files"]
    assert (release / art.OOD_DETECTOR).read_bytes() == (pipeline_run.model_dir / art.OOD_DETECTOR).read_bytes()
    assert "Out-of-scope detection" in (release / art.MODEL_CARD).read_text()


def test_onnx_and_pytorch_agree_on_out_of_scope(release: Path, pipeline_run: PipelineRun) -> None:
    test = pd.read_csv(art.Artifacts(pipeline_run.artifacts).split("test"), keep_default_na=False)
    texts = OFF_TOPIC + test["text"].head(60).tolist()
    torch_model = IntentClassifier.load(release, backend=backends.TORCH)
    onnx_model = IntentClassifier.load(release, backend=backends.ONNX)
    assert onnx_model.backend == backends.ONNX and onnx_model.detector is not None
    for batch_size in (64, 1):  # padded batches and the single-message hot path
        a = torch_model.predict(texts, batch_size=batch_size)
        b = onnx_model.predict(texts, batch_size=batch_size)
        assert [p.fallback_reason for p in a] == [p.fallback_reason for p in b]
        np.testing.assert_allclose([p.oos_score for p in a], [p.oos_score for p in b], rtol=1e-3)
    # int8 weights move the features a little: the decision still agrees on nearly every message.
    int8 = IntentClassifier.load(release, backend=backends.ONNX_INT8).predict(texts)
    agree = sum(x.out_of_scope == y.out_of_scope for x, y in zip(a, int8))
    assert agree >= 0.9 * len(texts)


def test_an_onnx_graph_without_features_is_skipped_when_a_detector_needs_them(release: Path, tmp_path: Path) -> None:
    """A release whose graph predates the features output must not answer differently from PyTorch."""
    import onnx

    old = tmp_path / "release"
    shutil.copytree(release, old)
    graph = onnx.load(str(old / art.ONNX_DIR / art.ONNX_FP32))
    kept = [o for o in graph.graph.output if o.name != "features"]
    del graph.graph.output[:]
    graph.graph.output.extend(kept)
    onnx.save(graph, str(old / art.ONNX_DIR / art.ONNX_FP32))
    loaded = IntentClassifier.load(old, backend=backends.ONNX)
    assert loaded.backend == backends.TORCH and "pooled-features" in loaded.backend_reason
    (old / art.OOD_DETECTOR).unlink()
    assert IntentClassifier.load(old, backend=backends.ONNX).backend == backends.ONNX  # no detector: as before


def test_api_json_and_log_row_carry_the_reason(release: Path, tmp_path: Path) -> None:
    url = with_schema(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with TestClient(create_app(api_settings(release, url, max_text_chars=200, inference_backend=backends.ONNX))) as client:
        response = client.post("/predict", json={"texts": [OFF_TOPIC[0], OFF_TOPIC[2]]})
        assert response.status_code == 200, response.text
        body = response.json()
    for pred in body["predictions"]:
        assert pred["fallback_reason"] == OUT_OF_SCOPE and pred["intent"] == "unknown" and pred["is_fallback"]
        assert isinstance(pred["oos_score"], float)
    rows = db.read_predictions(db.connect(url))  # the client's shutdown flushed the log queue
    assert sorted(rows["fallback_reason"]) == [OUT_OF_SCOPE, OUT_OF_SCOPE]
    assert rows["is_fallback"].all()


def test_log_rows_record_no_reason_when_the_intent_is_answered(db_url: str) -> None:
    engine = db.connect(db_url)
    ids = db.log_predictions(engine, [
        {"text": "where is my order", "intent": "queries_related_to_order", "confidence": 0.9, "fallback_reason": None},
        {"text": "hmm", "intent": "unknown", "confidence": 0.2, "is_fallback": True, "fallback_reason": UNSURE},
    ])
    rows = db.read_predictions(engine).set_index("id")
    assert rows.loc[ids[0], "fallback_reason"] == "" and rows.loc[ids[1], "fallback_reason"] == UNSURE


def test_an_old_database_gets_the_column_from_stage_2(tmp_path: Path) -> None:
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = db.connect(url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO predictions (text, intent, top_intent, confidence) VALUES ('a', 'b', 'b', 1)"))
        conn.execute(sa.text("ALTER TABLE predictions DROP COLUMN fallback_reason"))
    with pytest.raises(db.SchemaError, match="fallback_reason.*load_to_mysql.py --schema-only"):
        db.open_existing(url)
    db.connect(url)  # what `python load_to_mysql.py --schema-only` does
    rows = db.read_predictions(db.open_existing(url))
    assert rows["fallback_reason"].tolist() == [""]


def test_the_app_says_why_and_the_slider_cannot_override_out_of_scope() -> None:
    from intent_pipeline import dashboard as dash
    from intent_pipeline.predict import Prediction

    top_k = [("refund", 0.9), ("check_order", 0.05)]
    off = Prediction("will it rain", "unknown", "refund", 0.9, True, top_k, OUT_OF_SCOPE, 912.0, True)
    loose = FallbackRule(0.0, 0.0, "unknown")
    assert dash.apply_rule(off, loose) == ("unknown", True)
    assert "out of scope" in dash.fallback_explanation(off, loose) and "best guess was 'refund'" in \
        dash.fallback_explanation(off, loose)
    plain = Prediction("refund pls", "refund", "refund", 0.9, False, top_k, None, 3.0, False)
    assert dash.apply_rule(plain, loose) == ("refund", False) and dash.fallback_explanation(plain, loose) is None
    strict = FallbackRule(0.95, 0.0, "unknown")
    assert dash.reason_under(plain, strict) == UNSURE and "unsure" in dash.fallback_explanation(plain, strict)
    table = dash.batch_frame(pd.DataFrame({"text": ["a", "b"]}), ["a", "b"], [off, plain], strict)
    assert table["fallback_reason"].tolist() == [OUT_OF_SCOPE, UNSURE]
