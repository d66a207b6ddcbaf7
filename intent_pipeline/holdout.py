"""Data kept out of training across retrains, so a champion and a challenger are scored on equal terms.

- The frozen test split: the serving release's test split (and its noisy copy), copied once to
  `ARTIFACTS_DIR/frozen_test/`. A retrain's stage 3 (`prepare_data.py --frozen-test DIR`) writes it
  back unchanged as the test split, and keeps it and its near-duplicates out of train and validation:
  the challenger never re-splits test.
- The gold set: a stable share (GOLD_SHARE) of the approved corrections, chosen by a hash of the
  text, so a correction once gold is gold in every later retrain; stage 3 never trains on it.
- Fixed evaluation files (TEST_FILE, VAL_FILE; issue 16): a team's own test and/or validation set,
  cleaned and PII-masked by stage 1's code (`intent_pipeline.ingest`), used as that split unchanged and
  kept, with their near-duplicates, out of training. A frozen test split is one more fixed test set
  (once a fixed test file is in use, the frozen copy is that file's rows).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from intent_pipeline.artifacts import FROZEN_TEST_DIR, FROZEN_TEST_INFO, SPLIT_FILES, Artifacts
from intent_pipeline.errors import PipelineError
from intent_pipeline.files import read_json, sha256_file, write_json_atomic
from intent_pipeline.grouping import assign_splits, near_duplicate_groups
from intent_pipeline.training import read_split

log = logging.getLogger(__name__)

FROZEN_SPLITS = ("test", "test_noisy")
_GOLD_BUCKETS = 10_000


def is_gold(texts: Iterable[str], share: float) -> np.ndarray:
    """Which texts belong to the gold set: the same answer for a text in every run and on every machine."""
    cut = int(round(share * _GOLD_BUCKETS))
    return np.fromiter(
        (int.from_bytes(hashlib.sha256(str(t).encode("utf-8")).digest()[:4], "big") % _GOLD_BUCKETS < cut
         for t in texts), dtype=bool)


def frozen_dir(artifacts_dir: Path) -> Path:
    return artifacts_dir / FROZEN_TEST_DIR


def is_frozen(folder: Path) -> bool:
    return (folder / FROZEN_TEST_INFO).is_file()


def freeze_test(artifacts_dir: Path, fingerprint: str, test_source: dict | None = None) -> Path:
    """Copy stage 3's current test split (and noisy copy) to the frozen folder, once; returns the folder.

    An existing frozen folder is kept as it is: that is the point of freezing. `test_source` (stage 3's
    record of where the test split came from) is kept with it, so a later change of TEST_FILE is noticed.
    """
    target = frozen_dir(artifacts_dir)
    if is_frozen(target):
        return target
    files = Artifacts(artifacts_dir)
    test = read_split(files.split("test"))  # a clear error when stage 3 never ran
    staging = artifacts_dir / f".{FROZEN_TEST_DIR}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in FROZEN_SPLITS:
        if files.split(name).is_file():
            shutil.copy2(files.split(name), staging / SPLIT_FILES[name])
    write_json_atomic(staging / FROZEN_TEST_INFO, {
        "frozen_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "dataset_fingerprint": fingerprint, "rows": len(test), "test_source": test_source,
    })
    shutil.rmtree(target, ignore_errors=True)  # a folder without its info file is a half-made one
    staging.rename(target)
    log.info("froze the test split (%d rows) at %s: every retrain is scored on it", len(test), target)
    return target


def read_frozen_test(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(test, noisy test or None) from a frozen folder, or a PipelineError naming the fix."""
    if not is_frozen(folder):
        raise PipelineError(f"no frozen test split at {folder} ({FROZEN_TEST_INFO} missing): run `python retrain.py`, "
                            "which freezes the serving release's test split")
    frozen_info(folder)  # a clear error when it is damaged
    return (read_split(folder / SPLIT_FILES["test"]),
            read_split(folder / SPLIT_FILES["test_noisy"], required=False))


def frozen_info(folder: Path) -> dict:
    return read_json(folder / FROZEN_TEST_INFO, "frozen test info",
                     "restore it from a backup or delete the folder to freeze the current test split again")


def split_around_frozen_test(rows: pd.DataFrame, frozen: pd.DataFrame, val_ratio: float, test_ratio: float,
                             seed: int) -> pd.DataFrame:
    """Rows (text, label, from_feedback) with group_id and split, the test split being exactly `frozen`."""
    return split_around_fixed(rows, val_ratio, test_ratio, seed, test=frozen)[0]


def split_around_fixed(rows: pd.DataFrame, val_ratio: float, test_ratio: float, seed: int, *,
                       test: pd.DataFrame | None = None, val: pd.DataFrame | None = None,
                       near_duplicates: bool = True) -> tuple[pd.DataFrame, dict]:
    """(rows with group_id and split, report): the test and/or validation split is exactly the given frame.

    Rows whose text is in a fixed set, or that are near-duplicates of one of its texts, are left out
    of training (they would leak; with `near_duplicates=False` only identical ones, so a published
    benchmark trains on its authors' training split); of the rest, the split not given takes its own
    ratio (VAL_RATIO or TEST_RATIO) and the remainder trains (all of it when both are given). Fixed rows
    are kept as given, duplicates included, so scores compare with others' on the same file.
    """
    fixed = {name: frame for name, frame in (("val", val), ("test", test)) if frame is not None}
    if not fixed:
        raise ValueError("split_around_fixed needs a fixed test or validation set")
    fixed_rows = pd.concat([frame[["text", "label"]].assign(split=name) for name, frame in fixed.items()],
                           ignore_index=True)
    exact = rows["text"].isin(set(fixed_rows["text"]))
    rest = rows[~exact].reset_index(drop=True)
    groups = near_duplicate_groups(rest["text"].tolist() + fixed_rows["text"].tolist())
    rest_groups, fixed_groups = groups[: len(rest)], groups[len(rest):]
    leaking = np.isin(rest_groups, fixed_groups) if near_duplicates else np.zeros(len(rest), dtype=bool)
    report = {
        "fixed_rows": {name: len(frame) for name, frame in fixed.items()},
        "dropped_from_training": {"same_text": int(exact.sum()), "near_duplicate": int(leaking.sum())},
        "val_test_near_duplicates": _shared_groups(fixed_rows, fixed_groups) if len(fixed) == 2 else 0,
    }
    if exact.any() or leaking.any():
        log.info("left out of training %d rows identical to and %d rows near-duplicates of fixed %s messages",
                 int(exact.sum()), int(leaking.sum()), "/".join(fixed))
    rest = rest[~leaking].assign(group_id=rest_groups[~leaking])
    if rest["label"].nunique() < 2:
        raise PipelineError(f"fewer than 2 labels left for training beside the fixed {'/'.join(fixed)} set: "
                            "load more labelled messages")
    rest["split"] = _draw_rest(rest, fixed, val_ratio, test_ratio, seed)
    return pd.concat([rest, fixed_rows.assign(from_feedback=False, group_id=fixed_groups)], ignore_index=True), report


def _draw_rest(rest: pd.DataFrame, fixed: dict, val_ratio: float, test_ratio: float, seed: int) -> np.ndarray:
    """Split names for the non-fixed rows: train plus whichever of val/test is not fixed."""
    drawn = [name for name, ratio in (("val", val_ratio), ("test", test_ratio)) if name not in fixed]
    if not drawn:
        return np.full(len(rest), "train", dtype=object)
    name = drawn[0]
    # The fixed set is not carved from these rows (a team's test file, a benchmark's official split), so
    # the drawn split takes its own ratio of them and everything else trains: on data with a hundred
    # rows per intent, every training row counts.
    share = val_ratio if name == "val" else test_ratio
    index = 1 if name == "val" else 2
    ratios = tuple(1 - share if i == 0 else share if i == index else 0.0 for i in range(3))
    split_idx = assign_splits(rest["label"].tolist(), rest["group_id"].to_numpy(), ratios, seed,
                              force_train=rest["from_feedback"].to_numpy())
    # assign_splits gives every split at least one group; the fixed one is given, so that group trains.
    return np.where(split_idx == index, name, "train")


def _shared_groups(fixed_rows: pd.DataFrame, groups: np.ndarray) -> int:
    """Fixed validation rows that are near-duplicates of fixed test rows (the user's files; reported, kept)."""
    in_test = set(groups[(fixed_rows["split"] == "test").to_numpy()])
    return int(sum(g in in_test for g in groups[(fixed_rows["split"] == "val").to_numpy()]))


def check_fixed_labels(rows: pd.DataFrame, sources: dict[str, str]) -> None:
    """A fixed set's label that training never sees could only be scored as wrong: refuse it, naming the file."""
    known = set(rows.loc[rows["split"] == "train", "label"])
    for name, source in sources.items():
        part = rows[rows["split"] == name]
        unknown = part.loc[~part["label"].isin(known), "label"]
        if len(unknown):
            counts = unknown.value_counts()
            named = ", ".join(f"{label!r} ({n} rows)" for label, n in counts.head(10).items())
            more = f" and {len(counts) - 10} more" if len(counts) > 10 else ""
            raise PipelineError(f"{source} has label(s) the training data does not have: {named}{more}; "
                                "remove those rows or add training messages with these labels")


def fixed_source(path: Path, rows: int) -> dict:
    """Where a fixed split came from, as stage 3 records it (stage 5 reports it)."""
    return {"kind": "file", "file": str(path), "name": path.name, "sha256": sha256_file(path), "rows": rows}


def read_fixed_file(path: Path, name: str, *, text_column: str, label_column: str, spacy_model: str,
                    n_process: int, max_chars: int) -> tuple[pd.DataFrame, dict]:
    """(text, label) rows of a fixed `name` ("test" or "val") file, cleaned and PII-masked as stage 1 does, and
    its source record. Unusable and unlabeled rows are left out and counted; the rest are kept as they are."""
    from intent_pipeline.ingest import ingest_file  # spaCy + Presidio: loaded only when a fixed file is used

    ingested = ingest_file(path, text_column=text_column, label_column=label_column, spacy_model=spacy_model,
                           n_process=n_process, max_chars=max_chars, what=f"{name} file",
                           fix=f"set {name.upper()}_FILE or pass --{name}-file")
    rows = ingested.rows[["text", "label"]].reset_index(drop=True)
    source = fixed_source(path, len(rows))
    source.update(rows_read=ingested.rows_read, unlabeled_rows=ingested.unlabeled,
                  skipped={k: int(v) for k, v in sorted(ingested.skipped.items()) if v},
                  pii_masked=int(sum(ingested.pii_counts.values())))
    log.info("fixed %s set: %d rows from %s (%d read, %d unlabeled left out)", name, len(rows), path,
             ingested.rows_read, ingested.unlabeled)
    return rows, source
