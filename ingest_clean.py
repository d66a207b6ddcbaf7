"""Stage 1: raw customer messages (CSV) -> cleaned, PII-masked messages + data-quality report.

RAW_DATA_FILE -> CLEANED_DATA_FILE (columns text,label,text_hash,source; text cleaned and PII-masked,
text_hash = sha256 of that text), ARTIFACTS_DIR/data_report.json (labels, skipped rows, duplicates,
conflicts, PII counts, style artifacts) and ARTIFACTS_DIR/pii_values.json (salted digests of the raw
PII values masked; never the values themselves).

Input: any CSV with a text column (`text`, `query`, `message` or `utterance`) and a label column
(`label` or `intent`), any number of rows and labels; an optional `source` column is kept. Labels
are trimmed and lower-cased. Single bad rows are skipped and counted by reason: `malformed` (wrong
number of fields; a stray `"` inside a field is kept as text), `non_utf8` (undecodable bytes), `empty_text`, `missing_label`, and `too_long`
(cleaned text longer than MAX_TEXT_CHARS: a 100 KB "message" is a paste, not a chat message, and
truncating it would invent a sample). Identical texts are kept once; texts that carry conflicting
labels are dropped entirely and listed in the report. Whole-file problems (missing, empty, no usable
column, not UTF-8, a quote left open to the end of the file) stop the run with one line; outputs are written atomically, so
an existing cleaned file is never replaced by a partial one.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from config import get_settings
from intent_pipeline.artifacts import Artifacts
from intent_pipeline.cli import run_cli
from intent_pipeline.data_quality import style_artifacts
from intent_pipeline.errors import PipelineError
from intent_pipeline.files import write_csv_atomic, write_json_atomic
from intent_pipeline.logging_setup import setup_logging
from intent_pipeline.masking import LABEL_COLUMNS, TEXT_COLUMNS, clean_text, find_column, get_masker
from intent_pipeline.pii_digests import PiiDigests

log = logging.getLogger("ingest_clean")

OUTPUT_COLUMNS = ["text", "label", "text_hash", "source"]
# Python's csv module refuses fields over 128 KiB; longer messages must reach the `too_long` count.
CSV_FIELD_LIMIT = 64 * 1024 * 1024


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, default=settings.raw_data_file, help="raw CSV (default: RAW_DATA_FILE)")
    parser.add_argument(
        "--output", type=Path, default=settings.cleaned_data_file, help="cleaned CSV (default: CLEANED_DATA_FILE)"
    )
    parser.add_argument(
        "--artifacts-dir", type=Path, default=settings.artifacts_dir,
        help="folder for data_report.json and pii_values.json (default: ARTIFACTS_DIR)",
    )
    parser.add_argument("--spacy-model", default=settings.spacy_model, help="spaCy model for names/places (SPACY_MODEL)")
    parser.add_argument("--n-process", type=int, default=settings.n_process, help="worker processes for masking (N_PROCESS)")
    parser.add_argument(
        "--max-chars", type=int, default=settings.max_text_chars,
        help="skip messages longer than this many characters after cleaning (MAX_TEXT_CHARS)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser.parse_args(argv)


def read_raw(path: Path) -> tuple[pd.DataFrame, Counter]:
    """Rows as strings (columns text, label, source) plus counts of rows skipped while parsing."""
    if not path.is_file():
        raise PipelineError(f"input file not found: {path} (set RAW_DATA_FILE or pass --input)")
    raw = path.read_bytes()
    if not raw.strip():
        raise PipelineError(f"input file {path} is empty")
    # surrogateescape keeps undecodable bytes as markers, so one bad row is skipped, not the file.
    decoded = raw.decode("utf-8-sig", errors="surrogateescape")
    header = decoded.split("\n", 1)[0]
    if _has_undecodable(header):
        raise PipelineError(f"{path} is not UTF-8 text (its header has undecodable bytes): re-save it as UTF-8")
    frame, skipped = parse_csv(decoded, path)
    text_col = find_column(frame.columns, TEXT_COLUMNS, "text", str(path))
    label_col = find_column(frame.columns, LABEL_COLUMNS, "label", str(path))
    source_col = next((c for c in frame.columns if str(c).strip().lower() == "source"), None)
    rows = pd.DataFrame({
        "raw_text": frame[text_col],
        "label": frame[label_col],
        "source": frame[source_col] if source_col is not None else path.name,
    })
    return rows, skipped


def parse_csv(decoded: str, path: Path) -> tuple[pd.DataFrame, Counter]:
    """Records of the CSV text as strings; rows with more fields than the header count as `malformed`.

    A literal quote inside a field (`My 5" screen broke`) is text. Only a quoted field left open
    at the end of the file refuses the file: it swallowed every row after it, so no count could be trusted.
    """
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    reader = csv.reader(io.StringIO(decoded), skipinitialspace=True)
    records, starts, line = [], [], 0
    try:
        for record in reader:
            if record:  # blank lines are no rows
                records.append(record)
                starts.append(line)
            line = reader.line_num
    except csv.Error as exc:
        raise PipelineError(f"{path} is not a readable CSV file: {exc} (line {reader.line_num})") from None
    if not records:
        raise PipelineError(f"{path} is empty")
    if line - starts[-1] > 1 and _ends_inside_quotes(decoded, starts[-1]):
        raise PipelineError(
            f"{path} is not a readable CSV file: the double quote opened on line {starts[-1] + 1} is never "
            "closed and swallows the rest of the file"
        )
    header, rows = records[0], records[1:]
    skipped: Counter = Counter(malformed=sum(len(r) > len(header) for r in rows))
    # Short rows leave their missing fields empty: counted as empty text or missing label later.
    kept = [r + [""] * (len(header) - len(r)) for r in rows if len(r) <= len(header)]
    # object dtype: Arrow-backed strings cannot hold the undecodable-byte markers.
    frame = pd.DataFrame(kept, columns=[h.strip() for h in header], dtype=object)
    return frame, skipped


def _ends_inside_quotes(decoded: str, first_line: int) -> bool:
    tail = "".join(io.StringIO(decoded).readlines()[first_line:])
    try:
        for _ in csv.reader(io.StringIO(tail), skipinitialspace=True, strict=True):
            pass
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def _has_undecodable(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def clean_rows(rows: pd.DataFrame, max_chars: int, skipped: Counter) -> pd.DataFrame:
    """Clean text and labels; drop (and count) rows that cannot become a training example."""
    bad_bytes = (rows["raw_text"] + rows["label"]).map(_has_undecodable).astype(bool)
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


# ---- data-quality report ------------------------------------------------------------------------


def build_report(
    rows: pd.DataFrame, *, rows_read: int, skipped: Counter, duplicates: dict, conflicts: dict,
    pii_counts: Counter, input_file: Path, output_file: Path,
) -> dict:
    """The stage-1 sections of data_report.json (stage 3 adds `splits`)."""
    counts = rows["label"].value_counts()
    return {
        "input": {
            "file": str(input_file), "output_file": str(output_file), "rows_read": rows_read,
            "rows_written": len(rows), "skipped": {k: int(v) for k, v in sorted(skipped.items()) if v},
        },
        "labels": {
            "n_labels": int(len(counts)),
            "counts": {str(k): int(v) for k, v in counts.items()},
            "imbalance_ratio": round(float(counts.max() / counts.min()), 2),
            "majority": str(counts.index[0]), "minority": str(counts.index[-1]),
        },
        "duplicates": duplicates,
        "conflicts": conflicts,
        "pii": {
            "counts": {k: int(v) for k, v in pii_counts.most_common()},
            "total": int(sum(pii_counts.values())),
        },
        "style_artifacts": style_artifacts(rows),
    }


def print_summary(report: dict) -> None:
    """Readable console version of the report."""
    inp, labels = report["input"], report["labels"]
    skipped = ", ".join(f"{k} {v}" for k, v in inp["skipped"].items()) or "none"
    lines = [
        f"rows: {inp['rows_read']} read, {inp['rows_written']} written; skipped: {skipped}",
        f"duplicates dropped: {report['duplicates']['rows_dropped']} "
        f"({report['duplicates']['identical_after_masking_only']} became identical only after masking)",
        f"conflicting labels: {report['conflicts']['texts']} texts, {report['conflicts']['rows_dropped']} rows dropped",
        "PII masked: " + (", ".join(f"{k} {v}" for k, v in report["pii"]["counts"].items()) or "none"),
        f"labels: {labels['n_labels']}, imbalance {labels['imbalance_ratio']}x "
        f"({labels['majority']} {labels['counts'][labels['majority']]} vs {labels['minority']} "
        f"{labels['counts'][labels['minority']]})",
    ]
    for label, count in labels["counts"].items():
        lines.append(f"  {label:<40} {count}")
    flagged = report["style_artifacts"]["flagged"]
    lines.append(f"style artifacts: {len(flagged)} label/feature pairs a model could learn instead of the intent")
    for item in flagged:
        lines.append(
            f"  {item['label']}: {item['feature']}={item['value']} in {item['rate_in_label']:.0%} of its rows "
            f"vs {item['rate_elsewhere']:.0%} elsewhere"
        )
    print("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(get_settings().log_level)
    rows, skipped = read_raw(args.input)
    rows_read = len(rows) + skipped["malformed"]
    rows = clean_rows(rows, args.max_chars, skipped)
    if rows.empty:
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(skipped.items()) if v) or "no data rows"
        raise PipelineError(f"no usable rows in {args.input} ({rows_read} read; {detail})")
    log.info("masking PII in %d messages with %d process(es)", len(rows), args.n_process)
    rows, digests, pii_counts = mask_rows(rows, args.spacy_model, args.n_process, not args.no_progress)
    kept, duplicates, conflicts = dedupe(rows)
    if kept.empty:
        raise PipelineError(f"no rows left in {args.input} after dropping duplicates and conflicting labels")
    report = build_report(
        kept, rows_read=rows_read, skipped=skipped, duplicates=duplicates, conflicts=conflicts,
        pii_counts=pii_counts, input_file=args.input, output_file=args.output,
    )
    # CSV first: if it fails, the previous CSV and pii_values.json still belong together.
    write_csv_atomic(kept[OUTPUT_COLUMNS], args.output)
    files = Artifacts(args.artifacts_dir)
    digests.save(files.pii_values)
    write_json_atomic(files.data_report, report)
    print_summary(report)
    log.info("wrote %d rows to %s and the report to %s", len(kept), args.output, files.data_report)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
