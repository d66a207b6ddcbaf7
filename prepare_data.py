"""Stage 3: `messages` table (+ user feedback) -> leak-free train/val/test splits, label map, class
weights and dataset fingerprint under ARTIFACTS_DIR.

Near-duplicates (texts differing only by numbers, PII placeholders, casing/punctuation or one word)
share a group and each group stays inside one split, stratified by label. The training split is
capped per group and label (templated data is highly redundant) and a share of its rows gets an added
chat-style noisy copy; a noisy copy of the test split is written for stage 5. Validation and test are never augmented.

Fixed evaluation files: with `--test-file` (TEST_FILE) and/or `--val-file` (VAL_FILE) the test and/or
validation split is that file (.csv, .tsv, .jsonl/.ndjson or .parquet, columns as in stage 1:
`--text-column` / `--label-column`), cleaned and PII-masked by stage 1's code. Its rows are kept as
they are (duplicates too; rows without a label are left out and counted); messages identical to or
near-duplicates of them are dropped from training and counted; a label the training data lacks stops
the run. Without them, the splits are drawn from the messages in VAL_RATIO / TEST_RATIO.

With `--frozen-test DIR` (what retrain.py passes) the test split is not re-drawn: DIR's test split is
written back unchanged and kept, with its near-duplicates, out of train and validation (when TEST_FILE
is set, the frozen copy is that file's rows, frozen at the first retrain). Corrections in the gold set
(intent_pipeline/holdout.py, GOLD_SHARE) are never part of any split.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import random
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

import config
from intent_pipeline import db, holdout
from intent_pipeline.artifacts import Artifacts
from intent_pipeline.augment import chat_noise, noisy_copies
from intent_pipeline.cli import run_cli
from intent_pipeline.data_quality import style_artifacts
from intent_pipeline.errors import PipelineError
from intent_pipeline.feedback import merge_corrections
from intent_pipeline.files import read_json, sha256_file, write_csv_atomic, write_json_atomic
from intent_pipeline.grouping import (
    SPLIT_NAMES,
    assign_splits,
    near_duplicate_groups,
    texts_with_neighbour,
    too_small_labels,
)
from intent_pipeline.logging_setup import setup_logging
from intent_pipeline.text import normalize_for_model

log = logging.getLogger("prepare_data")

SPLIT_COLUMNS = ["text", "label", "group_id"]


def parse_args(argv: Sequence[str] | None, settings: config.Settings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=settings.database_url,
                        help="database holding the `messages` table (default: DATABASE_URL)")
    parser.add_argument("--artifacts-dir", type=Path, default=settings.artifacts_dir,
                        help="where splits/, label_mapping.json etc. are written (default: ARTIFACTS_DIR)")
    parser.add_argument("--seed", type=int, default=settings.seed, help="seed for splitting and noise (default: SEED)")
    parser.add_argument("--val-ratio", type=float, default=settings.val_ratio, help="validation share (default: VAL_RATIO)")
    parser.add_argument("--test-ratio", type=float, default=settings.test_ratio, help="test share (default: TEST_RATIO)")
    parser.add_argument("--group-cap", type=int, default=settings.train_group_cap,
                        help="most training rows kept per near-duplicate group, 0 = all (default: TRAIN_GROUP_CAP)")
    parser.add_argument("--no-augment", dest="augment", action="store_false", default=settings.augment,
                        help="keep the training split clean, no chat-noise copies (default: AUGMENT)")
    parser.add_argument("--augment-fraction", type=float, default=settings.augment_fraction,
                        help="share of training rows that get an added chat-style noisy copy (default: AUGMENT_FRACTION)")
    parser.add_argument("--no-feedback", dest="feedback", action="store_false", default=True,
                        help="ignore the `feedback` table; by default corrections approved in the dashboard's "
                             "Review view are added to the training split only (pending and rejected ones never)")
    parser.add_argument("--feedback-overrides-curated", action=argparse.BooleanOptionalAction,
                        default=settings.feedback_overrides_curated,
                        help="when an approved correction contradicts the curated label of the same text, train "
                             "on the correction (default: FEEDBACK_OVERRIDES_CURATED, off: the curated label wins)")
    parser.add_argument("--frozen-test", type=Path, default=None,
                        help="keep the test split in this folder (from retrain.py) instead of drawing a new one")
    parser.add_argument("--test-file", type=Path, default=settings.test_file,
                        help="fixed test set instead of a drawn test split (default: TEST_FILE, none)")
    parser.add_argument("--val-file", type=Path, default=settings.val_file,
                        help="fixed validation set instead of a drawn one (default: VAL_FILE, none)")
    parser.add_argument("--fixed-leak-check", choices=("near", "exact"), default=settings.fixed_leak_check,
                        help="training rows left out beside fixed files: `near` (identical or near-duplicate) or "
                             "`exact` (identical only, to train on a published benchmark's split as its authors did; "
                             "default: FIXED_LEAK_CHECK, near)")
    parser.add_argument("--text-column", default=settings.text_column,
                        help="text column of the fixed files (default: TEXT_COLUMN, else detected as in stage 1)")
    parser.add_argument("--label-column", default=settings.label_column,
                        help="label column of the fixed files (default: LABEL_COLUMN, else detected as in stage 1)")
    parser.add_argument("--gold-share", type=float, default=settings.gold_share,
                        help="share of approved corrections held out as the gold set, never trained on (default: GOLD_SHARE)")
    args = parser.parse_args(argv)
    # Masking the fixed files takes stage 1's settings (the same text path as the training data).
    args.spacy_model, args.n_process, args.max_chars = settings.spacy_model, settings.n_process, settings.max_text_chars
    if not 0 <= args.gold_share < 1:
        raise PipelineError("--gold-share must be in [0, 1)")
    if not (0 < args.val_ratio < 1 and 0 < args.test_ratio < 1 and args.val_ratio + args.test_ratio < 1):
        raise PipelineError("--val-ratio and --test-ratio must be in (0, 1) and sum to less than 1")
    if not 0 <= args.augment_fraction <= 1:
        raise PipelineError("--augment-fraction must be between 0 and 1")
    return args


def load_rows(database_url: str, use_feedback: bool, feedback_wins: bool,
              gold_share: float = 0.0) -> tuple[pd.DataFrame, dict]:
    """`text,label,from_feedback` from messages plus *approved* feedback corrections, and the feedback report.

    Texts of gold-set corrections (intent_pipeline/holdout.py) are left out everywhere: retrain.py scores on them.
    """
    engine = db.connect(database_url)
    try:
        messages = db.read_messages(engine)[["text", "label"]]
        approved = db.read_feedback(engine, db.FEEDBACK_APPROVED) if use_feedback else None
        counts = db.count_feedback(engine)
    finally:
        engine.dispose()
    if messages.empty:
        raise PipelineError(f"the messages table in {config.mask_url(database_url)} is empty: run `python load_to_mysql.py` first")
    if approved is None:
        approved = pd.DataFrame(columns=db.FEEDBACK_COLUMNS)
    gold = set(approved["text"].astype(str)[holdout.is_gold(approved["text"].astype(str), gold_share)])
    approved = approved[~approved["text"].astype(str).isin(gold)]
    merged = merge_corrections(messages, approved, feedback_wins)
    report = merged.report(len(approved), feedback_wins, counts)
    report["feedback_ids"] = merged.used_ids
    log_feedback(report, use_feedback)
    rows = merged.rows[(merged.rows["text"].astype(str).str.strip() != "") & ~merged.rows["text"].isin(gold)]
    log.info("read %d messages and %d approved feedback corrections (%d more held out as gold)", len(messages),
             len(approved), len(gold))
    return rows, report


def log_feedback(report: dict, use_feedback: bool) -> None:
    if not use_feedback:
        log.info("feedback left out (--no-feedback)")
        return
    log.info("feedback: used %d approved corrections (%d repeat a curated label; %d pending review and %d rejected "
             "not used)", report["used"], report["agreeing_with_curated"], report["pending_not_used"], report["rejected"])
    if report["unknown_labels_ignored"]:
        # A label seen only in feedback would have no validation/test examples to measure it.
        log.warning("ignoring approved feedback with labels not in messages: %s", ", ".join(report["unknown_labels_ignored"]))
    for item in report["contradictions"]:
        log.warning("feedback %d contradicts the curated label: %r is %s, the correction says %s; kept: %s",
                    item["feedback_id"], item["text"][:80], item["curated_label"], item["correction"], item["kept"])


def check_labels(rows: pd.DataFrame, groups: np.ndarray) -> None:
    labels = rows["label"].unique()
    if len(labels) < 2:
        raise PipelineError(
            f"need at least 2 labels to train a classifier, the data has {len(labels)} ({', '.join(map(str, labels))}): "
            "load more labelled messages with `python load_to_mysql.py`"
        )
    small = too_small_labels(rows["label"].tolist(), groups)
    if small:
        named = ", ".join(f"{label!r} ({n} rows, {g} distinct groups)" for label, (n, g) in list(small.items())[:20])
        if len(small) > 20:
            named += f" and {len(small) - 20} more"
        raise PipelineError(
            f"labels with too few distinct examples to split into train/val/test (need >= 3 groups of "
            f"near-duplicates each): {named}; add more varied examples or remove these labels"
        )


def fingerprint(rows: pd.DataFrame) -> str:
    """sha256 over the sorted (label, text) pairs: identical data gives an identical fingerprint."""
    digest = hashlib.sha256()
    for line in sorted(f"{label}\t{text}" for text, label in zip(rows["text"], rows["label"])):
        digest.update(line.encode("utf-8") + b"\n")
    return digest.hexdigest()


def cap_per_group(train: pd.DataFrame, cap: int, seed: int) -> pd.DataFrame:
    """Keep at most `cap` seeded-random rows per group and label (feedback rows always kept).

    Per label, because near-duplicate grouping chains short questions across intents ("Can I change my
    PIN?", "Can I change my address?"): on BANKING77 one group holds 177 rows of 20 intents, and a cap
    per group alone dropped distinct examples of each. Copies of one template share a label.
    """
    if cap <= 0:
        return train
    shuffled = train.sample(frac=1.0, random_state=seed)
    rank = shuffled.groupby(["group_id", "label"]).cumcount()
    return shuffled[(rank < cap) | shuffled["from_feedback"]].sort_index()


def augment_train(train: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """Add a chat-style noisy copy of a seeded `fraction` of the training rows (labels and groups kept).

    Copies are added, not swapped in: on data with a hundred rows per intent every clean example
    counts (rewriting in place left BANKING77 half of its ~110 clean examples per intent). Stage 4
    budgets epochs by training examples, so the copies do not lengthen training much.
    """
    train = train.reset_index(drop=True)
    copies = noisy_copies(train["text"].tolist(), seed, fraction)
    if not copies:
        return train
    index, texts = zip(*copies)
    noisy = train.loc[list(index)].assign(text=list(texts), augmented=True)
    return pd.concat([train, noisy], ignore_index=True)


def noisy_test(test: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = random.Random(seed + 1)  # independent of the training noise stream
    return test.assign(text=[chat_noise(t, rng) for t in test["text"]])


def class_weights(train: pd.DataFrame, labels: list[str]) -> dict[str, float]:
    """Balanced weights n / (k * count), scaled to mean 1 so the loss keeps its usual size."""
    counts = train["label"].value_counts()
    raw = np.array([len(train) / (len(labels) * counts[label]) for label in labels])
    return {label: round(float(w), 6) for label, w in zip(labels, raw / raw.mean())}


def splits_report(rows: pd.DataFrame, train_final: pd.DataFrame, args: argparse.Namespace) -> dict:
    by_split = {name: rows[rows["split"] == name] for name in SPLIT_NAMES}
    train_texts = by_split["train"]["text"].tolist()
    sizes = rows.groupby("group_id").size()
    return {
        "seed": args.seed,
        "ratios": {"train": 1 - args.val_ratio - args.test_ratio, "val": args.val_ratio, "test": args.test_ratio},
        "rows": {name: len(frame) for name, frame in by_split.items()},
        "train_rows_written": len(train_final),
        "train_group_cap": args.group_cap,
        "augmented_rows": int(train_final["augmented"].sum()),
        "feedback_rows": int(rows["from_feedback"].sum()),
        "near_duplicate_groups": int(sizes.size),
        "largest_group": int(sizes.max()),
        "test_with_near_duplicate_in_train": int(texts_with_neighbour(by_split["test"]["text"].tolist(), train_texts).sum()),
        "val_with_near_duplicate_in_train": int(texts_with_neighbour(by_split["val"]["text"].tolist(), train_texts).sum()),
        "per_label": {
            label: {name: int((frame["label"] == label).sum()) for name, frame in by_split.items()}
            for label in sorted(rows["label"].unique())
        },
        "style_artifacts_after_normalisation": artifacts_after_normalisation(train_final),
    }


def artifacts_after_normalisation(train: pd.DataFrame) -> dict:
    """Stage 1's style-artifact check re-run on the training text as the model sees it."""
    section = style_artifacts(train.assign(text=train["text"].map(normalize_for_model)))
    return {
        "flagged": section["flagged"],
        "features_flagged": sorted({f["feature"] for f in section["flagged"]}),
        "note": "normalize_for_model lower-cases and strips edge punctuation, so casing and punctuation flags "
                "should be gone; length flags remain on purpose: short messages are a real property of "
                "chit-chat ('other'), not an artifact of how the seed was written",
    }


def update_data_report(path: Path, section: dict) -> None:
    report = read_json(path, "data report", "fix or delete it, or re-run `python ingest_clean.py`") if path.is_file() else {}
    report["splits"] = section
    write_json_atomic(path, report)


def read_fixed_sets(args: argparse.Namespace) -> dict[str, tuple[pd.DataFrame, dict]]:
    """{"test"/"val": (rows, source)} for the fixed files given; read and masked before anything is written."""
    fixed = {}
    for name, path in (("test", args.test_file), ("val", args.val_file)):
        if path is None or (name == "test" and args.frozen_test is not None):
            continue
        fixed[name] = holdout.read_fixed_file(path, name, text_column=args.text_column, label_column=args.label_column,
                                              spacy_model=args.spacy_model, n_process=args.n_process,
                                              max_chars=args.max_chars)
    return fixed


def frozen_test_set(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame | None, dict]:
    """(test, noisy test or None, source) of the frozen folder; warns when TEST_FILE no longer matches it."""
    frozen, noisy = holdout.read_frozen_test(args.frozen_test)
    origin = holdout.frozen_info(args.frozen_test).get("test_source") or {}
    if args.test_file is not None and origin.get("sha256") != (sha256_file(args.test_file) if args.test_file.is_file() else None):
        # The point of freezing: champion and challenger are scored on the same rows, whatever changed since.
        log.warning("TEST_FILE %s is not what the frozen test split at %s was made from (%s): retrains keep scoring "
                    "on the frozen rows; delete that folder to freeze the file's rows at the next retrain",
                    args.test_file, args.frozen_test, origin.get("file") or "a drawn test split")
    source = {"kind": "frozen", "folder": str(args.frozen_test), "rows": len(frozen), "frozen_from": origin or None}
    return frozen, noisy, source


def split_rows(rows: pd.DataFrame, args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame | None, dict]:
    """(rows with group_id and split, frozen noisy test or None, sources report)."""
    fixed = read_fixed_sets(args)
    frozen_noisy = None
    if args.frozen_test is not None:
        frozen, frozen_noisy, source = frozen_test_set(args)
        fixed["test"] = (frozen, source)
    sources = {name: {"kind": "split", "ratio": ratio} for name, ratio in (("val", args.val_ratio), ("test", args.test_ratio))}
    sources.update({name: source for name, (_, source) in fixed.items()})
    if not fixed:
        rows["group_id"] = near_duplicate_groups(rows["text"].tolist())
        check_labels(rows, rows["group_id"].to_numpy())
        ratios = (1 - args.val_ratio - args.test_ratio, args.val_ratio, args.test_ratio)
        split_idx = assign_splits(rows["label"].tolist(), rows["group_id"].to_numpy(), ratios, args.seed,
                                  force_train=rows["from_feedback"].to_numpy())
        rows["split"] = np.asarray(SPLIT_NAMES)[split_idx]
        return rows, None, {"sources": sources}
    rows, report = holdout.split_around_fixed(rows, args.val_ratio, args.test_ratio, args.seed,
                                              test=fixed.get("test", (None,))[0], val=fixed.get("val", (None,))[0],
                                              near_duplicates=args.fixed_leak_check == "near")
    holdout.check_fixed_labels(rows, {name: f"{name} file {src.get('file') or src.get('folder')}"
                                      for name, (_, src) in fixed.items()})
    if report["val_test_near_duplicates"]:
        log.warning("%d rows of the fixed validation set are near-duplicates of fixed test rows: the fallback rule "
                    "is tuned on validation, so test scores may be optimistic", report["val_test_near_duplicates"])
    return rows, frozen_noisy, {"sources": sources, "fixed": report}


def prepare(args: argparse.Namespace) -> dict:
    rows, feedback_report = load_rows(args.database_url, args.feedback, args.feedback_overrides_curated, args.gold_share)
    # Sorting by text makes group ids and splits independent of the order the database returns.
    rows = rows.sort_values(["text", "label"], kind="stable").reset_index(drop=True)
    rows, frozen_noisy, fixed_report = split_rows(rows, args)
    labels = sorted(rows["label"].unique())

    train = cap_per_group(rows[rows["split"] == "train"], args.group_cap, args.seed).assign(augmented=False)
    if args.augment:
        train = augment_train(train, args.augment_fraction, args.seed)
    test = rows[rows["split"] == "test"]

    out = Artifacts(args.artifacts_dir)
    write_csv_atomic(train[SPLIT_COLUMNS], out.split("train"))
    write_csv_atomic(rows[rows["split"] == "val"][SPLIT_COLUMNS], out.split("val"))
    write_csv_atomic(test[SPLIT_COLUMNS], out.split("test"))
    noisy = noisy_test(test, args.seed) if frozen_noisy is None else frozen_noisy.assign(
        group_id=frozen_noisy["group_id"] if "group_id" in frozen_noisy else -1)
    write_csv_atomic(noisy[SPLIT_COLUMNS], out.split("test_noisy"))
    write_json_atomic(out.label_mapping, {
        "label2id": {label: i for i, label in enumerate(labels)},
        "id2label": {str(i): label for i, label in enumerate(labels)},
    })
    write_json_atomic(out.class_weights, class_weights(train, labels))
    write_json_atomic(out.dataset_fingerprint, {
        "fingerprint": fingerprint(rows), "rows": len(rows), "labels": len(labels), "seed": args.seed,
        "val_ratio": args.val_ratio, "test_ratio": args.test_ratio, "feedback_rows": int(rows["from_feedback"].sum()),
        "feedback_ids": feedback_report["feedback_ids"],
        "frozen_test": str(args.frozen_test) if args.frozen_test else None,
        "test_source": fixed_report["sources"]["test"], "val_source": fixed_report["sources"]["val"],
    })
    section = splits_report(rows, train, args)
    section.update(fixed_report)
    section["feedback"] = {k: v for k, v in feedback_report.items() if k != "feedback_ids"}
    update_data_report(out.data_report, section)
    return section


def main(argv: Sequence[str] | None = None) -> int:
    settings = config.get_settings()
    setup_logging(settings.log_level)
    args = parse_args(argv, settings)
    section = prepare(args)
    log.info(
        "splits written to %s: %s rows (train written: %d, %d augmented); test items with a near-duplicate in train: %d",
        Artifacts(args.artifacts_dir).splits_dir, section["rows"], section["train_rows_written"],
        section["augmented_rows"], section["test_with_near_duplicate_in_train"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
