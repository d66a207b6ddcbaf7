"""Stage 1: raw customer messages (CSV, TSV, JSON Lines or Parquet) -> cleaned, PII-masked messages + data-quality report.

RAW_DATA_FILE -> CLEANED_DATA_FILE (columns text,label,text_hash,source; text cleaned and PII-masked,
text_hash = sha256 of that text), ARTIFACTS_DIR/data_report.json (labels, skipped and unlabeled rows,
duplicates, conflicts, PII counts, style artifacts) and ARTIFACTS_DIR/pii_values.json (salted digests of
the raw PII values masked; never the values themselves).

Input: a file of messages chosen by extension: `.csv`, `.tsv`, `.jsonl`/`.ndjson` (one JSON object per
line) or `.parquet`, any number of rows and labels. `--text-column` / `--label-column` (TEXT_COLUMN,
LABEL_COLUMN) name its columns; without them a text column (`text`, `query`, `message` or `utterance`)
and a label column (`label` or `intent`) are detected. An optional `source` column is kept. Labels are
trimmed and lower-cased. Single bad rows are skipped and counted by reason: `malformed` (wrong number
of fields, a JSON line that is not an object; a stray `"` inside a CSV field is kept as text),
`non_utf8` (undecodable bytes), `empty_text`, `missing_label`, and `too_long` (cleaned text longer than
MAX_TEXT_CHARS). Rows without a label (empty, `null`, NaN) are unlabeled messages: they are left out
of the cleaned file (nothing downstream could train or score on them), counted as `unlabeled_rows` in
the report and logged. Identical texts are kept once; texts that carry conflicting labels are dropped
entirely and listed in the report. Whole-file problems (missing, empty, unsupported extension, no usable
or a misnamed column, not UTF-8, a quote left open to the end of the file, not Parquet/JSON Lines) stop
the run with one line; outputs are written atomically, so an existing cleaned file is never replaced by
a partial one.
"""

from __future__ import annotations

import argparse
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
from intent_pipeline.ingest import dedupe, ingest_file

log = logging.getLogger("ingest_clean")

OUTPUT_COLUMNS = ["text", "label", "text_hash", "source"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, default=settings.raw_data_file,
                        help="raw messages: .csv, .tsv, .jsonl/.ndjson or .parquet (default: RAW_DATA_FILE)")
    parser.add_argument("--text-column", default=settings.text_column,
                        help="column holding the message text (default: TEXT_COLUMN, else detected: "
                             "text, query, message or utterance)")
    parser.add_argument("--label-column", default=settings.label_column,
                        help="column holding the intent label (default: LABEL_COLUMN, else detected: label or intent)")
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
            # Unlabeled messages are also in `skipped` (missing_label); named apart because an export
            # with many of them is normal, not a data error.
            "unlabeled_rows": int(skipped.get("missing_label", 0)),
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
        f"unlabeled rows (no label, left out of training): {inp['unlabeled_rows']}",
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
    ingested = ingest_file(
        args.input, text_column=args.text_column, label_column=args.label_column, spacy_model=args.spacy_model,
        n_process=args.n_process, max_chars=args.max_chars, progress=not args.no_progress,
        fix="set RAW_DATA_FILE or pass --input",
    )
    kept, duplicates, conflicts = dedupe(ingested.rows)
    if kept.empty:
        raise PipelineError(f"no rows left in {args.input} after dropping duplicates and conflicting labels")
    report = build_report(
        kept, rows_read=ingested.rows_read, skipped=ingested.skipped, duplicates=duplicates, conflicts=conflicts,
        pii_counts=ingested.pii_counts, input_file=args.input, output_file=args.output,
    )
    # CSV first: if it fails, the previous CSV and pii_values.json still belong together.
    write_csv_atomic(kept[OUTPUT_COLUMNS], args.output)
    files = Artifacts(args.artifacts_dir)
    ingested.digests.save(files.pii_values)
    write_json_atomic(files.data_report, report)
    print_summary(report)
    log.info("wrote %d rows to %s and the report to %s", len(kept), args.output, files.data_report)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
