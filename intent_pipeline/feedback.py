"""Reviewed user feedback: the dashboard's review queue and the corrections stage 3 may train on.

The app stores every verdict *pending* (`db.save_feedback`). A reviewer approves or rejects it in
the dashboard's Review view (`db.review_feedback`); only approved rows ever reach training, through
`merge_corrections`, which also lists the corrections that contradict a curated label and applies
the FEEDBACK_OVERRIDES_CURATED rule (default: the curated label wins). `approved_since` and
`approved_not_trained_on` tell a retraining job whether new approved corrections are waiting.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
from sqlalchemy.engine import Engine

from intent_pipeline import db

log = logging.getLogger(__name__)

QUEUE_COLUMNS = ["id", "created_at", "text", "predicted_label", "correct_label", "curated_label", "model_version"]


def review_queue(engine: Engine, limit: int | None = None) -> pd.DataFrame:
    """Pending feedback, oldest first, with the curated label of an identical text in `messages` ("" if none)."""
    pending = db.read_feedback(engine, db.FEEDBACK_PENDING, limit=limit)
    curated = db.curated_labels(engine, pending["text"].tolist()) if len(pending) else {}
    pending["curated_label"] = [curated.get(text, "") for text in pending["text"]]
    return pending[QUEUE_COLUMNS]


def approved_since(engine: Engine, since: datetime) -> pd.DataFrame:
    """Corrections approved at or after `since` (naive UTC), e.g. since the last training data was prepared."""
    return db.read_feedback(engine, db.FEEDBACK_APPROVED, reviewed_since=since)


def trained_feedback_ids(dataset_fingerprint: Mapping) -> set[int]:
    """Ids of the feedback rows stage 3 used, from its dataset_fingerprint.json contents."""
    return {int(i) for i in dataset_fingerprint.get("feedback_ids", [])}


def approved_not_trained_on(engine: Engine, trained_ids: Iterable[int]) -> pd.DataFrame:
    """Approved corrections that are not among `trained_ids` (see `trained_feedback_ids`)."""
    approved = db.read_feedback(engine, db.FEEDBACK_APPROVED)
    return approved[~approved["id"].isin(set(trained_ids))].reset_index(drop=True)


@dataclass
class MergedCorrections:
    """Training rows after folding approved corrections into the curated messages, and what happened."""

    rows: pd.DataFrame  # text, label, from_feedback
    used_ids: list[int] = field(default_factory=list)  # corrections that became training rows
    agreeing: int = 0  # corrections repeating the curated label of the same text: nothing to add
    contradictions: list[dict] = field(default_factory=list)  # {feedback_id, text, curated_label, correction, kept}
    unknown_labels: list[str] = field(default_factory=list)  # labels no curated message has

    def report(self, approved: int, feedback_wins: bool, counts: Mapping[str, int] | None = None) -> dict:
        counts = counts or {}
        return {
            "approved": approved, "used": len(self.used_ids), "agreeing_with_curated": self.agreeing,
            "pending_not_used": int(counts.get(db.FEEDBACK_PENDING, 0)),
            "rejected": int(counts.get(db.FEEDBACK_REJECTED, 0)),
            "unknown_labels_ignored": self.unknown_labels,
            "on_contradiction": "feedback wins" if feedback_wins else "curated label wins",
            "contradictions": self.contradictions,
        }


def merge_corrections(messages: pd.DataFrame, approved: pd.DataFrame, feedback_wins: bool = False) -> MergedCorrections:
    """Fold approved corrections (columns id, text, correct_label) into curated `messages` (text, label).

    A correction of a text no curated message has becomes a training row. One of a curated text
    with a different label is a contradiction: it replaces the curated row only when `feedback_wins`.
    The latest approval wins among corrections of the same text; labels that no curated message has
    are ignored (no validation or test example could measure them).
    """
    rows = messages[["text", "label"]].assign(from_feedback=False)
    approved = approved[approved["correct_label"].astype(str).str.strip() != ""]
    known = set(rows["label"])
    unknown = sorted(set(approved["correct_label"].astype(str)) - known)
    approved = approved[approved["correct_label"].astype(str).isin(known)]
    order = [c for c in ("reviewed_at", "id") if c in approved.columns]
    approved = approved.sort_values(order, kind="stable").drop_duplicates("text", keep="last")
    curated = dict(zip(rows["text"], rows["label"]))
    merged = MergedCorrections(rows=rows, unknown_labels=unknown)
    take: list[tuple[int, str, str]] = []
    for fid, text, label in zip(approved["id"], approved["text"].astype(str), approved["correct_label"].astype(str)):
        if text not in curated:
            take.append((int(fid), text, label))
        elif curated[text] == label:
            merged.agreeing += 1
        else:
            merged.contradictions.append({"feedback_id": int(fid), "text": text, "curated_label": curated[text],
                                          "correction": label, "kept": "correction" if feedback_wins else "curated"})
            if feedback_wins:
                take.append((int(fid), text, label))
    corrections = pd.DataFrame([(text, label) for _, text, label in take], columns=["text", "label"])
    merged.rows = pd.concat([rows[~rows["text"].isin(corrections["text"])], corrections.assign(from_feedback=True)],
                            ignore_index=True)
    merged.used_ids = [fid for fid, _, _ in take]
    return merged
