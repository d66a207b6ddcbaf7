"""Data and chart helpers behind the Streamlit dashboard (app.py), testable without Streamlit.

Everything here is a pure function of files, frames or settings: reading the release's evaluation
artifacts (each one optional), shaping batch uploads and the monitoring summary, and building the
Plotly figures. app.py only lays them out.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from config import Settings
from intent_pipeline import artifacts
from intent_pipeline.artifacts import Artifacts
from intent_pipeline.errors import PipelineError
from intent_pipeline.masking import TEXT_COLUMNS, find_column
from intent_pipeline.predict import OUT_OF_SCOPE, UNSURE, FallbackRule, Prediction

log = logging.getLogger(__name__)

# Secrets that Streamlit Community Cloud users put in st.secrets, and the setting each replaces.
SECRET_SETTINGS = {
    "HF_TOKEN": "hf_token",
    "HF_REPO_ID": "hf_repo_id",
    "DATABASE_URL": "database_url",
    "MODEL_SOURCE": "model_source",
    "DASHBOARD_PASSWORD_HASH": "dashboard_password_hash",
    "DASHBOARD_REVIEWERS": "dashboard_reviewers",
}
HEADLINE_METRICS = ("accuracy", "macro_f1", "weighted_f1", "ece", "fallback_rate", "coverage")
PLOT_FILES = {"reliability": artifacts.RELIABILITY_PNG, "confidence histogram": artifacts.CONFIDENCE_HISTOGRAM_PNG}
CSV_FILES = {
    "per_class": artifacts.PER_CLASS_REPORT,
    "confusion": artifacts.CONFUSION_MATRIX,
    "misclassified": artifacts.MISCLASSIFIED,
}
# sklearn's classification_report rows that are averages, not classes.
SUMMARY_ROWS = {"accuracy", "macro avg", "weighted avg", "micro avg", "samples avg"}


def settings_with_secrets(settings: Settings, secrets: Mapping[str, Any]) -> Settings:
    """Settings with the non-empty values of `secrets` (st.secrets) replacing the configured ones."""
    changes = {}
    for key, name in SECRET_SETTINGS.items():
        value = secrets.get(key)
        if value is not None and str(value).strip():
            changes[name] = str(value).strip()
    return dataclasses.replace(settings, **changes) if changes else settings


def apply_rule(prediction: Prediction, rule: FallbackRule) -> tuple[str, bool]:
    """The answer under `rule` (e.g. a threshold moved with the slider), without re-running the model.

    An out-of-scope verdict does not depend on the confidence rule, so it stands whatever the slider says."""
    reason = reason_under(prediction, rule)
    return (rule.label if reason else prediction.top_intent), reason is not None


def reason_under(prediction: Prediction, rule: FallbackRule) -> str | None:
    """Why the fallback answers under `rule`: predict.UNSURE, predict.OUT_OF_SCOPE, or None (the intent)."""
    scores = [score for _, score in prediction.top_k] + [0.0, 0.0]
    return rule.reason(scores[0], scores[1], prediction.out_of_scope)


def fallback_explanation(prediction: Prediction, rule: FallbackRule) -> str | None:
    """One sentence for the app saying why the fallback answered (None when the intent is answered)."""
    reason = reason_under(prediction, rule)
    if reason == OUT_OF_SCOPE:
        return (f"The message looks **out of scope**: unlike anything this model was trained to route, so the answer "
                f"is the fallback '{rule.label}'. The model's best guess was '{prediction.top_intent}'.")
    if reason == UNSURE:
        return (f"The model is **unsure**: confidence is below the threshold ({rule.threshold:.2f}) or too close to "
                f"the runner-up, so the answer is the fallback '{rule.label}'. The model's best guess was "
                f"'{prediction.top_intent}'.")
    return None


def top_k_frame(prediction: Prediction) -> pd.DataFrame:
    return pd.DataFrame(prediction.top_k, columns=["intent", "confidence"])


# ---------------------------------------------------------------- batch uploads

def check_upload_size(size: int, max_bytes: int) -> None:
    """Refuse an upload over `max_bytes` before anything reads it."""
    if max_bytes and size > max_bytes:
        raise PipelineError(f"the uploaded file has {size / 1e6:.1f} MB; the dashboard takes at most {max_bytes / 1e6:.0f} MB")


def upload_digest(data: bytes) -> str:
    """Content hash of an upload: the same file gives the same key, whatever its name."""
    return hashlib.sha256(data).hexdigest()


def read_upload(data: bytes, max_rows: int = 0, max_bytes: int = 0) -> pd.DataFrame:
    """Parse an uploaded CSV; any problem becomes a one-line PipelineError.

    The size is checked before parsing, and at most `max_rows + 1` rows are parsed: enough to know
    the file is too long without reading all of it.
    """
    check_upload_size(len(data), max_bytes)
    if not data.strip():
        raise PipelineError("the uploaded file is empty")
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8-sig",
                            nrows=max_rows + 1 if max_rows else None)
    except UnicodeDecodeError:
        raise PipelineError("the uploaded file is not UTF-8 text; save it as CSV (UTF-8)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise PipelineError(f"the uploaded file is not a readable CSV: {str(exc).splitlines()[0]}") from None
    if frame.empty:
        raise PipelineError("the uploaded CSV has a header but no rows")
    if max_rows and len(frame) > max_rows:
        raise PipelineError(f"the uploaded CSV has more than {max_rows:,} rows; the dashboard takes at most {max_rows:,}")
    return frame


def find_text_column(columns: Sequence[str]) -> str:
    """The column holding the messages (`text`, `message`, `query`, ...; case-insensitive)."""
    return find_column(columns, TEXT_COLUMNS, "text", "the uploaded CSV")


def batch_frame(frame: pd.DataFrame, masked: Sequence[str], predictions: Sequence[Prediction],
                rule: FallbackRule | None = None) -> pd.DataFrame:
    """The upload with the masked text and the answer for every row appended (under `rule` if given)."""
    answers = [apply_rule(p, rule) if rule is not None else (p.intent, p.is_fallback) for p in predictions]
    reasons = [reason_under(p, rule) if rule is not None else p.fallback_reason for p in predictions]
    out = frame.copy()
    out["masked_text"] = list(masked)
    out["intent"] = [intent for intent, _ in answers]
    out["top_intent"] = [p.top_intent for p in predictions]
    out["confidence"] = [round(p.confidence, 4) for p in predictions]
    out["is_fallback"] = [is_fallback for _, is_fallback in answers]
    out["fallback_reason"] = [reason or "" for reason in reasons]
    return out


# ---------------------------------------------------------------- release evaluation artifacts

@dataclass
class QualityReport:
    """The evaluation artifacts found for a release; any of them may be missing."""

    metrics: dict = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    images: dict[str, Path] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # missing or unreadable files, one line each


def find_artifact(name: str, folders: Sequence[Path]) -> Path | None:
    for folder in folders:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def evaluation_folders(release: Path, artifacts_dir: Path, model_version: str) -> tuple[list[Path], str | None]:
    """Where to read the served model's evaluation files, and why ARTIFACTS_DIR was left out (or None).

    A release never carries misclassified.csv (message text; releases may be public), so the app
    looks in ARTIFACTS_DIR too, but only when stage 5 there evaluated this very model: after a
    retrain its files describe another one, and mixing them with the release would mislead.
    """
    import json

    release, artifacts_dir = Path(release), Path(artifacts_dir)
    evaluated = None
    try:
        evaluated = json.loads(Artifacts(artifacts_dir).metrics.read_text(encoding="utf-8")).get("model_version")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        pass  # missing or unreadable: nothing there is known to belong to the served model
    if model_version and evaluated == model_version:
        return [release, artifacts_dir], None
    if evaluated is None:
        reason = f"{artifacts_dir} holds no evaluation (metrics.json) of the served model {model_version or '(unversioned)'}"
    else:
        reason = (f"the evaluation in {artifacts_dir} is of model {evaluated}, not of the served model "
                  f"{model_version or '(unversioned)'}")
    return [release], reason


def load_quality_report(folders: Sequence[Path]) -> QualityReport:
    """Read metrics.json, the report CSVs and plots from the first folder holding each one."""
    import json

    report = QualityReport()
    path = find_artifact(artifacts.METRICS, folders)
    if path is None:
        report.problems.append(f"{artifacts.METRICS} not found")
    else:
        try:
            report.metrics = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            report.problems.append(f"{artifacts.METRICS} is unreadable: {exc}")
    for key, name in CSV_FILES.items():
        path = find_artifact(name, folders)
        if path is None:
            report.problems.append(f"{name} not found")
            continue
        try:
            report.tables[key] = pd.read_csv(path, index_col=0 if key == "confusion" else None)
        except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            report.problems.append(f"{name} is unreadable: {str(exc).splitlines()[0]}")
    for title, name in PLOT_FILES.items():
        path = find_artifact(name, folders)
        if path is None:
            report.problems.append(f"{name} not found")
        else:
            report.images[title] = path
    return report


def mlflow_caption(metrics: Mapping[str, Any]) -> str:
    """One line naming the MLflow run that trained and evaluated the served model ('' when untracked)."""
    run = metrics.get("mlflow") or {}
    if not run.get("run_id"):
        return ""
    return (f"MLflow run `{run.get('run_name') or run['run_id']}` (id `{run['run_id']}`) in experiment "
            f"`{run.get('experiment_name', '?')}` · store `{run.get('tracking_uri', '?')}`")


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested metrics dict as `section.name` keys."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_metrics(value, name + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


def _is_clean_test(key: str) -> bool:
    parts = key.lower().split(".")
    return not any(word in part for part in parts[:-1] for word in ("noisy", "val", "per_class", "class"))


def headline_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Accuracy, macro F1, ... on the clean test set, wherever metrics.json nests them."""
    flat = {k: v for k, v in flatten_metrics(metrics).items() if _is_clean_test(k)}
    found: dict[str, float] = {}
    for name in HEADLINE_METRICS:
        # The least nested key wins: stage 5 puts the test-set headline numbers at the top level.
        keys = sorted((k for k in flat if k.lower().split(".")[-1] == name), key=lambda k: (k.count("."), k))
        if keys:
            found[name] = flat[keys[0]]
    return found


def oos_table(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Rows (measure, with the out-of-scope detector, softmax rule only) from metrics.json's `oos` section;
    empty when the model was evaluated before out-of-scope detection existed."""
    oos = metrics.get("oos")
    if not isinstance(oos, Mapping):
        return pd.DataFrame(columns=["measure", "with detector", "softmax rule only"])
    rows = []
    offtopic = oos.get("off_topic") or {}
    if offtopic:
        rows.append((f"off-topic recall ({offtopic.get('n', '?')} messages)", offtopic["recall"]["with_oos"],
                     offtopic["recall"]["softmax_only"]))
    test = oos.get("test") or {}
    if test:
        accuracy = test["in_scope_accuracy"]
        rows.append((f"in-scope test accuracy ({test.get('n_in_scope', '?')} messages)", accuracy["with_oos"],
                     accuracy["softmax_only"]))
        if test.get("n_known_off_topic"):
            recall = test["known_off_topic_recall"]
            rows.append((f"known off-topic test recall ({test['n_known_off_topic']} messages)", recall["with_oos"],
                         recall["softmax_only"]))
    return pd.DataFrame(rows, columns=["measure", "with detector", "softmax rule only"])


def clean_vs_noisy(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Rows (metric, clean, noisy) for every metric reported on the noisy test set too."""
    flat = flatten_metrics(metrics)
    clean = headline_metrics(metrics)
    rows = []
    for key, value in flat.items():
        parts = key.lower().split(".")
        if not any("noisy" in p for p in parts):
            continue
        name = parts[-1].replace("noisy", "").strip("_")
        if name in clean:
            rows.append({"metric": name, "clean": clean[name], "noisy": value})
    return pd.DataFrame(rows, columns=["metric", "clean", "noisy"]).drop_duplicates("metric")


def per_class_f1(table: pd.DataFrame) -> pd.DataFrame:
    """(intent, f1, support?) per class from per_class_report.csv, whatever its column names."""
    columns = {str(c).strip().lower(): c for c in table.columns}
    label_col = next((columns[c] for c in ("label", "intent", "class") if c in columns), table.columns[0])
    f1_col = next((columns[c] for c in columns if "f1" in c), None)
    if f1_col is None:
        raise PipelineError("per_class_report.csv has no f1 column")
    out = pd.DataFrame({"intent": table[label_col].astype(str), "f1": pd.to_numeric(table[f1_col], errors="coerce")})
    if "support" in columns:
        out["support"] = pd.to_numeric(table[columns["support"]], errors="coerce")
    out = out[~out["intent"].str.lower().isin(SUMMARY_ROWS)].dropna(subset=["f1"])
    return out.sort_values("f1").reset_index(drop=True)


def misclassified_columns(table: pd.DataFrame) -> tuple[str, str]:
    """Names of the true-label and predicted-label columns of misclassified.csv."""
    lower = {str(c).strip().lower(): c for c in table.columns}
    true_col = next((lower[c] for c in ("true_label", "label", "true", "y_true", "actual") if c in lower), None)
    pred_col = next(
        (lower[c] for c in ("predicted_label", "predicted", "pred", "prediction", "y_pred", "top_intent") if c in lower),
        None,
    )
    if true_col is None or pred_col is None:
        raise PipelineError("misclassified.csv needs a true-label and a predicted-label column")
    return true_col, pred_col


def filter_misclassified(table: pd.DataFrame, true_label: str | None, predicted: str | None) -> pd.DataFrame:
    """Rows of misclassified.csv for one true and/or predicted label (None = any)."""
    true_col, pred_col = misclassified_columns(table)
    mask = pd.Series(True, index=table.index)
    if true_label:
        mask &= table[true_col].astype(str) == true_label
    if predicted:
        mask &= table[pred_col].astype(str) == predicted
    return table[mask]


# ---------------------------------------------------------------- monitoring

def monitoring_summary(predictions: pd.DataFrame, threshold: float) -> dict[str, pd.DataFrame]:
    """Volume, intent mix and low-confidence rate over time from logged predictions.

    A prediction counts as low-confidence when the fallback answered or its confidence is below
    `threshold`. Buckets are hours for less than two days of data, else days.
    """
    if predictions.empty:
        return {}
    frame = predictions.copy()
    frame["created_at"] = pd.to_datetime(frame["created_at"])
    span = frame["created_at"].max() - frame["created_at"].min()
    freq = "h" if span < pd.Timedelta(days=2) else "D"
    frame["period"] = frame["created_at"].dt.floor(freq)
    frame["low_confidence"] = frame["is_fallback"].astype(bool) | (frame["confidence"].astype(float) < threshold)
    by_period = frame.groupby("period")
    over_time = pd.DataFrame({
        "predictions": by_period.size(),
        "low_confidence_rate": by_period["low_confidence"].mean(),
        "mean_confidence": by_period["confidence"].mean(),
        "mean_latency_ms": by_period["latency_ms"].mean(),
    })
    mix = frame.groupby(["period", "intent"]).size().unstack(fill_value=0)
    totals = frame["intent"].value_counts().rename_axis("intent").reset_index(name="predictions")
    return {"over_time": over_time, "intent_mix": mix, "intent_totals": totals}


# ---------------------------------------------------------------- charts

def _bar_figure(labels: Sequence[str], values: Sequence[float], text_format: str, hover: str):
    # graph_objects, not plotly.express: express spends ~60 ms building a 3-bar chart, on every answer.
    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(x=list(values), y=list(labels), orientation="h", texttemplate=text_format,
                           textposition="inside", hovertemplate=hover + "<extra></extra>"))
    fig.update_layout(xaxis_range=[0, 1], margin=dict(l=10, r=10, t=10, b=10))
    return fig


def top_k_figure(prediction: Prediction):
    frame = top_k_frame(prediction).iloc[::-1]  # plotly draws the first bar at the bottom
    fig = _bar_figure(frame["intent"], frame["confidence"], "%{x:.1%}", "%{y}: %{x:.1%}")
    fig.update_layout(height=220, xaxis_title="confidence")
    return fig


def per_class_figure(frame: pd.DataFrame):
    hover = "%{y}: F1 %{x:.3f}" + (" (support %{customdata})" if "support" in frame.columns else "")
    fig = _bar_figure(frame["intent"], frame["f1"], "%{x:.2f}", hover)
    if "support" in frame.columns:
        fig.update_traces(customdata=frame["support"])
    fig.update_layout(height=max(300, 28 * len(frame)), xaxis_title="F1")
    return fig


def confusion_figure(matrix: pd.DataFrame, normalize: bool = False):
    """Heatmap of the confusion matrix (rows true, columns predicted); hover shows the counts."""
    import plotly.graph_objects as go

    counts = matrix.astype(float)
    values = counts.div(counts.sum(axis=1).replace(0, 1), axis=0) if normalize else counts
    fig = go.Figure(go.Heatmap(
        z=values.values, x=[str(c) for c in values.columns], y=[str(i) for i in values.index],
        customdata=counts.values, colorscale="Blues",
        hovertemplate="true: %{y}<br>predicted: %{x}<br>count: %{customdata:.0f}<extra></extra>",
    ))
    fig.update_layout(
        xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed",
        height=max(400, 30 * len(values)), margin=dict(l=10, r=10, t=10, b=10),
    )
    return fig
