"""Stage 3: grouped, deterministic, leak-free splits; augmentation; feedback; bad inputs."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import prepare_data
from intent_pipeline import db
from intent_pipeline.augment import SLANG, chat_noise
from intent_pipeline.cli import run_cli
from intent_pipeline.data_quality import style_artifacts
from intent_pipeline.grouping import near_duplicate_groups, skeleton, texts_with_neighbour

PROJECT_ROOT = Path(__file__).resolve().parent.parent

SEED_LABELS = ["contact_support", "queries_related_to_order", "request_invoice", "review", "other"]


def insert_messages(url: str, rows: list[tuple[str, str]]) -> None:
    engine = db.connect(url)
    with engine.begin() as conn:
        conn.execute(db.messages.insert(), [
            {"text": t, "label": l, "text_hash": hashlib.sha256(t.encode()).hexdigest(), "source": "test"} for t, l in rows
        ])
    engine.dispose()


def seed_rows(per_label: int = 120) -> list[tuple[str, str]]:
    raw = pd.read_csv(PROJECT_ROOT / "data" / "raw_customer_interactions.csv")
    raw = raw[raw["intent"].isin(SEED_LABELS)].groupby("intent", group_keys=False).sample(n=per_label, random_state=1)
    return list(zip(raw["query"], raw["intent"]))


def read_splits(artifacts: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_csv(artifacts / "splits" / f"{name}.csv", keep_default_na=False)
            for name in ("train", "val", "test", "test_noisy")}


def test_near_duplicates_share_a_group() -> None:
    texts = [
        "Track order 123.", "track ORDER 98765", "Track my order 123?",  # numbers, casing, one inserted word
        "I need the invoice for <PERSON>.", "I need the invoice for [NAME]",  # placeholders
        "Where is the invoice for Bob",  # one word different from the above
        "Cancel my newsletter subscription please", "Talk to a human agent",
    ]
    groups = near_duplicate_groups(texts)
    assert groups[0] == groups[1] == groups[2]
    assert groups[3] == groups[4]
    assert len({groups[0], groups[3], groups[6], groups[7]}) == 4
    assert skeleton("Track ORDER #12, now!") == "track order 0 now"
    assert texts_with_neighbour(["track order 5"], ["Track my order 7."]).tolist() == [True]
    assert texts_with_neighbour(["talk to a human"], ["Track my order 7."]).tolist() == [False]


def test_splits_are_deterministic_grouped_and_leak_free(db_url: str, settings_env: Path) -> None:
    insert_messages(db_url, seed_rows())
    artifacts = settings_env / "artifacts"
    assert prepare_data.main(["--database-url", db_url]) == 0
    first = {p.name: p.read_bytes() for p in (artifacts / "splits").iterdir()}
    assert prepare_data.main(["--database-url", db_url]) == 0
    assert first == {p.name: p.read_bytes() for p in (artifacts / "splits").iterdir()}

    splits = read_splits(artifacts)
    clean_train = splits["train"]["text"]
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not set(splits[a]["group_id"]) & set(splits[b]["group_id"]), (a, b)
        assert not set(splits[a]["text"]) & set(splits[b]["text"]), (a, b)
    # Re-group everything from scratch: no near-duplicate may cross the train/test border.
    assert not texts_with_neighbour(splits["test"]["text"].tolist(), clean_train.tolist()).any()
    for name in ("train", "val", "test"):
        assert set(splits[name]["label"]) == set(SEED_LABELS)

    report = json.loads((artifacts / "data_report.json").read_text())["splits"]
    assert report["test_with_near_duplicate_in_train"] == 0
    assert report["rows"]["train"] + report["rows"]["val"] + report["rows"]["test"] == 5 * 120
    assert abs(report["rows"]["test"] / 600 - 0.15) < 0.05
    mapping = json.loads((artifacts / "label_mapping.json").read_text())
    assert mapping["id2label"] == {str(i): l for i, l in enumerate(sorted(SEED_LABELS))}
    weights = json.loads((artifacts / "class_weights.json").read_text())
    assert set(weights) == set(SEED_LABELS)
    assert len(json.loads((artifacts / "dataset_fingerprint.json").read_text())["fingerprint"]) == 64

    # The seed's 'other' rows are lower-case and unpunctuated: flagged on raw text, gone once normalised.
    raw_flags = {f["feature"] for f in style_artifacts(splits["train"])["flagged"]}
    assert "first_letter_case" in raw_flags
    after = report["style_artifacts_after_normalisation"]
    assert not {"first_letter_case", "trailing_punctuation"} & set(after["features_flagged"])
    assert "length" in after["note"]


def test_many_labels_and_existing_report_kept(settings_env: Path) -> None:
    url = f"sqlite:///{settings_env / 'many.db'}"
    rng = random.Random(3)
    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=6)) for _ in range(4000)]
    rows = [(" ".join(rng.sample(words, 5)), f"label_{k:02d}") for k in range(80) for _ in range(12)]
    insert_messages(url, rows)
    artifacts = settings_env / "artifacts"
    artifacts.mkdir()
    (artifacts / "data_report.json").write_text(json.dumps({"stage1": {"rows": 1}}))
    assert prepare_data.main(["--database-url", url, "--no-augment"]) == 0
    splits = read_splits(artifacts)
    for name in ("train", "val", "test"):
        assert splits[name]["label"].nunique() == 80, name
    report = json.loads((artifacts / "data_report.json").read_text())
    assert report["stage1"] == {"rows": 1} and report["splits"]["rows"]["val"] >= 80


def test_group_cap_keeps_each_intent_of_a_chained_group() -> None:
    """A near-duplicate group that spans intents is capped per intent: one template's copies share a label."""
    rows = pd.DataFrame({
        "text": [f"can i change my pin {i}" for i in range(30)] + [f"can i change my address {i}" for i in range(5)],
        "label": ["change_pin"] * 30 + ["edit_personal_details"] * 5,
        "group_id": 7, "from_feedback": False,
    })
    kept = prepare_data.cap_per_group(rows, 16, seed=0)
    assert kept["label"].value_counts().to_dict() == {"change_pin": 16, "edit_personal_details": 5}
    assert len(prepare_data.cap_per_group(rows, 0, seed=0)) == 35


def test_chat_noise_makes_the_promised_changes() -> None:
    rng = random.Random(0)
    text = "Can you please tell me the status of your delivery, because I want to know."
    outputs = [chat_noise(text, rng) for _ in range(200)]
    assert all(o != text for o in outputs)
    assert sum(o == o.lower() for o in outputs) > 80  # lower-cased
    assert sum(not o.rstrip().endswith(".") for o in outputs) > 80  # punctuation dropped or changed
    tokens = [set(o.lower().replace(",", " ").split()) for o in outputs]
    for slang in ("u", "ur", "pls", "wanna"):
        assert sum(slang in t for t in tokens) > 20, slang
    assert "plz" in set().union(*tokens) and set(SLANG["because"]) & set().union(*tokens)
    originals = set(text.lower().replace(",", " ").replace(".", " ").split()) | {v for vs in SLANG.values() for v in vs}
    typos = [w for t in tokens for w in t if w.strip(".?!") not in originals]
    assert len(typos) > 50  # keyboard-neighbour swaps, drops, doubles, transpositions


def test_augmentation_touches_only_train(settings_env: Path) -> None:
    url = f"sqlite:///{settings_env / 'aug.db'}"
    rows = seed_rows(60)
    insert_messages(url, rows)
    artifacts = settings_env / "artifacts"
    assert prepare_data.main(["--database-url", url, "--augment-fraction", "0.5", "--group-cap", "0"]) == 0
    originals = {t for t, _ in rows}
    splits = read_splits(artifacts)
    assert set(splits["val"]["text"]) <= originals and set(splits["test"]["text"]) <= originals
    rewritten = ~splits["train"]["text"].isin(originals)
    assert 0.25 < rewritten.mean() < 0.4  # a noisy copy of about half the rows, added beside them
    noisy, test = splits["test_noisy"], splits["test"]
    assert (noisy["label"] == test["label"]).all() and (noisy["group_id"] == test["group_id"]).all()
    assert (noisy["text"] != test["text"]).all()
    assert prepare_data.main(["--database-url", url, "--no-augment", "--group-cap", "0"]) == 0
    assert set(read_splits(artifacts)["train"]["text"]) <= originals


def test_feedback_goes_to_train_only_unless_disabled(db_url: str, settings_env: Path) -> None:
    url = db_url
    rows = seed_rows(40)
    insert_messages(url, rows)
    engine = db.connect(url)
    relabelled = next(t for t, label in rows if label == "review")
    ids = [db.save_feedback(engine, relabelled, "review", "other"),
           db.save_feedback(engine, "my parcel never showed up, sort it out", "other", "queries_related_to_order")]
    db.review_feedback(engine, ids, "approved", "test")  # only approved feedback is trained on (tests/test_feedback.py)
    engine.dispose()
    artifacts = settings_env / "artifacts"
    # The correction of a curated text wins only when the setting says so, and then only in train
    # (no gold set here: test_retrain covers the share of corrections held out from training).
    assert prepare_data.main(["--database-url", url, "--no-augment", "--feedback-overrides-curated",
                              "--gold-share", "0"]) == 0
    splits = read_splits(artifacts)
    train = dict(zip(splits["train"]["text"], splits["train"]["label"]))
    assert train["my parcel never showed up, sort it out"] == "queries_related_to_order"
    assert train[relabelled] == "other"
    for name in ("val", "test"):
        assert relabelled not in set(splits[name]["text"])
    assert prepare_data.main(["--database-url", url, "--no-augment", "--no-feedback"]) == 0
    assert "my parcel never showed up, sort it out" not in set(read_splits(artifacts)["train"]["text"])


@pytest.mark.parametrize(
    "rows, expected",
    [
        ([], "is empty: run `python load_to_mysql.py`"),
        ([(f"message number {w} about things", "only") for w in "abcdefgh"], "at least 2 labels"),
        ([(f"{w} {w * 2} {w * 3} quick brown", "big") for w in "abcdefghij"]
         + [("track my parcel", "tiny"), ("where is the parcel now", "tiny")], "'tiny' (2 rows, 2 distinct groups)"),
    ],
    ids=["empty", "single-label", "too-few-groups"],
)
def test_bad_input_fails_with_one_clear_line(db_url: str, settings_env, capsys, rows, expected) -> None:
    url = db_url
    db.connect(url).dispose()
    if rows:
        insert_messages(url, rows)
    assert run_cli(prepare_data.main, ["--database-url", url]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and expected in errors[0]
    assert not (settings_env / "artifacts" / "splits").exists()


# ---- fixed evaluation files (issue 16) ---------------------------------------------------------------


def fixed_test_case(settings_env: Path, masker) -> tuple[str, Path, list[tuple[str, str]], dict]:
    """A database of seed rows and a test file (columns text,category) that overlaps it on purpose."""
    from intent_pipeline.masking import clean_text

    url = f"sqlite:///{settings_env / 'fixed.db'}"
    rows = seed_rows(60)
    insert_messages(url, rows)
    unchanged = [(t, l) for t, l in rows if masker.mask(clean_text(t)).text == t and len(t.split()) >= 4]
    same, near = unchanged[0], next(r for r in unchanged[1:] if r[1] != unchanged[0][1])
    labelled = [
        same,  # the very text of a training candidate
        (near[0].rstrip(".?!") + " quickly", near[1]),  # one word added: a near-duplicate
        ("Hi, this is John Smith, my invoice never arrived by mail", "request_invoice"),
        ("jane.doe@example.co.uk wants to talk with someone from your team", "contact_support"),
        ("I would love to write a review about the sofa I bought", "review"),
        ("what a lovely sunny morning it is", "other"),
        ("where are my two parcels, it has been weeks", "queries_related_to_order"),
    ]
    path = settings_env / "official_test.csv"
    pd.DataFrame(labelled + [("Is this even labelled", "")], columns=["text", "category"]).to_csv(path, index=False)
    return url, path, labelled, {"same": same[0], "near": near[0]}


def test_fixed_test_file_is_the_test_split_masked_and_kept_out_of_training(settings_env: Path, masker) -> None:
    from intent_pipeline.masking import clean_text

    url, path, labelled, overlap = fixed_test_case(settings_env, masker)
    artifacts = settings_env / "artifacts"
    assert prepare_data.main(["--database-url", url, "--test-file", str(path), "--label-column", "category"]) == 0
    splits = read_splits(artifacts)

    expected = [r.text for r in masker.mask_batch([clean_text(t) for t, _ in labelled])]
    assert splits["test"]["text"].tolist() == expected  # every labelled row, in file order, masked as stage 1 does
    assert splits["test"]["label"].tolist() == [label for _, label in labelled]
    test_csv = (artifacts / "splits" / "test.csv").read_text() + (artifacts / "splits" / "test_noisy.csv").read_text()
    assert "John Smith" not in test_csv and "jane.doe" not in test_csv
    assert "[PERSON]" in splits["test"]["text"].iloc[2] and "[EMAIL]" in splits["test"]["text"].iloc[3]
    assert len(splits["test_noisy"]) == len(labelled)

    trained_on = splits["train"]["text"].tolist() + splits["val"]["text"].tolist()
    assert overlap["same"] not in trained_on and overlap["near"] not in trained_on
    assert not texts_with_neighbour(trained_on, expected).any()  # no near-duplicate of a test row left
    assert len(splits["val"]) > 0 and set(splits["val"]["label"]) <= set(splits["train"]["label"])

    report = json.loads((artifacts / "data_report.json").read_text())["splits"]
    assert report["fixed"]["dropped_from_training"]["same_text"] == 1
    assert report["fixed"]["dropped_from_training"]["near_duplicate"] >= 1
    assert report["test_with_near_duplicate_in_train"] == 0
    source = json.loads((artifacts / "dataset_fingerprint.json").read_text())["test_source"]
    assert source["kind"] == "file" and source["rows"] == len(labelled) and source["unlabeled_rows"] == 1
    assert source["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert report["sources"]["val"] == {"kind": "split", "ratio": 0.1}


def test_fixed_val_and_test_files_leave_every_other_row_to_training(settings_env: Path, masker, monkeypatch) -> None:
    url, path, labelled, _ = fixed_test_case(settings_env, masker)
    val = settings_env / "val.jsonl"  # another format, same column names (settings this time)
    val.write_text("".join(json.dumps({"text": t, "category": l}) + "\n" for t, l in [
        ("please put me through to a real person", "contact_support"), ("thanks a lot, bye", "other")]))
    monkeypatch.setenv("TEST_FILE", str(path))
    monkeypatch.setenv("VAL_FILE", str(val))
    monkeypatch.setenv("LABEL_COLUMN", "category")
    assert prepare_data.main(["--database-url", url, "--no-augment", "--group-cap", "0"]) == 0
    splits = read_splits(settings_env / "artifacts")
    assert splits["val"]["text"].tolist() == ["please put me through to a real person", "thanks a lot, bye"]
    assert len(splits["test"]) == len(labelled)
    report = json.loads((settings_env / "artifacts" / "data_report.json").read_text())["splits"]
    dropped = sum(report["fixed"]["dropped_from_training"].values())
    assert len(splits["train"]) == 5 * 60 - dropped  # nothing drawn: all the rest trains


@pytest.mark.parametrize("content, flags, expected", [
    ("text,category\nwhere is my refund for the toaster,refunds\nhello there friend,other\n", ["--label-column", "category"],
     "has label(s) the training data does not have: 'refunds' (1 rows)"),
    ("text,category\nhello,other\n", [], "has no label column: found text, category"),
    ("", [], "is empty"),
], ids=["unknown-label", "undetected-column", "empty"])
def test_bad_fixed_files_fail_with_one_line_and_write_nothing(settings_env: Path, masker, capsys, content, flags,
                                                              expected) -> None:
    url = f"sqlite:///{settings_env / 'bad.db'}"
    insert_messages(url, seed_rows(30))
    path = settings_env / "test.csv"
    path.write_text(content)
    assert run_cli(prepare_data.main, ["--database-url", url, "--test-file", str(path), *flags]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and expected in errors[0], errors
    assert not (settings_env / "artifacts" / "splits").exists()
    assert not (settings_env / "artifacts" / "dataset_fingerprint.json").exists()


def test_missing_or_unsupported_fixed_file_fails(settings_env: Path, capsys) -> None:
    url = f"sqlite:///{settings_env / 'bad.db'}"
    insert_messages(url, seed_rows(30))
    assert run_cli(prepare_data.main, ["--database-url", url, "--val-file", str(settings_env / "nope.csv")]) == 1
    assert f"error: val file not found: {settings_env / 'nope.csv'} (set VAL_FILE or pass --val-file)" in capsys.readouterr().err
    (settings_env / "test.xlsx").write_bytes(b"PK")
    assert run_cli(prepare_data.main, ["--database-url", url, "--test-file", str(settings_env / "test.xlsx")]) == 1
    assert "supported input files are .csv, .tsv, .jsonl, .ndjson, .parquet" in capsys.readouterr().err
    assert not (settings_env / "artifacts" / "splits").exists()


def test_frozen_test_of_a_fixed_file_stays_the_test_split(settings_env: Path, masker, capsys) -> None:
    """retrain.py freezes stage 3's test split: with TEST_FILE that is the file's rows, kept even if the file changes."""
    from intent_pipeline import holdout

    url, path, labelled, overlap = fixed_test_case(settings_env, masker)
    artifacts = settings_env / "artifacts"
    base = ["--database-url", url, "--label-column", "category", "--test-file", str(path)]
    assert prepare_data.main(base) == 0
    prepared = json.loads((artifacts / "dataset_fingerprint.json").read_text())
    frozen = holdout.freeze_test(artifacts, prepared["fingerprint"], prepared["test_source"])
    first_test = (artifacts / "splits" / "test.csv").read_text()

    capsys.readouterr()
    assert prepare_data.main([*base, "--frozen-test", str(frozen)]) == 0
    assert (artifacts / "splits" / "test.csv").read_text() == first_test
    assert "is not what the frozen test split" not in capsys.readouterr().err
    source = json.loads((artifacts / "dataset_fingerprint.json").read_text())["test_source"]
    assert source["kind"] == "frozen" and source["frozen_from"]["sha256"] == prepared["test_source"]["sha256"]
    trained_on = set(read_splits(artifacts)["train"]["text"]) | set(read_splits(artifacts)["val"]["text"])
    assert overlap["same"] not in trained_on and overlap["near"] not in trained_on

    with open(path, "a", encoding="utf-8") as handle:
        handle.write("a brand new test message about refunds,other\n")
    assert prepare_data.main([*base, "--frozen-test", str(frozen)]) == 0
    assert (artifacts / "splits" / "test.csv").read_text() == first_test  # champion and challenger: same rows
    assert "is not what the frozen test split" in capsys.readouterr().err


def test_exact_leak_check_keeps_near_duplicates_of_a_fixed_test_file(settings_env: Path, masker) -> None:
    url, path, _, overlap = fixed_test_case(settings_env, masker)
    artifacts = settings_env / "artifacts"
    argv = ["--database-url", url, "--test-file", str(path), "--label-column", "category", "--fixed-leak-check", "exact"]
    assert prepare_data.main(argv) == 0
    splits = read_splits(artifacts)
    trained_on = splits["train"]["text"].tolist() + splits["val"]["text"].tolist()
    assert overlap["same"] not in trained_on and overlap["near"] in trained_on  # identical out, near-duplicate kept
    report = json.loads((artifacts / "data_report.json").read_text())["splits"]
    assert report["fixed"]["dropped_from_training"] == {"same_text": 1, "near_duplicate": 0}


def test_beside_a_fixed_test_set_validation_takes_val_ratio_of_the_rest() -> None:
    from intent_pipeline import holdout

    rng = np.random.default_rng(0)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    rows = pd.DataFrame({"text": [" ".join("".join(rng.choice(letters, 7)) for _ in range(6)) for _ in range(400)],
                         "label": ["a", "b"] * 200}).assign(from_feedback=False)
    fixed = pd.DataFrame({"text": ["zz yy xx", "qq rr ss"], "label": ["a", "b"]})
    split, _ = holdout.split_around_fixed(rows, 0.1, 0.15, seed=0, test=fixed)
    # The fixed test is not carved from these rows, so TEST_RATIO takes nothing from training.
    assert (split["split"] == "val").sum() == 40 and (split["split"] == "train").sum() == 360
