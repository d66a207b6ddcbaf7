"""The dashboard's Model quality view (Streamlit): the served release's evaluation artifacts.

Metrics, per-class F1, confusion matrix, clean vs noisy test, calibration plots and misclassified
examples, each optional (intent_pipeline/dashboard.py reads them and says what is missing).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from intent_pipeline import artifacts
from intent_pipeline import dashboard as dash
from intent_pipeline import ood
from intent_pipeline.errors import PipelineError


def quality_view(release: Path, artifacts_dir: Path, model_version: str, serving_version: str = "") -> None:
    st.header("Model quality")
    folders, left_out = dash.evaluation_folders(release, artifacts_dir, model_version)
    report = dash.load_quality_report(folders)
    run_caption = dash.mlflow_caption(report.metrics)  # the MLflow run that trained and evaluated this model
    st.caption(f"Model `{serving_version or model_version}` · " + (run_caption or "no MLflow run recorded for this model"))
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
    oos_view(report.metrics)
    st.subheader("Calibration")
    if "ece" in headline:
        st.caption(f"expected calibration error: {headline['ece']:.3f}")
    if report.images:
        for column, (title, path) in zip(st.columns(len(report.images)), report.images.items()):
            column.image(str(path), caption=title)
    else:
        st.info("No calibration plots in this release.")
    misclassified_view(report, left_out)


def oos_view(metrics: dict) -> None:
    st.subheader("Out-of-scope detection")
    table = dash.oos_table(metrics)
    if table.empty:
        st.info("metrics.json has no out-of-scope results: this model was evaluated before out-of-scope detection "
                "existed. Re-run `python export_bert_metrics.py` (and re-release).")
        return
    oos = metrics["oos"]
    st.caption(f"{oos['method']} distance on the encoder's features, threshold {ood.threshold_text(oos['threshold'])} "
               f"calibrated on validation (in-scope accuracy within {oos['max_accuracy_drop'] * 100:.1f} points); known off-topic "
               f"labels: {', '.join(oos['oos_labels']) or 'none'}. The off-topic set is never used for tuning.")
    st.dataframe(table, hide_index=True, column_config={
        name: st.column_config.NumberColumn(format="%.3f") for name in ("with detector", "softmax rule only")})


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
