"""Stage 7, the dashboard: model release + database -> predictions, quality report, monitoring.

`streamlit run app.py` (or `python app.py --port 8501`) serves five views: Predict (one message,
PII-masked before the model sees it, logged with feedback buttons), Batch (CSV upload -> predictions
download), Model quality (the release's evaluation artifacts), Monitoring & feedback (what was
logged) and Review (approve or reject corrections before they can reach training). It binds to
127.0.0.1 (.streamlit/config.toml); shared, every view needs a login (intent_pipeline/ui_login.py).
`python app.py --hash-password` makes the DASHBOARD_PASSWORD_HASH for the password login.
The release comes from MODEL_SOURCE (see intent_pipeline/registry.py), is loaded once
per process and replaced in the background when a new one serves (intent_pipeline/reload.py). Settings come from st.secrets when a secrets file exists (Streamlit Community Cloud),
else from config.get_settings().
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

import config
from intent_pipeline import auth, db, launch, ui_login, ui_quality, ui_review
from intent_pipeline import dashboard as dash
from intent_pipeline.cli import run_cli
from intent_pipeline.db_guard import DatabaseGuard, DatabaseUnavailable
from intent_pipeline.errors import PipelineError
from intent_pipeline.predict import FallbackRule, IntentClassifier, Prediction
from intent_pipeline.reload import ReleasePoller
from intent_pipeline.serving.service import Answer, PredictionService, load_masker, load_model
from intent_pipeline.text import is_blank

log = logging.getLogger(__name__)

VIEWS = ("Predict", "Batch", "Model quality", "Monitoring & feedback", "Review")
MAX_BATCH_ROWS = 5000
MAX_UPLOAD_BYTES = 5_000_000  # checked before parsing; Streamlit's own cap (config.toml) is 10 MB
BATCH_CHUNK = 256  # rows per progress step (spaCy batches well; fewer, larger steps)
CACHED_BATCHES = 3  # uploads whose results a session keeps (by content hash)
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
    guard: DatabaseGuard  # every database call goes through it: one-line warnings, cool-down after failures
    user: str = ""  # who is signed in (ui_login.LOCAL_USER on an unshared local dashboard)


# ---------------------------------------------------------------- cached resources

def current_secrets() -> dict:
    try:
        return st.secrets.to_dict() if st.secrets.load_if_toml_exists() else {}
    except Exception as exc:  # a malformed secrets file must not take the page down; config still applies
        log.warning("ignoring unreadable Streamlit secrets: %s", type(exc).__name__)
        return {}


def current_settings(secrets: dict) -> config.Settings:
    return dash.settings_with_secrets(config.get_settings(), secrets)


@st.cache_resource(show_spinner="Loading the model and the PII masker ...")
def load_service(source: str, registry_dir: str, repo_id: str, backend: str, fallback_label: str, spacy_model: str,
                 _settings: config.Settings) -> PredictionService:
    """The same prediction service as the API (clean, mask, score, log rows), once per process.

    A background poller swaps a new serving release into it (a new LATEST, a moved Hub `serving`
    tag, a rollback) without a restart. Keyed on the settings that pick a release; the token (in
    _settings) is deliberately not a cache key.
    """
    service = PredictionService(_settings, load_model(_settings, num_threads=MODEL_THREADS), load_masker(spacy_model),
                                MODEL_THREADS)
    ReleasePoller(_settings, lambda: service.model.folder, lambda folder: service.swap_model(
        load_model(_settings, source=str(folder), num_threads=MODEL_THREADS))).start()
    return service


@st.cache_resource
def database_guard(url: str) -> DatabaseGuard:
    return DatabaseGuard(url)  # connects on first use; shared by every session, so is its cool-down


def build_context(settings: config.Settings) -> AppContext | None:
    """Everything the views need, or None after rendering a helpful page about what is missing."""
    try:
        service = load_service(settings.model_source, str(settings.registry_dir), settings.hf_repo_id,
                               settings.inference_backend, settings.fallback_label, settings.spacy_model, settings)
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
    guard = database_guard(settings.database_url)
    try:
        guard.engine("log predictions")
    except DatabaseUnavailable as exc:  # answering still matters more than logging
        st.sidebar.warning(f"Predictions are not being logged. {exc}")
    model = service.model  # once: this rerun shows one release throughout, even if a new one is swapped in
    classifier = model.classifier
    return AppContext(settings, model.folder, service, classifier, classifier.fallback, guard)


def db_call(ctx: AppContext, what: str, fn, *args, **kwargs):
    """`fn(engine, ...)` through the guard; on any database trouble a one-line warning and None."""
    try:
        return ctx.guard.run(what, fn, *args, **kwargs)
    except DatabaseUnavailable as exc:
        st.warning(str(exc))
        return None


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
    st.sidebar.caption(f"database `{db.describe_url(ctx.settings.database_url)}`")
    threshold = st.sidebar.slider(
        "Fallback threshold", 0.0, 1.0, float(clf.fallback.threshold), 0.01, key="threshold",
        help=f"Below this confidence the answer is '{ctx.settings.fallback_label}'. "
        f"Tuned on validation: {clf.fallback.threshold:.2f}.",
    )
    ctx.rule = FallbackRule(threshold, clf.fallback.margin, ctx.settings.fallback_label)
    return view


def log_rows(ctx: AppContext, rows: list[dict]) -> list[int | None]:
    # Logging must never cost the user the answer: on database trouble, a warning and no ids.
    ids = db_call(ctx, "log this prediction" if len(rows) == 1 else f"log these {len(rows):,} predictions",
                  db.log_predictions, rows)
    return ids if ids is not None else [None] * len(rows)


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
    intent, _ = dash.apply_rule(pred, ctx.rule)
    if answer.truncated:
        st.warning(f"Your message has {answer.chars:,} characters; only the first "
                   f"{ctx.settings.max_text_chars:,} were classified.")
    left, right = st.columns(2)
    left.metric("Intent", intent)
    right.metric("Confidence", f"{pred.confidence:.1%}")
    explanation = dash.fallback_explanation(pred, ctx.rule)
    if explanation:
        st.warning(explanation)
    st.plotly_chart(dash.top_k_figure(pred), key="top_k")
    st.markdown("**What the model saw** (cleaned, PII masked):")
    st.code(pred.text, language=None, wrap_lines=True)
    st.caption(f"answered in {answer.latency_ms:.0f} ms · model {ctx.classifier.version}")


def feedback_box(ctx: AppContext, last: dict) -> None:
    if ctx.guard.retry_in_s() > 0:
        return  # the database is down: no buttons that cannot save
    if last["feedback"]:
        st.success(f"Thanks! Feedback saved for review: the right intent is '{last['feedback']}'. "
                   "It reaches training once a reviewer approves it.")
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
    if label and db_call(ctx, "save your feedback", db.save_feedback, answer.masked, shown, label,
                         prediction_id=last["prediction_id"], model_version=ctx.classifier.version) is not None:
        last["feedback"] = label
        st.rerun()


# ---------------------------------------------------------------- Batch

def batch_view(ctx: AppContext) -> None:
    st.header("Batch")
    st.caption(f"Upload a CSV with a `text` (or `message`/`query`) column, up to {MAX_BATCH_ROWS:,} rows "
               f"and {MAX_UPLOAD_BYTES / 1e6:.0f} MB.")
    upload = st.file_uploader("CSV file", type=["csv"], key="batch_upload")
    if upload is None:
        return
    try:
        dash.check_upload_size(upload.size, MAX_UPLOAD_BYTES)
        data = upload.getvalue()
        result = cached_batch(ctx, dash.upload_digest(data), data)
    except PipelineError as exc:
        st.error(f"Cannot use this file: {exc}")
        return
    table = dash.batch_frame(result["frame"], result["masked"], result["preds"], ctx.rule)
    st.success(f"Classified {len(table):,} messages ({result['per_row_ms']:.0f} ms each).")
    st.dataframe(table.drop(columns=[result["column"]]), hide_index=True)
    st.download_button("Download predictions (CSV)", table.to_csv(index=False).encode("utf-8"),
                       file_name="predictions.csv", mime="text/csv", key="batch_download")


def cached_batch(ctx: AppContext, digest: str, data: bytes) -> dict:
    """This upload's predictions, computed and logged once per session and model (keyed by content hash).

    Later reruns (a slider move, a download) re-apply the fallback rule to the cached answers.
    """
    cache: dict = st.session_state.setdefault("batch_results", {})
    key = (digest, ctx.classifier.version)
    if key not in cache:
        frame = dash.read_upload(data, MAX_BATCH_ROWS, MAX_UPLOAD_BYTES)
        column = dash.find_text_column(frame.columns)
        masked, preds, per_row_ms, rows = classify_batch(ctx, frame[column].astype(str).tolist())
        log_rows(ctx, rows)
        while len(cache) >= CACHED_BATCHES:
            cache.pop(next(iter(cache)))
        cache[key] = {"frame": frame, "column": column, "masked": masked, "preds": preds, "per_row_ms": per_row_ms}
    return cache[key]


def classify_batch(ctx: AppContext, texts: list[str]) -> tuple[list[str], list[Prediction], float, list[dict]]:
    """Score `texts` through the prediction service in chunks behind a progress bar.

    Returns (masked texts, predictions, ms per row, rows to log).
    """
    bar = st.progress(0.0, text=f"Classifying {len(texts):,} messages ...")
    masked: list[str] = []
    preds: list[Prediction] = []
    rows: list[dict] = []
    latency_ms = 0.0
    for start in range(0, len(texts), BATCH_CHUNK):
        chunk = texts[start:start + BATCH_CHUNK]
        scored = ctx.service.predict(chunk, top_k=3, rule=ctx.rule, channel="batch",
                                     max_chars=ctx.settings.max_text_chars)
        masked += scored.masked
        preds += scored.predictions
        rows += scored.log_rows
        latency_ms += scored.latency_ms
        bar.progress(len(preds) / len(texts), text=f"Classified {len(preds):,} of {len(texts):,} messages ...")
    bar.empty()
    return masked, preds, latency_ms / max(1, len(preds)), rows


# ---------------------------------------------------------------- Model quality

def quality_view(ctx: AppContext) -> None:
    ui_quality.quality_view(ctx.folder, ctx.settings.artifacts_dir, str(ctx.classifier.info.get("model_version", "")),
                              serving_version=ctx.classifier.version)


# ---------------------------------------------------------------- Monitoring & feedback

def monitoring_view(ctx: AppContext) -> None:
    st.header("Monitoring & feedback")
    logged = db_call(ctx, "read the logged predictions", db.read_predictions, limit=MONITOR_ROWS)
    if logged is None:
        return
    feedback = db_call(ctx, "read the feedback", db.read_feedback, limit=MONITOR_ROWS, newest_first=True)
    if feedback is None:
        return
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
    st.caption("Only corrections approved in the Review view reach the next training set (`prepare_data.py`).")
    st.dataframe(feedback.head(200), hide_index=True)


def review_view(ctx: AppContext) -> None:
    ui_review.review_view(ctx.guard, ctx.user, auth.may_review(ctx.user, ctx.settings.dashboard_reviewers))


# ---------------------------------------------------------------- entry points

def render() -> None:
    st.set_page_config(page_title="Customer intent dashboard", page_icon="💬", layout="wide")
    secrets = current_secrets()
    settings = current_settings(secrets)
    user = ui_login.require_login(settings.dashboard_password_hash, secrets)  # before anything is loaded
    if user is None:
        return
    ctx = build_context(settings)
    if ctx is None:
        return
    ctx.user = user
    view = sidebar(ctx)
    {"Predict": predict_view, "Batch": batch_view, "Model quality": quality_view,
     "Monitoring & feedback": monitoring_view, "Review": review_view}[view](ctx)


def inside_streamlit() -> bool:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    return get_script_run_ctx(suppress_warning=True) is not None


def main(argv: Sequence[str] | None = None) -> int:
    """`python app.py` starts `streamlit run app.py`; under Streamlit the page itself renders."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8501, help="port to serve the dashboard on (default 8501)")
    parser.add_argument("--address", default=None,
                        help="address to bind (default: DASHBOARD_ADDRESS, 127.0.0.1); 0.0.0.0 for every "
                             "interface, which needs a login (DASHBOARD_PASSWORD_HASH or Streamlit OIDC)")
    parser.add_argument("--hash-password", action="store_true",
                        help="read a password (prompt, or one line on stdin) and print its DASHBOARD_PASSWORD_HASH")
    args = parser.parse_args(argv)
    if args.hash_password:
        print(auth.hash_password(auth.read_new_password()))
        print("Set it as DASHBOARD_PASSWORD_HASH in .env (or in .streamlit/secrets.toml).", file=sys.stderr)
        return 0
    settings = config.get_settings()
    address = args.address or settings.dashboard_address
    launch.check_dashboard_access(settings, address)
    return launch.run_dashboard(args.port, address)


if __name__ == "__main__":
    if inside_streamlit():
        render()
    else:
        sys.exit(run_cli(main))
