"""Stage 1's row logic: a message file -> cleaned, checked, PII-masked rows; de-duplication.

`ingest_file()` is the one path from a raw file to masked text: stage 1 runs it on RAW_DATA_FILE, and
stage 3 on the fixed evaluation files (TEST_FILE, VAL_FILE), so those are cleaned and masked exactly
like the training data.

Rows that cannot become an example are skipped and counted by reason: `non_utf8`, `empty_text`,
`missing_label` (no label: empty, `null` or NaN; these are unlabeled messages, left out of training
and reported as `unlabeled_rows`), and `too_long` (cleaned text longer than the limit: a 100 KB
"message" is a paste, not a chat message, and truncating it would invent a sample).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from intent_pipeline.errors import PipelineError
from intent_pipeline.masking import clean_text, get_masker
from intent_pipeline.message_files import has_undecodable, read_message_file
from intent_pipeline.pii_digests import PiiDigests

log = logging.getLogger(__name__)


@dataclass
class Ingested:
    """Masked rows (columns clean, label, source, text, text_hash) of one file and what happened to the rest."""

    rows: pd.DataFrame
    rows_read: int
    skipped: Counter
    digests: PiiDigests = field(default_factory=PiiDigests)
    pii_counts: Counter = field(default_factory=Counter)

    @property
    def unlabeled(self) -> int:
        return int(self.skipped.get("missing_label", 0))


def ingest_file(
    path: Path, *, text_column: str = "", label_column: str = "", spacy_model: str, n_process: int = 1,
    max_chars: int, progress: bool = False, what: str = "input file", fix: str = "",
) -> Ingested:
    """Read, clean and PII-mask one message file; a one-line PipelineError when nothing usable is left."""
    rows, skipped = read_message_file(path, text_column, label_column, what=what, fix=fix)
    rows_read = len(rows) + skipped["malformed"]
    rows = clean_rows(rows, max_chars, skipped)
    if rows.empty:
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(skipped.items()) if v) or "no data rows"
        raise PipelineError(f"no usable rows in {what} {path} ({rows_read} read; {detail})")
    if skipped["missing_label"]:
        log.warning("%s %s: %d of %d rows have no label: left out (counted as unlabeled)", what, path,
                    skipped["missing_label"], rows_read)
    log.info("masking PII in %d messages of %s with %d process(es)", len(rows), path, n_process)
    rows, digests, pii_counts = mask_rows(rows, spacy_model, n_process, progress)
    return Ingested(rows, rows_read, skipped, digests, pii_counts)


def clean_rows(rows: pd.DataFrame, max_chars: int, skipped: Counter) -> pd.DataFrame:
    """Clean text and labels (trimmed, lower-cased); drop (and count) rows that cannot become an example."""
    bad_bytes = (rows["raw_text"] + rows["label"]).map(has_undecodable).astype(bool)
    skipped["non_utf8"] += int(bad_bytes.sum())
    rows = rows[~bad_bytes].copy()
    rows["clean"] = rows["raw_text"].map(clean_text)
    rows["label"] = rows["label"].map(lambda label: clean_text(label).lower())
    rows["source"] = rows["source"].map(clean_text)
    checks = [
        ("empty_text", rows["clean"] == ""),
        ("missing_label", rows["label"] == ""),
        ("too_long", rows["clean"].str.len() > max_chars),
    ]
    keep = pd.Series(True, index=rows.index)
    for reason, bad in checks:
        bad &= keep  # each row is counted under its first reason only
        skipped[reason] += int(bad.sum())
        keep &= ~bad
    return rows[keep].drop(columns="raw_text").reset_index(drop=True)


def mask_rows(
    rows: pd.DataFrame, spacy_model: str, n_process: int, progress: bool
) -> tuple[pd.DataFrame, PiiDigests, Counter]:
    """Replace PII by placeholders; collect salted digests of the raw values and counts by type."""
    masker = get_masker(spacy_model)
    results = masker.mask_batch(rows["clean"].tolist(), n_process=max(1, n_process), progress=progress)
    digests, pii_counts = PiiDigests(), Counter()
    for original, result in zip(rows["clean"], results):
        digests.add_result(original, result)
        pii_counts.update(result.counts)
    rows = rows.assign(text=[r.text for r in results])
    # A value masked once but left as a word elsewhere is vocabulary, not a secret the release can leak.
    digests.forget_words(rows["text"])
    rows["text_hash"] = rows["text"].map(lambda t: hashlib.sha256(t.encode("utf-8")).hexdigest())
    return rows, digests, pii_counts


def dedupe(rows: pd.DataFrame) -> tuple[pd.DataFrame, dict, dict]:
    """One row per masked text: exact duplicates dropped, texts with conflicting labels dropped."""
    labels_per_text = rows.groupby("text")["label"].nunique()
    conflicting = labels_per_text[labels_per_text > 1].index
    in_conflict = rows["text"].isin(conflicting)
    examples = (
        rows[in_conflict].groupby("text")["label"].agg(lambda s: sorted(set(s))).head(20)
    )
    conflicts = {
        "texts": int(len(conflicting)),
        "rows_dropped": int(in_conflict.sum()),
        "examples": [{"text": text, "labels": labels} for text, labels in examples.items()],
    }
    consistent = rows[~in_conflict]
    same_before_masking = int(consistent.duplicated(["clean", "label"]).sum())
    repeated = consistent.duplicated(["text", "label"])
    duplicates = {
        "rows_dropped": int(repeated.sum()),
        "identical_before_masking": same_before_masking,
        "identical_after_masking_only": int(repeated.sum()) - same_before_masking,
    }
    kept = consistent[~repeated].reset_index(drop=True)
    return kept, duplicates, conflicts
