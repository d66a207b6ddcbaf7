"""The dashboard's Review view (Streamlit): pending feedback, approved or rejected one by one or in bulk.

Each pending correction is shown with the masked text, the model's answer, the suggested label and
the curated label of an identical text in `messages`, so a reviewer sees at once when a correction
contradicts the training data. Decisions are final and only change rows still pending
(`db.review_feedback`); only approved corrections reach `prepare_data.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd
import streamlit as st

from intent_pipeline import db
from intent_pipeline.db_guard import DatabaseGuard, DatabaseUnavailable
from intent_pipeline.feedback import review_queue

PAGE_SIZE = 25
NOTICE_KEY = "review_notice"
COLUMN_WIDTHS = [0.35, 3.8, 1.4, 1.4, 1.5, 1.35, 1.15]


def _select_key(feedback_id: int) -> str:
    return f"review_select_{feedback_id}"


def _label(value: object) -> str:
    # Labels come from the database: shown as code, never interpreted as Markdown or HTML.
    text = str(value).replace("`", "'").strip()
    return f"`{text}`" if text else "*none*"


def decide(guard: DatabaseGuard, ids: Sequence[int], status: str, reviewer: str) -> None:
    """Button callback: record a decision and leave a one-line notice for the next run."""
    try:
        changed = guard.run("save the review", db.review_feedback, list(ids), status, reviewer)
    except DatabaseUnavailable as exc:
        st.session_state[NOTICE_KEY] = ("warning", str(exc))
        return
    for feedback_id in ids:
        st.session_state.pop(_select_key(feedback_id), None)
    st.session_state.pop("review_select_all", None)
    skipped = len(ids) - changed
    note = f"{changed} correction{'s' if changed != 1 else ''} {status}."
    if skipped:
        note += f" {skipped} had already been decided by someone else."
    st.session_state[NOTICE_KEY] = ("success", note)


def _select_all(ids: Sequence[int]) -> None:
    value = bool(st.session_state.get("review_select_all"))
    for feedback_id in ids:
        st.session_state[_select_key(feedback_id)] = value


def review_view(guard: DatabaseGuard, reviewer: str, can_decide: bool = True,
                warn: Callable[[str], None] = st.warning) -> None:
    st.header("Review feedback")
    st.caption("Corrections from the Predict view wait here. Only approved ones reach the next training set "
               "(`prepare_data.py`); rejected ones never do. A decision is final.")
    notice = st.session_state.pop(NOTICE_KEY, None)
    if notice:
        (st.success if notice[0] == "success" else st.warning)(notice[1])
    try:
        counts = guard.run("read the feedback counts", db.count_feedback)
        queue = guard.run("read the corrections to review", review_queue, limit=PAGE_SIZE)
    except DatabaseUnavailable as exc:
        warn(str(exc))
        return
    cols = st.columns(3)
    for col, status in zip(cols, db.FEEDBACK_STATUSES):
        col.metric(status.capitalize(), f"{counts[status]:,}")
    if queue.empty:
        st.success("Nothing to review: every correction has been decided.")
        return
    if counts[db.FEEDBACK_PENDING] > len(queue):
        st.caption(f"Showing the oldest {len(queue)} of {counts[db.FEEDBACK_PENDING]:,} pending corrections.")
    if not can_decide:
        st.info(f"You are signed in as {reviewer}: only the reviewers named in DASHBOARD_REVIEWERS can approve "
                "or reject corrections.")
    ids = [int(i) for i in queue["id"]]
    if can_decide:
        st.checkbox("Select all on this page", key="review_select_all", on_change=_select_all, args=(ids,))
    header = st.columns(COLUMN_WIDTHS)
    for col, title in zip(header[1:5], ["Message (masked)", "Model said", "Correction", "Curated label"]):
        col.markdown(f"**{title}**")
    for row in queue.itertuples(index=False):
        review_row(guard, row, reviewer, can_decide)
    if not can_decide:
        return
    selected = [i for i in ids if st.session_state.get(_select_key(i))]
    left, right, _ = st.columns([1.4, 1.4, 4])
    left.button(f"Approve selected ({len(selected)})", key="review_approve_selected", type="primary",
                disabled=not selected, on_click=decide, args=(guard, selected, db.FEEDBACK_APPROVED, reviewer))
    right.button(f"Reject selected ({len(selected)})", key="review_reject_selected", disabled=not selected,
                 on_click=decide, args=(guard, selected, db.FEEDBACK_REJECTED, reviewer))


def review_row(guard: DatabaseGuard, row: object, reviewer: str, can_decide: bool) -> None:
    feedback_id = int(row.id)
    with st.container(border=True):
        cols = st.columns(COLUMN_WIDTHS, vertical_alignment="center")
        if can_decide:
            cols[0].checkbox("select", key=_select_key(feedback_id), label_visibility="collapsed")
        cols[1].text(str(row.text))
        when = pd.Timestamp(row.created_at).strftime("%Y-%m-%d %H:%M") if pd.notna(row.created_at) else "?"
        cols[1].caption(f"#{feedback_id} · {when} UTC · model {row.model_version or 'unknown'}")
        cols[2].markdown(_label(row.predicted_label))
        cols[3].markdown(_label(row.correct_label))
        curated = str(row.curated_label)
        contradicts = bool(curated) and curated != str(row.correct_label)
        cols[4].markdown(_label(curated) + (" :orange[differs]" if contradicts else ""))
        if not can_decide:
            return
        cols[5].button("Approve", key=f"approve_{feedback_id}", on_click=decide,
                       args=(guard, [feedback_id], db.FEEDBACK_APPROVED, reviewer))
        cols[6].button("Reject", key=f"reject_{feedback_id}", on_click=decide,
                       args=(guard, [feedback_id], db.FEEDBACK_REJECTED, reviewer))
