"""Data tests of stage 1's output on a sample of the real seed file, and of the data-quality report."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pandas as pd
import pytest

import ingest_clean
from intent_pipeline.pii_digests import find_leaked_pii

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SEED = PROJECT_ROOT / "data" / "raw_customer_interactions.csv"
PLACEHOLDER = re.compile(r"\[[A-Z_]+\]")


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory: pytest.TempPathFactory, masker) -> Path:
    """Stage 1 on ~400 seed rows: every label, plus every row that holds a name, place or number."""
    out = tmp_path_factory.mktemp("seed_run")
    seed = pd.read_csv(SEED)
    risky = seed["query"].str.contains(r"\d|\bfrom [A-Z][a-z]+ [A-Z]|\bfor [A-Z][a-z]+ [A-Z]", regex=True)
    sample = pd.concat([
        seed.groupby("intent").head(15),
        seed[risky].sample(150, random_state=0),
        seed[seed["query"].str.contains(r"\b(?:from|for) [A-Z][a-z]+ [A-Z][a-z]+", regex=True)].head(40),
    ]).drop_duplicates()
    sample.to_csv(out / "raw.csv", index=False)
    argv = ["--input", str(out / "raw.csv"), "--output", str(out / "cleaned.csv"), "--artifacts-dir", str(out),
            "--n-process", "1", "--no-progress"]
    assert ingest_clean.main(argv) == 0
    return out


def test_schema_and_hashes(seed_run: Path) -> None:
    out = pd.read_csv(seed_run / "cleaned.csv", keep_default_na=False)
    assert list(out.columns) == ["text", "label", "text_hash", "source"]
    assert (out["text"].str.strip() != "").all()
    assert out["text_hash"].is_unique and out["text"].is_unique
    assert (out["text_hash"] == out["text"].map(lambda t: hashlib.sha256(t.encode("utf-8")).hexdigest())).all()


def test_labels_are_the_seed_intents(seed_run: Path) -> None:
    out = pd.read_csv(seed_run / "cleaned.csv")
    seed_labels = set(pd.read_csv(SEED)["intent"].str.strip().str.lower())
    assert set(out["label"]) == seed_labels
    report = json.loads((seed_run / "data_report.json").read_text())
    assert report["labels"]["n_labels"] == 15
    assert sum(report["labels"]["counts"].values()) == len(out)


def test_no_pii_left_in_the_cleaned_seed_sample(seed_run: Path) -> None:
    out = pd.read_csv(seed_run / "cleaned.csv")
    assert find_leaked_pii([seed_run / "cleaned.csv"], seed_run / "pii_values.json") == []
    # Order, invoice and bill numbers are the seed's commonest PII: no run of 4+ digits may survive.
    digits = out["text"].str.contains(r"(?<![\d$.,])(?<!\$ )\d{4,}\b(?! dollars)", regex=True)
    assert not digits.any(), out["text"][digits].tolist()  # amounts of money may stay
    named = out[out["text"].str.contains(r"\b(?:from|for) \[PERSON\]", regex=True)]
    assert len(named) >= 20, "names in the seed rows should have become [PERSON]"
    report = json.loads((seed_run / "data_report.json").read_text())
    assert report["pii"]["counts"].get("PERSON", 0) >= 20


def test_report_reveals_the_seed_style_artifact(seed_run: Path) -> None:
    flagged = json.loads((seed_run / "data_report.json").read_text())["style_artifacts"]["flagged"]
    other = {(f["feature"], f["value"]) for f in flagged if f["label"] == "other"}
    assert ("first_letter_case", "lower") in other
    assert ("trailing_punctuation", "none") in other


def test_report_flags_a_planted_punctuation_artifact(settings_env: Path, masker) -> None:
    things = "parcel box lamp chair table sofa desk kettle toaster blender mug spoon fork plate bowl rug pillow towel mirror clock".split()
    rows = [(f"where is my {thing}.", "shipping") for thing in things[:10]]
    rows += [(f"why was i charged for the {thing}", "billing") for thing in things]  # 2:1 imbalance
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(settings_env / "raw.csv", index=False)
    assert ingest_clean.main(["--no-progress", "--n-process", "1"]) == 0
    report = json.loads((settings_env / "artifacts" / "data_report.json").read_text())
    assert {"input", "labels", "duplicates", "conflicts", "pii", "style_artifacts"} <= set(report)
    assert report["labels"]["imbalance_ratio"] == 2.0
    flagged = report["style_artifacts"]["flagged"]
    assert {"feature": "trailing_punctuation", "value": "period", "label": "shipping",
            "rate_in_label": 1.0, "rate_elsewhere": 0.0} in flagged
    assert not [f for f in flagged if f["feature"] == "first_letter_case"]  # same casing everywhere
