"""Stage 1 with the real spaCy + Presidio masker: PII types, false positives, inputs, bad inputs, atomicity."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import ingest_clean
from intent_pipeline import masking
from intent_pipeline.cli import run_cli
from intent_pipeline.masking import clean_text
from intent_pipeline.pii_digests import find_leaked_pii

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# (raw value, placeholder, sentence): every supported type, planted in a chat-like message.
PLANTED = [
    ("John Smith", "[PERSON]", "Hi, this is John Smith, where is my parcel?"),
    ("Boston", "[LOCATION]", "I moved to Boston last week, update my address."),
    ("jane.doe@example.co.uk", "[EMAIL]", "Send the receipt to jane.doe@example.co.uk please."),
    ("(212) 555-0142", "[PHONE]", "Call me back at (212) 555-0142 today."),
    ("4111 1111 1111 1111", "[CREDIT_CARD]", "Charge card 4111 1111 1111 1111 again."),
    ("DE89 3704 0044 0532 0130 00", "[IBAN]", "Refund to IBAN DE89 3704 0044 0532 0130 00 thanks."),
    ("536-22-8741", "[US_SSN]", "My SSN is 536-22-8741 for the tax form."),
    ("192.168.14.20", "[IP_ADDRESS]", "Login fails from 192.168.14.20 every time."),
    ("https://shop.example.com/track?id=77", "[URL]", "The page https://shop.example.com/track?id=77 is broken."),
    ("9511291", "[ORDER_ID]", "Is it possible to see the eta of the purchase order# 9511291?"),
    ("INV-3583557", "[INVOICE_ID]", "Show me invoice INV-3583557."),
    ("85632", "[BILL_ID]", "Get bill# 85632."),
]

# Seed-style intent sentences that must come out unchanged (no false positives).
ORDINARY = [
    "Open pro account for wife.",
    "Switch to the premium account.",
    "Cancel Premium subscription.",
    "Delete my standard account.",
    "I paid $1234.56 on 2023-10-12 for orders over$ 99?",
    "Can you share your store business hours today?",
    "Help canceling my corporate newsletter subscription.",
    "what is the theory of relativity?",
]


@pytest.mark.parametrize("raw, placeholder, sentence", PLANTED, ids=[p[1] for p in PLANTED])
def test_planted_pii_is_masked(masker, raw: str, placeholder: str, sentence: str) -> None:
    result = masker.mask(clean_text(sentence))
    assert raw not in result.text
    assert placeholder in result.text


def test_ordinary_intent_sentences_stay_unmasked(masker) -> None:
    assert [r.text for r in masker.mask_batch(ORDINARY)] == ORDINARY


def test_us_phone_is_a_phone_not_a_uk_nhs_number(masker) -> None:
    result = masker.mask("my number is 2125550142")
    assert result.text == "my number is [PHONE]"
    assert [e.entity_type for e in result.entities] == ["PHONE_NUMBER"]


def test_a_name_found_once_is_masked_everywhere_in_the_batch(masker) -> None:
    # Seed rows: spaCy tags "Jones" in the first and misses "Ashley Jones" in the second.
    texts = ["Get bill from mr. Jones.", "I need assistance to download the invoices from Ashley Jones."]
    masked = [r.text for r in masker.mask_batch(texts)]
    assert masked[0] == "Get bill from mr. [PERSON]."
    assert "Jones" not in masked[1] and "[PERSON]" in masked[1]


def test_ids_keep_their_keyword_and_beat_card_and_name_matches(masker) -> None:
    # 113542617735902 passes the Luhn check and "bill INV-..." looks like a name to spaCy.
    assert masker.mask("Cancel purchase 113542617735902.").text == "Cancel purchase [ORDER_ID]."
    assert masker.mask("Check my bill INV-7681910.").text == "Check my bill [BILL_ID]."


def test_clean_text_normalises_unicode_controls_and_whitespace() -> None:
    assert clean_text("  Ｈｅｌｌｏ\u200b wor\u00adld\tand\r\nbye\x00 ") == "Hello world and bye"
    assert clean_text(None) == ""


def test_parallel_batch_matches_serial(masker) -> None:
    texts = [f"Order {n} for Maria Garcia: call 212-555-{n:04d}" for n in range(1000, 1040)] * 2
    serial = masker.mask_batch(texts)
    parallel = masker.mask_batch(texts, n_process=2, chunk_size=10)
    assert [r.text for r in parallel] == [r.text for r in serial]
    assert all("Maria" not in r.text and "555" not in r.text for r in parallel)


def test_email_check_makes_no_network_attempt(masker, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list = []
    monkeypatch.setattr(socket.socket, "connect", lambda self, addr: attempts.append(addr))
    masking.offline_tld_extractor.cache_clear()  # the next extractor is built with the guard on
    assert masker.mask("write to ops@mail.example.org").text == "write to [EMAIL]"
    assert attempts == []


# ---- the stage script on small files ---------------------------------------------------------------


def write_raw(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def run_stage(*extra: str) -> int:
    return run_cli(ingest_clean.main, ["--no-progress", "--n-process", "1", *extra])


@pytest.mark.parametrize("text_col, label_col", [("message", "intent"), ("utterance", "label"), (" Query ", "Intent")])
def test_column_variants_and_label_normalisation(settings_env: Path, masker, text_col: str, label_col: str) -> None:
    write_raw(settings_env / "raw.csv", [text_col, label_col], [
        ["Where is my order?", " Check_Order "],
        ["I want my money back", "REFUND"],
        ["Where is my order?", "check_order"],  # exact duplicate once labels are normalised
    ])
    assert run_stage() == 0
    out = pd.read_csv(settings_env / "cleaned.csv")
    assert list(out.columns) == ["text", "label", "text_hash", "source"]
    assert sorted(out["label"]) == ["check_order", "refund"]
    assert all(out["text_hash"] == out["text"].map(lambda t: hashlib.sha256(t.encode()).hexdigest()))


def test_conflicting_labels_and_duplicates_are_reported(settings_env: Path, masker) -> None:
    write_raw(settings_env / "raw.csv", ["text", "label"], [
        ["Get bill# 85632.", "request_bill"],
        ["Get bill# 12588.", "request_bill"],  # identical to the first once the id is masked
        ["help", "other"],
        ["help", "contact_support"],
        ["Cancel my order.", "cancel"],
    ])
    assert run_stage() == 0
    report = json.loads((settings_env / "artifacts" / "data_report.json").read_text())
    assert report["conflicts"]["texts"] == 1 and report["conflicts"]["rows_dropped"] == 2
    assert report["duplicates"]["identical_after_masking_only"] == 1
    assert report["pii"]["counts"] == {"BILL_ID": 2}
    out = pd.read_csv(settings_env / "cleaned.csv")
    assert sorted(out["text"]) == ["Cancel my order.", "Get bill# [BILL_ID]."]
    leaks = find_leaked_pii([settings_env / "cleaned.csv", "old bill 85632 here"], settings_env / "artifacts" / "pii_values.json")
    assert leaks == ["BILL_ID"]  # the string leaks the raw id, the cleaned file does not


def _error_of(capsys: pytest.CaptureFixture) -> str:
    assert run_stage() == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize("content, expected", [
    (b"", "is empty"),
    (b"text,label\n", "no usable rows"),
    (b"foo,bar\nhello,x\n", "no text column"),
    (b"text,category\nhello,x\n", "no label column"),
    (b"t\xe9xt,label\nhello,x\n", "not UTF-8"),
    (b"text,label\n\"unterminated,x\nhello,y\n", "not a readable CSV"),
], ids=["empty", "header-only", "no-text-column", "no-label-column", "non-utf8-header", "broken-quote"])
def test_bad_input_files_fail_with_one_line(settings_env: Path, capsys, content: bytes, expected: str) -> None:
    (settings_env / "raw.csv").write_bytes(content)
    (settings_env / "cleaned.csv").write_text("text,label,text_hash\nkeep me,x,0\n")
    assert expected in _error_of(capsys)
    assert (settings_env / "cleaned.csv").read_text() == "text,label,text_hash\nkeep me,x,0\n"


def test_missing_file_exits_non_zero_from_the_command_line(settings_env: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "ingest_clean.py", "--input", str(settings_env / "nope.csv")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"error: input file not found: {settings_env / 'nope.csv'} "
                                                "(set RAW_DATA_FILE or pass --input)"]


def test_bad_rows_are_skipped_and_counted(settings_env: Path, masker) -> None:
    huge = "a" * 100_000
    (settings_env / "raw.csv").write_bytes(
        b"text,label\n"
        b"Where is my order?,check_order\n"
        b"Caf\xe9 order broken,check_order\n"  # latin-1 byte in one row
        b"too,many,fields,here\n"
        b",refund\n"
        b"No label here,\n"
        b"Too few fields\n"
        + f"{huge},refund\n".encode()
        + b"I want my money back,refund\n"
    )
    assert run_stage() == 0
    report = json.loads((settings_env / "artifacts" / "data_report.json").read_text())
    assert report["input"]["skipped"] == {
        "empty_text": 1, "malformed": 1, "missing_label": 2, "non_utf8": 1, "too_long": 1,
    }
    assert report["input"]["rows_written"] == 2
    assert huge not in (settings_env / "cleaned.csv").read_text()


def test_crash_while_writing_keeps_the_previous_output(settings_env: Path, masker, monkeypatch) -> None:
    write_raw(settings_env / "raw.csv", ["text", "label"], [["Where is my order?", "check_order"]])
    previous = "text,label,text_hash\nkeep me,x,0\n"
    (settings_env / "cleaned.csv").write_text(previous)

    def half_write(self, handle, **kwargs):
        handle.write("text,label\npartial")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_write)
    with pytest.raises(OSError):
        ingest_clean.main(["--no-progress"])
    assert (settings_env / "cleaned.csv").read_text() == previous
    assert [p.name for p in settings_env.iterdir() if p.name.endswith(".tmp")] == []


# ---- names that spaCy's small model labels ORG or misses (context names) -------------------------

SEED = PROJECT_ROOT / "data" / "raw_customer_interactions.csv"
NAME_PAIR = re.compile(r"\b[A-Z][a-z]+ [A-Z][a-z]+\b")


def test_every_seed_name_after_from_or_for_is_masked(masker) -> None:
    # Independent of the masker's rules: any capitalised word pair left in these rows is a name.
    seed = pd.read_csv(SEED)
    rows = seed["query"][seed["query"].str.contains(r"\b(?:from|for) [A-Z][a-z]+ [A-Z][a-z]+", regex=True)]
    assert len(rows) > 500
    masked = [r.text for r in masker.mask_batch([clean_text(t) for t in rows])]
    survivors = [t for t in masked if NAME_PAIR.search(t) or "Ashley" in t]
    assert survivors == []
    # spaCy calls a few of these names places (GPE); masked either way.
    assert all("[PERSON]" in t or "[LOCATION]" in t for t in masked)


def test_a_repeated_name_takes_in_the_adjacent_first_name(masker) -> None:
    texts = ["Get bill from mr. Jones.", "Ashley Jones called about the invoice.", "bill from Justin Edwards"]
    masked = [r.text for r in masker.mask_batch(texts)]
    assert masked == ["Get bill from mr. [PERSON].", "[PERSON] called about the invoice.", "bill from [PERSON]"]
    assert masker.mask("bill from Justin Edwards").text == "bill from [PERSON]"


def test_title_case_and_product_words_are_not_context_names(masker) -> None:
    for text in ["How To Track My Package From Amazon", "Switch to Premium Account.", "Help with Customer Service"]:
        assert masker.mask(text).text == text


def test_atomic_writes_get_umask_mode_or_keep_the_old_mode(tmp_path: Path) -> None:
    import os

    from intent_pipeline.files import atomic_path, write_text_atomic

    old_umask = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "new.txt", "x")  # mkstemp alone would leave 0600
        with atomic_path(tmp_path / "lib.bin") as tmp:
            tmp.write_bytes(b"x")
        (tmp_path / "kept.txt").write_text("old")
        os.chmod(tmp_path / "kept.txt", 0o640)
        write_text_atomic(tmp_path / "kept.txt", "new")
    finally:
        os.umask(old_umask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"new.txt": 0o644, "lib.bin": 0o644, "kept.txt": 0o640}


def test_a_stray_quote_in_a_row_does_not_stop_the_file(settings_env: Path, masker) -> None:
    (settings_env / "raw.csv").write_bytes(
        b'label,text\ncomplaint,My 5" screen broke\nrefund,"I want my money back"\ncomplaint,"bad " quote",x\n'
        b"check_order,Where is my order?\nreview,Love my 10\" tablet\n"
    )
    assert run_stage() == 0
    out = pd.read_csv(settings_env / "cleaned.csv")
    assert sorted(out["text"]) == ['I want my money back', 'Love my 10" tablet', 'My 5" screen broke', "Where is my order?"]
    report = json.loads((settings_env / "artifacts" / "data_report.json").read_text())
    assert report["input"]["skipped"] == {"malformed": 1} and report["input"]["rows_read"] == 5


def test_cleaned_csv_is_written_before_the_pii_digests(settings_env: Path, masker, monkeypatch) -> None:
    write_raw(settings_env / "raw.csv", ["text", "label"], [["Get bill# 85632.", "request_bill"]])
    assert run_stage() == 0
    digests = settings_env / "artifacts" / "pii_values.json"
    assert digests.stat().st_mode & 0o777 == 0o600  # salted digests of raw PII: owner only
    before = digests.read_text()
    write_raw(settings_env / "raw.csv", ["text", "label"], [["Get bill# 12345.", "request_bill"]])

    def failing_csv(frame, path):
        raise OSError("disk full")

    monkeypatch.setattr(ingest_clean, "write_csv_atomic", failing_csv)
    with pytest.raises(OSError):
        ingest_clean.main(["--no-progress", "--n-process", "1"])
    assert digests.read_text() == before  # still the digests of the cleaned file that is there


def test_preprocess_command_line_masks_its_arguments(masker, capsys) -> None:
    import preprocess

    assert run_cli(preprocess.main, ["write to  ops@mail.example.org"]) == 0
    assert capsys.readouterr().out == "write to [EMAIL]\n"


# ---- input formats, named columns, unlabeled rows (issue 16) ---------------------------------------

# (body, category): one message with PII, one without a label (empty, or null in JSON/Parquet).
EXPORT_ROWS = [
    ("Hi, this is John Smith, where is my parcel?", "Track_Order"),
    ("I want my money back for order 9511291", "refund"),
    ("Can I pay with a voucher?", None),
    ("Cancel my subscription please", "cancel"),
]


def write_export(path: Path) -> Path:
    """EXPORT_ROWS in `path`'s format (by its extension), with the columns body, category and ticket_id."""
    frame = pd.DataFrame(EXPORT_ROWS, columns=["body", "category"]).assign(ticket_id=range(len(EXPORT_ROWS)))
    suffix = path.suffix
    if suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif suffix in (".jsonl", ".ndjson"):
        path.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict(orient="records")), encoding="utf-8")
    else:
        frame.fillna("").to_csv(path, index=False, sep="\t" if suffix == ".tsv" else ",")
    return path


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".ndjson", ".parquet"])
def test_every_format_with_named_columns(settings_env: Path, masker, suffix: str) -> None:
    raw = write_export(settings_env / f"export{suffix}")
    assert run_stage("--input", str(raw), "--text-column", "body", "--label-column", "Category") == 0
    out = pd.read_csv(settings_env / "cleaned.csv", keep_default_na=False)
    assert out["label"].tolist() == ["track_order", "refund", "cancel"]  # the unlabeled row is left out
    assert out["text"].tolist() == ["Hi, this is [PERSON], where is my parcel?",
                                    "I want my money back for order [ORDER_ID]", "Cancel my subscription please"]
    assert set(out["source"]) == {raw.name}
    report = json.loads((settings_env / "artifacts" / "data_report.json").read_text())
    assert report["input"]["rows_read"] == 4 and report["input"]["rows_written"] == 3
    assert report["input"]["unlabeled_rows"] == 1 and report["input"]["skipped"] == {"missing_label": 1}


def test_column_settings_are_the_default_and_text_category_works(settings_env: Path, masker, monkeypatch) -> None:
    (settings_env / "raw.csv").write_text("text,category\nWhere is my order?,check_order\nRefund me now,refund\n,x\n")
    monkeypatch.setenv("LABEL_COLUMN", "category")
    assert run_stage() == 0
    out = pd.read_csv(settings_env / "cleaned.csv")
    assert out["label"].tolist() == ["check_order", "refund"]


def test_unlabeled_rows_are_logged_and_summarised(settings_env: Path, masker, capsys) -> None:
    raw = write_export(settings_env / "export.jsonl")
    assert run_stage("--input", str(raw), "--text-column", "body", "--label-column", "category") == 0
    captured = capsys.readouterr()
    assert "WARNING" in captured.err and "1 of 4 rows have no label: left out" in captured.err
    assert "unlabeled rows (no label, left out of training): 1" in captured.out


@pytest.mark.parametrize("name, content, flags, expected", [
    ("raw.xlsx", b"PK\x03\x04", [], "has '.xlsx': supported input files are .csv, .tsv, .jsonl, .ndjson, .parquet"),
    ("raw", b"text,label\nhi,x\n", [], "has no extension: supported input files are"),
    ("raw.csv", b"text,label\nhi,x\n", ["--text-column", "body"], "has no column 'body' (--text-column / TEXT_COLUMN)"),
    ("raw.tsv", b"body\tcategory\nhi\tx\n", ["--text-column", "body", "--label-column", "intent"],
     "has no column 'intent' (--label-column / LABEL_COLUMN): found body, category"),
    ("raw.csv", b"text,category\nhi,x\n", [], "no label column: found text, category; expected one of label, intent; "
     "or name it with --label-column"),
    ("raw.jsonl", b"[1, 2]\nnot json\n", [], "is not a readable JSON Lines file"),
    ("raw.jsonl", b'{"text": "hi", "label": null}\n', [], "no usable rows"),
    ("raw.parquet", b"this is not parquet at all", [], "is not a readable Parquet file"),
    ("raw.parquet", b"", [], "is empty"),
    ("raw.ndjson", b"\n\n", [], "is empty"),
], ids=["xlsx", "no-extension", "missing-text-column", "missing-label-column", "undetected-label", "jsonl-not-objects",
        "all-unlabeled", "broken-parquet", "empty-parquet", "blank-ndjson"])
def test_bad_files_of_any_format_fail_with_one_line_and_write_nothing(
        settings_env: Path, capsys, name: str, content: bytes, flags: list[str], expected: str) -> None:
    (settings_env / name).write_bytes(content)
    assert run_stage("--input", str(settings_env / name), *flags) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert expected in err
    assert not (settings_env / "cleaned.csv").exists() and not (settings_env / "artifacts").exists()


def test_parquet_without_the_named_column_fails_from_the_command_line(settings_env: Path) -> None:
    raw = write_export(settings_env / "export.parquet")
    proc = subprocess.run(
        [sys.executable, "ingest_clean.py", "--input", str(raw), "--text-column", "message"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: {raw} has no column 'message' (--text-column / TEXT_COLUMN): found body, category, ticket_id"]
    assert not (settings_env / "cleaned.csv").exists()
