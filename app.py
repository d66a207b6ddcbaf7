"""Stage 7, the dashboard: model release + database -> predictions, quality report, monitoring.

`streamlit run app.py` (or `python app.py --port 8501`) serves four views: Predict (one message,
PII-masked before the model sees it, logged with feedback buttons), Batch (CSV upload -> predictions
download), Model quality (the release's evaluation artifacts) and Monitoring & feedback (what was
logged). The release comes from MODEL_SOURCE (see intent_pipeline/registry.py) and is loaded once
per process. Settings come from st.secrets when a secrets file exists (Streamlit Community Cloud),
else from config.get_settings().
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

import config
from intent_pipeline import artifacts
from intent_pipeline import dashboard as dash
from intent_pipeline import db
from intent_pipeline.cli import run_cli
from intent_pipeline.errors import PipelineError
from intent_pipeline.predict import FallbackRule, IntentClassifier
from intent_pipeline.registry import resolve_model_source
from intent_pipeline.serving.service import Answer, PredictionService, load_masker, load_model, truncate_text
from intent_pipeline.text import is_blank

log = logging.getLogger(__name__)

VIEWS = ("Predict", "Batch", "Model quality", "Monitoring & feedback")
MAX_BATCH_ROWS = 5000
MONITOR_ROWS = 50_000
# One intra-op thread: a single short message gains nothing from more, and on a small shared CPU
# (2 cores here, Streamlit Cloud) extra threads contend with spaCy and the server (measured: 30 ms
# vs 300 ms per message under load; see benchmarks/bench_app.py).
MODEL_THREADS = 1
HOW_TO_RELEASE = (
    "Build and release a model first:\n\n"
    "```\npython run_pipeline.py --no-app\n```\n"
    "or stage by stage: `python finetune_bert.py`, `python export_bert_metrics.py`, `python push_model.py`.\n\n"
    "Or point `MODEL_SOURCE` at a release folder or a Hugging Face Hub repo id (`owner/name[@revision]`)."
)


@dataclass
class AppContext:
    settings: config.Settings
    folder: Path
    service: PredictionService
    classifier: IntentClassifier
    rule: FallbackRule
    engine: object | None  # None when the database is unreachable: the app still predicts


# ---------------------------------------------------------------- cached resources

def current_settings() -> config.Settings:
    settings = config.get_settings()
    try:
        secrets = dict(st.secrets) if st.secrets.load_if_toml_exists() else {}
    except Exception as exc:  # a malformed secrets file must not take the page down; config still applies
        log.warning("ignoring unreadable Streamlit secrets: %s", type(exc).__name__)
        secrets = {}
    return dash.settings_with_secrets(settings, secrets)


@st.cache_resource(show_spinner="Finding the model release ...")
def release_folder(source: str, registry_dir: str, repo_id: str, _settings: config.Settings) -> Path:
    # Keyed on the settings that pick a release; the token (in _settings) is deliberately not a cache key.
    return resolve_model_source(_settings)


@st.cache_resource(show_spinner="Loading the model and the PII masker ...")
def load_service(folder: str, backend: str, fallback_label: str, spacy_model: str,
                 _settings: config.Settings) -> PredictionService:
    """The same prediction service as the API (clean, mask, score, log rows), once per process."""
    model = load_model(_settings, source=folder, num_threads=MODEL_THREADS)
    return PredictionService(_settings, model, load_masker(spacy_model), MODEL_THREADS)


@st.cache_resource(show_spinner="Connecting to the database ...")
def connect_db(url: str):
    return db.connect(url)


def build_context() -> AppContext | None:
    """Everything the views need, or None after rendering a helpful page about what is missing."""
    settings = current_settings()
    try:
        folder = release_folder(settings.model_source, str(settings.registry_dir), settings.hf_repo_id, settings)
        service = load_service(str(folder), settings.inference_backend, settings.fallback_label,
                               settings.spacy_model, settings)
    except (OSError, ImportError) as exc:  # the spaCy model behind the masker is missing or broken
        st.error(f"The PII masker cannot be loaded, so messages cannot be classified safely: {exc}")
        st.markdown(f"Install the spaCy model `{settings.spacy_model}` (see requirements.txt) or set SPACY_MODEL.")
        return None
    except PipelineError as exc:
        show_no_model(str(exc))
        return None
    except Exception as exc:  # a broken release fails in library-specific ways; the user needs the fix, not a trace
        log.exception("model release cannot be loaded")
        show_no_model(f"the model release cannot be loaded ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
        return None
    engine = None
    try:
        engine = connect_db(settings.database_url)
    except PipelineError as exc:
        st.sidebar.warning(f"Predictions are not being logged: {exc}")
    except Exception as exc:  # e.g. an unwritable SQLite folder: answering still matters more than logging
        st.sidebar.warning(f"Predictions are not being logged: the database cannot be opened ({type(exc).__name__})")
    classifier = service.model.classifier
    return AppContext(settings, folder, service, classifier, classifier.fallback, engine)


def show_no_model(reason: str) -> None:
    st.title("Customer intent dashboard")
    st.error(f"No model to serve: {reason}")
    st.markdown(HOW_TO_RELEASE)


def sidebar(ctx: AppContext) -> str:
    clf = ctx.classifier
    st.sidebar.title("Intent dashboard")
    view = st.sidebar.radio("View", VIEWS, key="view")
    st.sidebar.markdown(f"**Model** `{clf.version}`")
    st.sidebar.caption(f"dataset fingerprint `{clf.fingerprint[:16] or 'unknown'}`")
    st.sidebar.caption(f"release folder `{ctx.folder}` · backend `{getattr(clf, 'backend', 'torch')}`")
    st.sidebar.caption(f"database `{config.mask_url(ctx.settings.database_url)}`")
    threshold = st.sidebar.slider(
        "Fallback threshold", 0.0, 1.0, float(clf.fallback.threshold), 0.01, key="threshold",
        help=f"Below this confidence the answer is '{ctx.settings.fallback_label}'. "
        f"Tuned on validation: {clf.fallback.threshold:.2f}.",
    )
    ctx.rule = FallbackRule(threshold, clf.fallback.margin, ctx.settings.fallback_label)
    return view


def log_rows(ctx: AppContext, rows: list[dict]) -> list[int | None]:
    if ctx.engine is None:
        return [None] * len(rows)
    try:
        return db.log_predictions(ctx.engine, rows)
    except Exception as exc:  # logging must never cost the user the answer; say so instead
        st.warning(f"This prediction was not logged: {type(exc).__name__}")
        return [None] * len(rows)


# ---------------------------------------------------------------- Predict

def classify(ctx: AppContext, message: str) -> dict:
    answer = ctx.service.answer(message, ctx.rule, channel="app", max_chars=ctx.settings.max_text_chars)
    [prediction_id] = log_rows(ctx, [answer.row])
    return {"answer": answer, "prediction_id": prediction_id, "feedback": None}


def predict_view(ctx: AppContext) -> None:
    st.header("Predict")
    with st.form("predict_form"):
        message = st.text_area("Customer message", height=110, placeholder="e.g. Where is my order? It's been a week.")
        submitted = st.form_submit_button("Classify", type="primary")
    if submitted:
        st.session_state["last"] = None if is_blank(message) else classify(ctx, message)
    last = st.session_state.get("last")
    if last is None:
        st.info("Type a customer message above and press **Classify** to see which intent the model finds.")
        return
    show_prediction(ctx, last)
    feedback_box(ctx, last)


def show_prediction(ctx: AppContext, last: dict) -> None:
    answer: Answer = last["answer"]
    pred = answer.prediction
    intent, is_fallback = dash.apply_rule(pred, ctx.rule)
    if answer.truncated:
        st.warning(f"Your message has {answer.chars:,} characters; only the first "
                   f"{ctx.settings.max_text_chars:,} were classified.")
    left, right = st.columns(2)
    left.metric("Intent", intent)
    right.metric("Confidence", f"{pred.confidence:.1%}")
    if is_fallback:
        st.warning(f"Confidence is below the threshold ({ctx.rule.threshold:.2f}) or too close to the runner-up, "
                   f"so the answer is the fallback '{intent}'. The model's best guess was '{pred.top_intent}'.")
    st.plotly_chart(dash.top_k_figure(pred), key="top_k")
    st.markdown("**What the model saw** (cleaned, PII masked):")
    st.code(pred.text, language=None, wrap_lines=True)
    st.caption(f"answered in {answer.latency_ms:.0f} ms · model {ctx.classifier.version}")


def feedback_box(ctx: AppContext, last: dict) -> None:
    if ctx.engine is None:
        return
    if last["feedback"]:
        st.success(f"Thanks! Feedback saved: the right intent is '{last['feedback']}'.")
        return
    answer: Answer = last["answer"]
    shown, _ = dash.apply_rule(answer.prediction, ctx.rule)
    st.markdown("**Was this right?**")
    left, right = st.columns([1, 2])
    correct = left.button("Correct", icon=":material/thumb_up:", key="feedback_correct")
    choice = right.selectbox("No, the right intent is", ctx.classifier.labels, index=None,
                             placeholder="choose the right intent", key="feedback_label")
    fix = right.button("Save correction", key="feedback_save", disabled=choice is None)
    label = shown if correct else choice if fix else None
    if label:
        db.save_feedback(ctx.engine, answer.masked, shown, label,
                         prediction_id=last["prediction_id"], model_version=ctx.classifier.version)
        last["feedback"] = label
        st.rerun()


# ---------------------------------------------------------------- Batch

def batch_view(ctx: AppContext) -> None:
    st.header("Batch")
    st.caption(f"Upload a CSV with a `text` (or `message`/`query`) column, up to {MAX_BATCH_ROWS:,} rows.")
    upload = st.file_uploader("CSV file", type=["csv"], key="batch_upload")
    if upload is None:
        return
    try:
        frame = dash.read_upload(upload.getvalue(), MAX_BATCH_ROWS)
        column = dash.find_text_column(frame.columns)
    except PipelineError as exc:
        st.error(f"Cannot use this file: {exc}")
        return
    with st.spinner(f"Classifying {len(frame):,} messages ..."):
        texts = [truncate_text(t, ctx.settings.max_text_chars)[0] for t in frame[column].astype(str)]
        scored = ctx.service.predict(texts, top_k=3, rule=ctx.rule, channel="batch")
        per_row_ms = scored.latency_ms / len(texts)
    log_rows(ctx, scored.log_rows)
    result = dash.batch_frame(frame, scored.masked, scored.predictions)
    st.success(f"Classified {len(result):,} messages ({per_row_ms:.0f} ms each).")
    st.dataframe(result.drop(columns=[column]), hide_index=True)
    st.download_button("Download predictions (CSV)", result.to_csv(index=False).encode("utf-8"),
                       file_name="predictions.csv", mime="text/csv", key="batch_download")


# ---------------------------------------------------------------- Model quality

def quality_view(ctx: AppContext) -> None:
    st.header("Model quality")
    folders, left_out = dash.evaluation_folders(ctx.folder, ctx.settings.artifacts_dir,
                                                str(ctx.classifier.info.get("model_version", "")))
    report = dash.load_quality_report(folders)
    # Releases never carry misclassified.csv; when ARTIFACTS_DIR cannot stand in, the drill-down says why.
    problems = [p for p in report.problems if not (left_out and p.startswith(artifacts.MISCLASSIFIED))]
    if problems:
        st.info("Some evaluation files are missing, so parts of this page are empty: "
                + "; ".join(problems) + ". Run `python export_bert_metrics.py` (and re-release).")
    headline = dash.headline_metrics(report.metrics)
    if headline:
        for column, (name, value) in zip(st.columns(len(headline)), headline.items()):
            column.metric(name.replace("_", " "), f"{value:.3f}")
    quality_tables(report)
    noisy = dash.clean_vs_noisy(report.metrics)
    st.subheader("Clean vs noisy test set")
    if noisy.empty:
        st.info("metrics.json has no noisy-test results.")
    else:
        st.bar_chart(noisy.set_index("metric"), stack=False, horizontal=True)
        st.dataframe(noisy, hide_index=True)
    st.subheader("Calibration")
    if "ece" in headline:
        st.caption(f"expected calibration error: {headline['ece']:.3f}")
    if report.images:
        for column, (title, path) in zip(st.columns(len(report.images)), report.images.items()):
            column.image(str(path), caption=title)
    else:
        st.info("No calibration plots in this release.")
    misclassified_view(report, left_out)


def quality_tables(report: dash.QualityReport) -> None:
    st.subheader("F1 per intent")
    try:
        if "per_class" not in report.tables:
            raise PipelineError("per_class_report.csv not found")
        st.plotly_chart(dash.per_class_figure(dash.per_class_f1(report.tables["per_class"])), key="per_class")
    except PipelineError as exc:
        st.info(f"No per-class report to show: {exc}.")
    st.subheader("Confusion matrix")
    if "confusion" in report.tables:
        normalize = st.toggle("Show row percentages", key="cm_normalize")
        st.plotly_chart(dash.confusion_figure(report.tables["confusion"], normalize), key="confusion")
    else:
        st.info("No confusion matrix in this release.")


def misclassified_view(report: dash.QualityReport, left_out: str | None) -> None:
    st.subheader("Misclassified test examples")
    table = report.tables.get("misclassified")
    if table is None and left_out:
        st.info("No misclassified examples for this model: releases leave them out (they are message text), "
                f"and {left_out}. They appear here when ARTIFACTS_DIR holds stage 5's evaluation of the served model.")
        return
    try:
        true_col, pred_col = dash.misclassified_columns(table) if table is not None else (None, None)
    except PipelineError as exc:
        st.info(str(exc))
        return
    if table is None or table.empty:
        st.info("No misclassified examples to show.")
        return
    left, right = st.columns(2)
    true_label = left.selectbox("True intent", sorted(table[true_col].astype(str).unique()), index=None,
                                placeholder="any", key="mis_true")
    predicted = right.selectbox("Predicted intent", sorted(table[pred_col].astype(str).unique()), index=None,
                                placeholder="any", key="mis_pred")
    rows = dash.filter_misclassified(table, true_label, predicted)
    st.caption(f"{len(rows):,} of {len(table):,} misclassified examples")
    st.dataframe(rows, hide_index=True)


# ---------------------------------------------------------------- Monitoring & feedback

def monitoring_view(ctx: AppContext) -> None:
    st.header("Monitoring & feedback")
    if ctx.engine is None:
        st.warning("The database is unreachable, so there is nothing to monitor. Check DATABASE_URL.")
        return
    logged = db.read_predictions(ctx.engine, limit=MONITOR_ROWS)
    feedback = db.read_feedback(ctx.engine)
    if logged.empty:
        st.info("No predictions logged yet: classify a message in the Predict view.")
        return
    summary = dash.monitoring_summary(logged, ctx.rule.threshold)
    over_time = summary["over_time"]
    cols = st.columns(4)
    cols[0].metric("Predictions", f"{len(logged):,}")
    cols[1].metric("Low-confidence rate", f"{over_time['low_confidence_rate'].mul(over_time['predictions']).sum() / len(logged):.1%}")
    cols[2].metric("Median latency", f"{logged['latency_ms'].median():.0f} ms")
    agreement = f"{feedback['is_correct'].mean():.0%}" if len(feedback) else "n/a"
    cols[3].metric("Feedback marked correct", agreement, help=f"{len(feedback):,} feedback entries")
    st.subheader("Volume")
    st.bar_chart(over_time["predictions"], height=260)
    st.subheader("Intent mix")
    st.bar_chart(summary["intent_mix"], height=300)
    st.subheader("Low-confidence rate")
    st.line_chart(over_time["low_confidence_rate"], height=260)
    st.subheader("Recent predictions (masked)")
    st.dataframe(logged.head(200), hide_index=True)
    st.subheader("Feedback")
    st.caption("`prepare_data.py` folds these corrections into the next training set.")
    st.dataframe(feedback.sort_values("id", ascending=False).head(200), hide_index=True)


# ---------------------------------------------------------------- entry points

def render() -> None:
    st.set_page_config(page_title="Customer intent dashboard", page_icon="💬", layout="wide")
    ctx = build_context()
    if ctx is None:
        return
    view = sidebar(ctx)
    {"Predict": predict_view, "Batch": batch_view, "Model quality": quality_view,
     "Monitoring & feedback": monitoring_view}[view](ctx)


def inside_streamlit() -> bool:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    return get_script_run_ctx(suppress_warning=True) is not None


def main(argv: Sequence[str] | None = None) -> int:
    """`python app.py` starts `streamlit run app.py`; under Streamlit the page itself renders."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8501, help="port to serve the dashboard on (default 8501)")
    parser.add_argument("--address", default="localhost", help="address to bind (default localhost; 0.0.0.0 for all)")
    args = parser.parse_args(argv)
    command = [sys.executable, "-m", "streamlit", "run", str(Path(__file__).resolve()),
               "--server.port", str(args.port), "--server.address", args.address,
               "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    return subprocess.call(command)


if __name__ == "__main__":
    if inside_streamlit():
        render()
    else:
        sys.exit(run_cli(main))
