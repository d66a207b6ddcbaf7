"""The style-artifact report: surface cues (punctuation, casing, length) that give away a label.

Used by stage 1 on the cleaned data and by stage 3 on the training split after normalisation.
"""

from __future__ import annotations

import pandas as pd

# A surface feature value is flagged for a label when its rate inside the label exceeds its rate
# in all other labels by at least this much: a model can then tell the label by style alone.
ARTIFACT_GAP = 0.5
SHORT_CHARS, LONG_CHARS = 25, 60


def surface_features(texts: pd.Series) -> pd.DataFrame:
    """Style cues that carry no intent: how a message ends, starts and how long it is."""
    last = texts.str[-1]
    first = texts.str[:1]
    length = texts.str.len()
    return pd.DataFrame({
        "trailing_punctuation": last.map(lambda c: {".": "period", "?": "question", "!": "exclamation"}.get(c, "none")),
        "first_letter_case": first.map(lambda c: "upper" if c.isupper() else "lower" if c.islower() else "other"),
        "length": pd.cut(
            length, [0, SHORT_CHARS, LONG_CHARS, float("inf")],
            labels=[f"<={SHORT_CHARS}", f"{SHORT_CHARS + 1}-{LONG_CHARS}", f">{LONG_CHARS}"],
        ).astype(str),
    }, index=texts.index)


def _cramers_v(table: pd.DataFrame) -> float:
    """Association between label and feature value, 0 (none) to 1 (the feature gives the label)."""
    observed = table.to_numpy(dtype=float)
    if observed.shape[0] < 2 or observed.shape[1] < 2:
        return 0.0
    expected = observed.sum(1, keepdims=True) * observed.sum(0, keepdims=True) / observed.sum()
    chi2 = ((observed - expected) ** 2 / expected).sum()
    return round(float((chi2 / observed.sum() / (min(observed.shape) - 1)) ** 0.5), 3)


def style_artifacts(rows: pd.DataFrame) -> dict:
    """Per feature: value rates overall and per label, Cramér's V, and (label, value) pairs flagged."""
    features = surface_features(rows["text"])
    section: dict = {"threshold_gap": ARTIFACT_GAP, "features": {}, "flagged": []}
    for name in features.columns:
        counts = pd.crosstab(rows["label"], features[name])
        per_label = counts.div(counts.sum(axis=1), axis=0)
        overall = counts.sum(axis=0) / counts.to_numpy().sum()
        for label in counts.index:
            elsewhere = counts.drop(index=label).sum(axis=0)
            rest = elsewhere / max(elsewhere.sum(), 1)
            for value in counts.columns:
                gap = per_label.loc[label, value] - rest[value]
                if gap >= ARTIFACT_GAP:
                    section["flagged"].append({
                        "feature": name, "value": str(value), "label": str(label),
                        "rate_in_label": round(float(per_label.loc[label, value]), 3),
                        "rate_elsewhere": round(float(rest[value]), 3),
                    })
        section["features"][name] = {
            "cramers_v": _cramers_v(counts),
            "overall": {str(k): round(float(v), 3) for k, v in overall.items()},
            "per_label": {
                str(label): {str(k): round(float(v), 3) for k, v in row.items()} for label, row in per_label.iterrows()
            },
        }
    section["mean_length_by_label"] = {
        str(k): round(float(v), 1) for k, v in rows.groupby("label")["text"].apply(lambda s: s.str.len().mean()).items()
    }
    return section
