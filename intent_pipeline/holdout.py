"""Data kept out of training across retrains, so a champion and a challenger are scored on equal terms.

- The frozen test split: the serving release's test split (and its noisy copy), copied once to
  `ARTIFACTS_DIR/frozen_test/`. A retrain's stage 3 (`prepare_data.py --frozen-test DIR`) writes it
  back unchanged as the test split, and keeps it and its near-duplicates out of train and validation:
  the challenger never re-splits test.
- The gold set: a stable share (GOLD_SHARE) of the approved corrections, chosen by a hash of the
  text, so a correction once gold is gold in every later retrain; stage 3 never trains on it.
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
from intent_pipeline.grouping import assign_splits, near_duplicate_groups
from intent_pipeline.errors import PipelineError
from intent_pipeline.files import read_json, write_json_atomic
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


def freeze_test(artifacts_dir: Path, fingerprint: str) -> Path:
    """Copy stage 3's current test split (and noisy copy) to the frozen folder, once; returns the folder.

    An existing frozen folder is kept as it is: that is the point of freezing.
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
        "dataset_fingerprint": fingerprint, "rows": len(test),
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
    fix = "restore it from a backup or delete the folder to freeze the current test split again"
    read_json(folder / FROZEN_TEST_INFO, "frozen test info", fix)
    return (read_split(folder / SPLIT_FILES["test"]),
            read_split(folder / SPLIT_FILES["test_noisy"], required=False))


def split_around_frozen_test(rows: pd.DataFrame, frozen: pd.DataFrame, val_ratio: float, test_ratio: float,
                             seed: int) -> pd.DataFrame:
    """Rows (text, label, from_feedback) with group_id and split, the test split being exactly `frozen`.

    Rows whose text is in the frozen test, or that are near-duplicates of one, are left out of
    train and validation (they would leak); the rest is split train/val in stage 3's proportions.
    """
    frozen_texts = set(frozen["text"])
    rest = rows[~rows["text"].isin(frozen_texts)].reset_index(drop=True)
    all_texts = rest["text"].tolist() + frozen["text"].tolist()
    groups = near_duplicate_groups(all_texts)
    rest_groups, frozen_groups = groups[: len(rest)], groups[len(rest):]
    leaking = np.isin(rest_groups, frozen_groups)
    if leaking.any():
        log.info("left out %d rows that are near-duplicates of frozen test messages", int(leaking.sum()))
    rest = rest[~leaking].assign(group_id=rest_groups[~leaking])
    if rest["label"].nunique() < 2:
        raise PipelineError("fewer than 2 labels left beside the frozen test split: load more labelled messages")
    val_share = val_ratio / (1 - test_ratio)
    split_idx = assign_splits(rest["label"].tolist(), rest["group_id"].to_numpy(), (1 - val_share, val_share, 0.0),
                              seed, force_train=rest["from_feedback"].to_numpy())
    # assign_splits gives every split at least one group; the test split is frozen, so that one trains.
    rest["split"] = np.where(split_idx == 1, "val", "train")
    test = frozen[["text", "label"]].assign(from_feedback=False, group_id=frozen_groups, split="test")
    return pd.concat([rest, test], ignore_index=True)
