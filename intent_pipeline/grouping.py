"""Near-duplicate groups: texts that differ only by numbers, PII placeholders, casing/punctuation
or a single word share a group, so a split can keep every group on one side.

Each text gets hashed keys: its "skeleton" (normalised, digits and placeholders folded) and, for
texts of at least `MIN_TOKENS_FOR_DROP` tokens, the skeleton with each single word dropped. Two
texts sharing any key are linked (a one-word substitution shares a drop key, a one-word insertion
matches the other's skeleton); groups are the connected components. Keys are hashed and joined by
sorting, so the cost is O(n * words) time and memory, never O(n^2).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from intent_pipeline.text import normalize_for_model

# Placeholders as PII maskers write them: <PERSON>, [EMAIL], {name}, <PHONE_NUMBER>.
_PLACEHOLDER = re.compile(r"<[A-Za-z_ ]{2,40}>|\[[A-Za-z_ ]{2,40}\]|\{[A-Za-z_ ]{2,40}\}")
_DIGITS = re.compile(r"\d+")
_TOKEN = re.compile(r"<pii>|[a-z0-9]+(?:'[a-z]+)?")
# Dropping a word from a 2-word text leaves a single word that unrelated texts share ("order").
MIN_TOKENS_FOR_DROP = 3


def skeleton_tokens(text: str) -> list[str]:
    """Words of `text` with casing, punctuation, numbers and PII placeholders folded away."""
    text = _PLACEHOLDER.sub(" <pii> ", str(text))
    text = _DIGITS.sub("0", normalize_for_model(text))
    return _TOKEN.findall(text)


def skeleton(text: str) -> str:
    return " ".join(skeleton_tokens(text))


def near_duplicate_keys(text: str) -> list[str]:
    """The skeleton plus every drop-one-word variant (for texts long enough to keep meaning)."""
    tokens = skeleton_tokens(text)
    keys = [" ".join(tokens)]
    if len(tokens) >= MIN_TOKENS_FOR_DROP:
        keys.extend(" ".join(tokens[:i] + tokens[i + 1 :]) for i in range(len(tokens)))
    return keys


def _key_hashes(texts: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """Parallel arrays (row index, 64-bit key hash) over all keys of all texts."""
    rows: list[int] = []
    hashes: list[int] = []
    for row, text in enumerate(texts):
        for key in set(near_duplicate_keys(text)):
            rows.append(row)
            hashes.append(hash(key))
    return np.asarray(rows, dtype=np.int64), np.asarray(hashes, dtype=np.int64)


def near_duplicate_groups(texts: Sequence[str]) -> np.ndarray:
    """Group id per text (0..n_groups-1, numbered by first appearance); near-duplicates share one."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(texts)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    rows, hashes = _key_hashes(texts)
    order = np.lexsort((rows, hashes))
    rows, hashes = rows[order], hashes[order]
    # Link each key occurrence to the next one with the same hash: a chain per key connects them all.
    same = hashes[1:] == hashes[:-1]
    src, dst = rows[:-1][same], rows[1:][same]
    graph = coo_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    # Renumber by first appearance so ids depend only on the input order.
    _, first = np.unique(labels, return_index=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(np.argsort(first))] = np.arange(len(first))
    return rank[labels]


def texts_with_neighbour(candidates: Sequence[str], reference: Sequence[str]) -> np.ndarray:
    """Boolean mask: which `candidates` share a near-duplicate key with any `reference` text."""
    ref_keys = {hash(k) for text in reference for k in near_duplicate_keys(text)}
    return np.fromiter(
        (any(hash(k) in ref_keys for k in near_duplicate_keys(t)) for t in candidates),
        dtype=bool, count=len(candidates),
    )


SPLIT_NAMES = ("train", "val", "test")
MIN_GROUPS_PER_LABEL = len(SPLIT_NAMES)


def _group_table(labels: Sequence[str], groups: np.ndarray, force_train: np.ndarray) -> "pd.DataFrame":
    """One row per group: size, dominant label (a group spanning labels follows its majority), forced."""
    import pandas as pd

    rows = pd.DataFrame({"label": list(labels), "group": groups, "forced": force_train})
    counts = rows.groupby(["group", "label"], sort=True).size().reset_index(name="n")
    dominant = counts.sort_values(["group", "n", "label"], ascending=[True, False, True]).drop_duplicates("group")
    table = rows.groupby("group", sort=True).agg(size=("label", "size"), forced=("forced", "any"))
    return table.join(dominant.set_index("group")["label"])


def too_small_labels(labels: Sequence[str], groups: np.ndarray) -> dict[str, tuple[int, int]]:
    """Labels that cannot have a group in each split: {label: (rows, groups)}."""
    table = _group_table(labels, groups, np.zeros(len(labels), dtype=bool))
    per_label = table.groupby("label").size()
    rows = Counter(labels)
    return {
        label: (rows[label], int(per_label.get(label, 0)))
        for label in sorted(rows)
        if per_label.get(label, 0) < MIN_GROUPS_PER_LABEL
    }


def assign_splits(
    labels: Sequence[str],
    groups: np.ndarray,
    ratios: tuple[float, float, float],
    seed: int,
    force_train: np.ndarray | None = None,
) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) per row; every group lands whole in one split.

    Stratified by the groups' dominant label: per label, groups go largest first (seeded random
    order among equal sizes) to the split furthest below its target row count, then any split
    left without a group takes the smallest train group. Linear in rows + groups.
    """
    force = np.zeros(len(labels), dtype=bool) if force_train is None else np.asarray(force_train, dtype=bool)
    table = _group_table(labels, groups, force)
    rng = np.random.default_rng(seed)
    table["tiebreak"] = rng.permutation(len(table))
    split_of_group: dict[int, int] = {}
    for _, part in table.groupby("label", sort=True):
        part = part.sort_values(["forced", "size", "tiebreak"], ascending=[False, False, True])
        targets = np.asarray(ratios, dtype=float) * part["size"].sum()
        filled = np.zeros(len(SPLIT_NAMES))
        members: list[list[int]] = [[] for _ in SPLIT_NAMES]
        for group, size, forced in zip(part.index, part["size"], part["forced"]):
            split = 0 if forced else int(np.argmax(targets - filled))
            filled[split] += size
            members[split].append(group)
        for split in (1, 2):
            movable = [g for g in members[0] if not table.at[g, "forced"]]
            if not members[split] and len(movable) > 1:
                smallest = min(movable, key=lambda g: (table.at[g, "size"], table.at[g, "tiebreak"]))
                members[0].remove(smallest)
                members[split].append(smallest)
        for split, gs in enumerate(members):
            split_of_group.update((g, split) for g in gs)
    lookup = np.zeros(int(groups.max()) + 1 if len(groups) else 0, dtype=np.int8)
    for group, split in split_of_group.items():
        lookup[group] = split
    return lookup[groups]
