"""app.py through streamlit.testing.v1.AppTest (real model, real spaCy/Presidio, real databases),
plus the pure helpers of intent_pipeline/dashboard.py."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

import config
from intent_pipeline import dashboard as dash
from intent_pipeline import db
from intent_pipeline.errors import PipelineError
from intent_pipeline.predict import FallbackRule, Prediction
from conftest import PROJECT_ROOT, TINY_LABELS

APP = PROJECT_ROOT / "app.py"
TIMEOUT = 120  # the first run in a process loads the model and spaCy


@pytest.fixture
def app_env(request: pytest.FixtureRequest, settings_env: Path, untrained_model_dir: Path,
            monkeypatch: pytest.MonkeyPatch) -> Path:
    """The app's settings, with the schema created as stage 2 does (the app only checks it)."""
    monkeypatch.setenv("MODEL_SOURCE", str(untrained_model_dir))
    if "db_url" in request.fixturenames:  # the test's own database: DATABASE_URL must point at it first
        request.getfixturevalue("db_url")
    db.create_schema(config.get_settings().database_url)
    return settings_env


def start_app(secrets: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.secrets.update(secrets or {})
    at.run()
    assert not at.exception, at.exception
    return at


def classify(at: AppTest, message: str) -> AppTest:
    at.text_area[0].input(message)
    at.button[0].click().run()  # the form's Classify button
    assert not at.exception, at.exception
    return at


def show_view(at: AppTest, view: str) -> AppTest:
    at.sidebar.radio(key="view").set_value(view).run()
    assert not at.exception, at.exception
    return at


def rows(url: str, table: str) -> list[dict]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY id"))]
    finally:
        engine.dispose()


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_prediction_is_masked_logged_and_feedback_saved(app_env: Path, db_url: str) -> None:
    at = start_app()
    assert any("Type a customer message" in i.value for i in at.info)
    classify(at, "Where is my order? Mail john.doe@example.com or call +1 415 555 0100")
    assert metric(at, "Intent") in TINY_LABELS + [config.get_settings().fallback_label]
    assert metric(at, "Confidence").endswith("%")
    seen = at.code[0].value
    assert "john.doe@example.com" not in seen and "555" not in seen and "where is my order" in seen
    assert len(at.get("plotly_chart")) == 1  # the top-3 bar chart

    [logged] = rows(db_url, "predictions")
    assert "john.doe@example.com" not in logged["text"] and logged["model_version"] == "test-untrained"
    assert logged["latency_ms"] > 0 and logged["channel"] == "app"

    at.selectbox(key="feedback_label").set_value("refund").run()
    at.button(key="feedback_save").click().run()
    assert any("refund" in s.value for s in at.success)
    [fb] = rows(db_url, "feedback")
    assert fb["correct_label"] == "refund" and fb["prediction_id"] == logged["id"]
    assert fb["text"] == logged["text"] and bool(fb["is_correct"]) == (logged["intent"] == "refund")

    # Moving the threshold slider changes the answer shown, without logging the prediction again.
    at.sidebar.slider(key="threshold").set_value(1.0).run()
    assert metric(at, "Intent") == config.get_settings().fallback_label
    assert any("fallback" in w.value for w in at.warning)
    assert len(rows(db_url, "predictions")) == 1


def test_marking_correct_and_monitoring(app_env: Path) -> None:
    at = start_app()
    classify(at, "I want my money back")
    shown = metric(at, "Intent")
    at.button(key="feedback_correct").click().run()
    url = config.get_settings().database_url
    [fb] = rows(url, "feedback")
    assert fb["correct_label"] == shown and bool(fb["is_correct"])

    classify(at, "cancel my order please")
    show_view(at, "Monitoring & feedback")
    assert metric(at, "Predictions") == "2"
    assert metric(at, "Feedback marked correct") == "100%"
    assert len(at.dataframe) == 2  # recent predictions and feedback tables


def test_empty_input_gets_a_friendly_prompt(app_env: Path) -> None:
    at = classify(start_app(), "   ")
    assert any("Type a customer message" in i.value for i in at.info)
    assert not at.metric
    assert rows(config.get_settings().database_url, "predictions") == []


def test_long_input_is_truncated_with_a_notice(app_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_TEXT_CHARS", "40")
    at = classify(start_app(), "where is my parcel " * 30)
    assert any("only the first 40" in w.value for w in at.warning)
    [logged] = rows(config.get_settings().database_url, "predictions")
    assert len(logged["text"]) <= 40


def test_batch_upload_gives_predictions_and_download(app_env: Path) -> None:
    at = show_view(start_app(), "Batch")
    csv = "id,Text\n1,Where is my order?\n2,Refund please to jane@example.org\n3,\n"
    at.file_uploader(key="batch_upload").set_value(("msgs.csv", csv.encode(), "text/csv")).run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert list(table["id"]) == [1, 2, 3] or list(table["id"].astype(str)) == ["1", "2", "3"]
    assert set(table["intent"]) <= set(TINY_LABELS) | {config.get_settings().fallback_label}
    assert table["confidence"].between(0, 1).all()
    assert "jane@example.org" not in " ".join(table["masked_text"])
    assert len(at.get("download_button")) == 1
    logged = rows(config.get_settings().database_url, "predictions")
    assert len(logged) == 3 and {r["channel"] for r in logged} == {"batch"}


def test_batch_upload_without_text_column_is_a_clear_error(app_env: Path) -> None:
    at = show_view(start_app(), "Batch")
    at.file_uploader(key="batch_upload").set_value(("x.csv", b"id,label\n1,refund\n", "text/csv")).run()
    assert not at.exception
    [error] = at.error
    assert "no text column" in error.value
    assert not at.dataframe


def write_quality_artifacts(folder: Path, model_version: str = "test-untrained") -> None:
    """Stage 5 outputs in `folder`, stamped as the evaluation of `model_version` (the served model's by default)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    metrics = {"model_version": model_version, "accuracy": 0.9, "macro_f1": 0.85, "weighted_f1": 0.88, "ece": 0.03,
               "noisy_accuracy": 0.8, "noisy_macro_f1": 0.75, "noisy": {"accuracy": 0.8, "macro_f1": 0.75, "n": 9},
               "test": {"accuracy": 0.9, "n": 10}, "fallback": {"threshold": 0.5, "test": {"coverage": 0.95}}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    pd.DataFrame({"label": TINY_LABELS, "precision": [1, 0.5, 0.8], "recall": [1, 0.5, 0.7],
                  "f1": [1.0, 0.5, 0.75], "support": [3, 4, 3]}).to_csv(folder / "per_class_report.csv", index=False)
    pd.DataFrame([[3, 0, 0], [1, 2, 1], [0, 1, 2]], index=pd.Index(TINY_LABELS, name="true"),
                 columns=TINY_LABELS).reset_index().to_csv(folder / "confusion_matrix.csv", index=False)
    pd.DataFrame({"text": ["a", "b", "c"], "label": ["refund", "refund", "other"],
                  "predicted": ["check_order", "other", "refund"], "confidence": [0.9, 0.6, 0.5]}
                 ).to_csv(folder / "misclassified.csv", index=False)
    Image.new("RGB", (8, 8), "white").save(folder / "reliability.png")


def test_model_quality_view(app_env: Path, tmp_path: Path) -> None:
    write_quality_artifacts(tmp_path / "artifacts")
    at = show_view(start_app(), "Model quality")
    assert metric(at, "accuracy") == "0.900" and metric(at, "macro f1") == "0.850"
    assert len(at.get("plotly_chart")) == 2  # per-class F1 and the confusion matrix
    assert any("confidence_histogram.png not found" in i.value for i in at.info)  # missing plot: an info box
    assert len(at.image) == 1 and at.image[0].captions == ["reliability"]
    assert len(at.dataframe[0].value) == 2  # clean vs noisy: accuracy and macro_f1
    assert len(at.dataframe[1].value) == 3  # misclassified, unfiltered
    at.selectbox(key="mis_true").set_value("refund").run()
    assert len(at.dataframe[1].value) == 2
    at.selectbox(key="mis_pred").set_value("other").run()
    assert list(at.dataframe[1].value["text"]) == ["b"]


def test_evaluation_of_another_model_is_not_mixed_in(app_env: Path, tmp_path: Path) -> None:
    # ARTIFACTS_DIR was re-evaluated for a retrained model; the served one is still test-untrained.
    write_quality_artifacts(tmp_path / "artifacts", model_version="m-retrained")
    at = show_view(start_app(), "Model quality")
    assert not at.dataframe or all("predicted" not in d.value.columns for d in at.dataframe)  # no misclassified table
    assert all(m.label != "accuracy" for m in at.metric) and not at.image  # nor its metrics or plots
    [why] = [i.value for i in at.info if "No misclassified examples for this model" in i.value]
    assert "m-retrained" in why and "test-untrained" in why and "message text" in why
    assert not at.exception and not at.error


def test_evaluation_folders_only_takes_artifacts_of_the_served_model(tmp_path: Path) -> None:
    release, artifacts = tmp_path / "release", tmp_path / "artifacts"
    assert dash.evaluation_folders(release, artifacts, "m1")[0] == [release]
    assert "no evaluation" in dash.evaluation_folders(release, artifacts, "m1")[1]
    artifacts.mkdir()
    (artifacts / "metrics.json").write_text(json.dumps({"model_version": "m1"}))
    assert dash.evaluation_folders(release, artifacts, "m1") == ([release, artifacts], None)
    assert dash.evaluation_folders(release, artifacts, "")[0] == [release]  # unversioned: never assume a match
    (artifacts / "metrics.json").write_text("[not an object]")
    assert dash.evaluation_folders(release, artifacts, "m1")[0] == [release]


def test_model_quality_without_artifacts_explains(app_env: Path) -> None:
    at = show_view(start_app(), "Model quality")
    assert any("export_bert_metrics.py" in i.value for i in at.info)
    assert not at.get("plotly_chart") and not at.error


def test_latest_local_release_is_served_with_its_metrics(settings_env: Path, tiny_release: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_DIR", str(tiny_release))
    release = json.loads((tiny_release / "intent-classifier" / "v1" / "release.json").read_text())
    at = start_app()
    sidebar = " ".join(m.value for m in at.sidebar.markdown) + " ".join(c.value for c in at.sidebar.caption)
    assert release["version"] in sidebar and release["dataset_fingerprint"][:16] in sidebar
    assert at.sidebar.slider(key="threshold").value == pytest.approx(0.05)  # the release's tuned threshold
    show_view(at, "Model quality")  # metrics come from the release folder, not ARTIFACTS_DIR
    assert metric(at, "accuracy") == "0.500" and metric(at, "ece") == "0.100"


def test_missing_release_gives_a_helpful_page(settings_env: Path) -> None:
    at = start_app()
    assert "no release in the local registry" in at.error[0].value
    assert any("push_model.py" in m.value for m in at.markdown)
    assert not at.sidebar.radio


def test_broken_release_gives_a_helpful_page(settings_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = settings_env / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    monkeypatch.setenv("MODEL_SOURCE", str(broken))
    at = start_app()
    assert "cannot be loaded" in at.error[0].value and "push_model.py" in at.markdown[0].value


def test_streamlit_secrets_override_config(settings_env: Path, untrained_model_dir: Path) -> None:
    # Config alone names no release; the secret (as on Streamlit Community Cloud) does.
    at = start_app(secrets={"MODEL_SOURCE": str(untrained_model_dir)})
    assert not at.error and any("test-untrained" in m.value for m in at.sidebar.markdown)


# ---------------------------------------------------------------- dashboard helpers

def test_settings_with_secrets_replaces_only_given_values(settings_env: Path) -> None:
    base = config.get_settings()
    merged = dash.settings_with_secrets(base, {"HF_TOKEN": "hf_x", "DATABASE_URL": " ", "OTHER": "y"})
    assert merged.hf_token == "hf_x" and merged.database_url == base.database_url
    assert dash.settings_with_secrets(base, {}) is base
    assert "hf_x" not in repr(merged)


def test_apply_rule() -> None:
    pred = Prediction("t", "refund", "refund", 0.6, False, [("refund", 0.6), ("other", 0.3)])
    assert dash.apply_rule(pred, FallbackRule(0.5, 0.0, "unknown")) == ("refund", False)
    assert dash.apply_rule(pred, FallbackRule(0.7, 0.0, "unknown")) == ("unknown", True)
    assert dash.apply_rule(pred, FallbackRule(0.0, 0.4, "unknown")) == ("unknown", True)


@pytest.mark.parametrize("data, message", [
    (b"", "empty"), (b"text\n", "no rows"), (b"\xff\xfe\x00bad", "UTF-8"), (b'text\n"unterminated\n', "readable CSV"),
])
def test_read_upload_rejects_bad_files(data: bytes, message: str) -> None:
    with pytest.raises(PipelineError, match=message):
        dash.read_upload(data)


def test_find_text_column() -> None:
    assert dash.find_text_column(["id", "Message"]) == "Message"
    with pytest.raises(PipelineError, match="no text column"):
        dash.find_text_column(["id", "label"])


def test_headline_and_noisy_metrics_from_nested_json() -> None:
    metrics = {"test": {"accuracy": 0.9, "per_class": {"a": {"f1": 0.1}}}, "macro_f1": 0.8,
               "val": {"accuracy": 0.1}, "noisy": {"accuracy": 0.7, "n": 5}, "labels": ["a"]}
    assert dash.headline_metrics(metrics) == {"accuracy": 0.9, "macro_f1": 0.8}
    assert dash.clean_vs_noisy(metrics).to_dict("records") == [{"metric": "accuracy", "clean": 0.9, "noisy": 0.7}]


def test_per_class_f1_drops_summary_rows() -> None:
    table = pd.DataFrame({"Unnamed: 0": ["a", "b", "macro avg"], "f1-score": [0.9, 0.4, 0.6], "support": [1, 2, 3]})
    assert list(dash.per_class_f1(table)["intent"]) == ["b", "a"]


def test_monitoring_summary_buckets_and_low_confidence() -> None:
    now = pd.Timestamp("2026-01-01 10:05")
    logged = pd.DataFrame({
        "created_at": [now, now + pd.Timedelta(minutes=5), now + pd.Timedelta(hours=1)],
        "intent": ["refund", "unknown", "refund"], "confidence": [0.9, 0.2, 0.55],
        "is_fallback": [False, True, False], "latency_ms": [10.0, 20.0, 30.0],
    })
    summary = dash.monitoring_summary(logged, threshold=0.6)
    over_time = summary["over_time"]
    assert list(over_time["predictions"]) == [2, 1]
    assert list(over_time["low_confidence_rate"]) == [0.5, 1.0]
    assert summary["intent_mix"].loc[pd.Timestamp("2026-01-01 10:00"), "refund"] == 1
    assert dash.monitoring_summary(logged.iloc[:0], 0.5) == {}


def test_unreachable_database_still_answers(app_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql+pymysql://root:s3cret@127.0.0.1:1/nowhere")
    at = classify(start_app(), "where is my order")
    warning = at.sidebar.warning[0].value
    assert "not being logged" in warning and "s3cret" not in warning and "127.0.0.1" not in warning
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "s3cret" not in captions and "127.0.0.1" not in captions and "mysql: nowhere" in captions
    assert metric(at, "Intent") in TINY_LABELS
    assert all(b.key != "feedback_correct" for b in at.button)  # no feedback without a database


def test_database_without_the_schema_is_one_line_naming_stage_2(settings_env: Path, untrained_model_dir: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_SOURCE", str(untrained_model_dir))
    url = config.get_settings().database_url  # a fresh SQLite file: no schema (stage 2 never ran)
    at = classify(start_app(), "where is my order")
    warning = at.sidebar.warning[0].value
    assert "not being logged" in warning and "python load_to_mysql.py --schema-only" in warning
    assert "\n" not in warning and str(settings_env) not in warning
    assert metric(at, "Intent") in TINY_LABELS  # answering still works
    engine = sa.create_engine(url)
    try:
        assert sa.inspect(engine).get_table_names() == []  # the app created nothing
    finally:
        engine.dispose()


def test_model_quality_shows_out_of_scope_detection(app_env: Path, tmp_path: Path) -> None:
    folder = tmp_path / "artifacts"
    write_quality_artifacts(folder)
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["oos"] = {"method": "mahalanobis", "pooling": "mean", "threshold": 812.5, "max_accuracy_drop": 0.008,
                      "oos_labels": ["other"],
                      "test": {"n_in_scope": 8, "n_known_off_topic": 2,
                               "in_scope_accuracy": {"model_only": 0.9, "softmax_only": 0.875, "with_oos": 0.875},
                               "known_off_topic_recall": {"softmax_only": 0.5, "with_oos": 1.0}},
                      "off_topic": {"file": "off_topic.csv", "n": 20,
                                    "recall": {"softmax_only": 0.6, "with_oos": 0.95}}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    at = show_view(start_app(), "Model quality")
    [table] = [d.value for d in at.dataframe if "with detector" in d.value.columns]
    assert table["with detector"].tolist() == [0.95, 0.875, 1.0]
    assert table["softmax rule only"].tolist() == [0.6, 0.875, 0.5]
    assert any("812.5" in c.value and "other" in c.value for c in at.caption)
    assert not at.exception
