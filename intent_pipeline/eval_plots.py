"""Evaluation figures: static PNGs (matplotlib, Agg) and interactive Plotly HTML, written atomically.

HTML files reference a single `plotly.min.js` written beside them (`include_plotlyjs="directory"`),
so they open offline without embedding 4 MB of JavaScript in each file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from intent_pipeline.artifacts import PLOTLY_JS
from intent_pipeline.files import atomic_path, write_text_atomic



def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt

    return plt


def _save_png(fig, path: Path) -> None:
    plt = _pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def reliability_png(bins: pd.DataFrame, ece: float, path: Path) -> None:
    """Accuracy vs mean confidence per bin; the diagonal is perfect calibration."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    filled = bins[bins["count"] > 0]
    width = float(bins["bin_upper"].iloc[0] - bins["bin_lower"].iloc[0])
    ax.bar(filled["bin_lower"], filled["accuracy"], width=width, align="edge", edgecolor="black",
           alpha=0.75, label="accuracy")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    ax.plot(filled["mean_confidence"], filled["accuracy"], marker="o", color="tab:red", label="bin mean")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top-1 probability)", ylabel="accuracy",
           title=f"Reliability diagram (ECE = {ece:.3f})")
    ax.legend(loc="upper left")
    _save_png(fig, path)


def confidence_histogram_png(confidence: np.ndarray, correct: np.ndarray, path: Path,
                             threshold: float | None = None) -> None:
    """Overlaid confidence histograms of correct and wrong answers, with the tuned threshold."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    bins = np.linspace(0, 1, 21)
    ax.hist(confidence[correct], bins=bins, alpha=0.6, label=f"correct ({int(correct.sum())})", color="tab:green")
    ax.hist(confidence[~correct], bins=bins, alpha=0.6, label=f"wrong ({int((~correct).sum())})", color="tab:red")
    if threshold:
        ax.axvline(threshold, color="black", linestyle="--", label=f"fallback threshold {threshold:.2f}")
    ax.set(xlabel="confidence (top-1 probability)", ylabel="messages", title="Confidence: correct vs wrong (test)")
    ax.legend()
    _save_png(fig, path)


def _write_html(fig, path: Path) -> None:
    html = fig.to_html(include_plotlyjs="directory", full_html=True)
    write_text_atomic(path, html)
    js = path.parent / PLOTLY_JS
    if not js.is_file():
        from plotly.offline import get_plotlyjs

        write_text_atomic(js, get_plotlyjs())


def confusion_html(matrix: pd.DataFrame, path: Path) -> None:
    """Row-normalised heatmap (share of each true class) with the raw counts on hover."""
    import plotly.graph_objects as go

    counts = matrix.to_numpy()
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros_like(counts, dtype=float), where=totals > 0)
    fig = go.Figure(go.Heatmap(
        z=share, x=list(matrix.columns), y=list(matrix.index), customdata=counts, colorscale="Blues",
        zmin=0, zmax=1, colorbar={"title": "share of true"},
        hovertemplate="true %{y}<br>predicted %{x}<br>count %{customdata}<br>share %{z:.2%}<extra></extra>",
    ))
    fig.update_layout(title="Confusion matrix (test)", xaxis_title="predicted", yaxis_title="true",
                      yaxis_autorange="reversed", height=max(450, 35 * len(matrix) + 200))
    _write_html(fig, path)


def pr_curves_html(probs: np.ndarray, y_true: np.ndarray, labels: Sequence[str], path: Path) -> dict[str, float]:
    """One-vs-rest precision-recall curve per class; returns each class's average precision."""
    import plotly.graph_objects as go
    from sklearn.metrics import average_precision_score, precision_recall_curve

    fig = go.Figure()
    average_precision: dict[str, float] = {}
    for i, label in enumerate(labels):
        positives = y_true == i
        if not positives.any():
            continue  # PR is undefined without positives
        precision, recall, _ = precision_recall_curve(positives, probs[:, i])
        ap = float(average_precision_score(positives, probs[:, i]))
        average_precision[label] = ap
        fig.add_trace(go.Scatter(x=recall, y=precision, mode="lines", name=f"{label} (AP {ap:.3f})"))
    fig.update_layout(title="Per-class precision-recall (test, one-vs-rest)", xaxis_title="recall",
                      yaxis_title="precision", xaxis_range=[0, 1], yaxis_range=[0, 1.02], height=600)
    _write_html(fig, path)
    return average_precision
