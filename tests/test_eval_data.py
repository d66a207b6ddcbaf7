"""Data tests of the committed evaluation sets: the hand-written off-topic set and the BANKING77 benchmark.

These files are read by evaluation and benchmarks only; the tests pin their shape, their privacy and
their separation from the seed, so that an edit cannot quietly turn them into training data or leak
personal values.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SEED = PROJECT_ROOT / "data" / "raw_customer_interactions.csv"
OFF_TOPIC = PROJECT_ROOT / "data" / "eval" / "off_topic.csv"
BANKING77 = PROJECT_ROOT / "data" / "benchmarks" / "banking77"

EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
# Seven or more digits, optionally split by spaces, dots, dashes or brackets: a phone or an account number.
PHONE_LIKE = re.compile(r"(?:\+?\d[\s().-]?){7,}")
URL = re.compile(r"https?://|www\.", re.IGNORECASE)

# Upstream files, byte for byte (PolyAI-LDN/task-specific-datasets, banking_data/, commit 57ec275d).
BANKING77_FILES = {
    "train.csv": ("b06e26ac675513959a63135f11b94ea7786ed02da65db93a5650d8838cbc664b", 10003),
    "test.csv": ("d12d6e3bc4c3103966ae786dc435913c0c563dfa328f5a3646d0e62cfeeb474d", 3080),
}


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _loose(text: str) -> str:
    """Case, punctuation and spacing removed: "Tell me a joke!" and "tell me a joke" are one message."""
    return " ".join(re.findall(r"\w+", text.lower()))


@pytest.fixture(scope="module")
def off_topic() -> list[dict[str, str]]:
    columns, rows = _read(OFF_TOPIC)
    assert columns == ["text", "domain"]
    return rows


def test_off_topic_size_and_domains(off_topic: list[dict[str, str]]) -> None:
    texts = [row["text"] for row in off_topic]
    assert len(off_topic) >= 300
    assert all(text.strip() and text == text.strip() for text in texts)
    assert len({text.lower() for text in texts}) == len(texts), "case-insensitive duplicates"
    domains = Counter(row["domain"] for row in off_topic)
    assert len(domains) >= 15, domains
    assert min(domains.values()) >= 12, domains
    assert all(re.fullmatch(r"[a-z][a-z_]*", domain) for domain in domains)


def test_off_topic_holds_no_contact_details(off_topic: list[dict[str, str]]) -> None:
    for pattern in (EMAIL, PHONE_LIKE, URL):
        hits = [row["text"] for row in off_topic if pattern.search(row["text"])]
        assert hits == [], f"{pattern.pattern}: {hits}"


def test_the_patterns_catch_contact_details() -> None:
    """The privacy test above can fail: its patterns match the values they are meant to keep out."""
    assert EMAIL.search("write to jo.doe+x@mail.example.org")
    assert PHONE_LIKE.search("call me on +44 20 7946 0958") and PHONE_LIKE.search("(555) 010-4477")
    assert URL.search("see https://example.org") and URL.search("WWW.example.org")
    assert not PHONE_LIKE.search("whats 17 times 23") and not PHONE_LIKE.search("simplify (x^2 - 9)/(x - 3)")


def test_off_topic_does_not_overlap_the_seed(off_topic: list[dict[str, str]]) -> None:
    _, seed = _read(SEED)
    seed_exact = {row["query"] for row in seed}
    seed_lower = {row["query"].strip().lower() for row in seed}
    seed_loose = {_loose(row["query"]) for row in seed} - {""}
    texts = [row["text"] for row in off_topic]
    assert [t for t in texts if t in seed_exact] == []
    assert [t for t in texts if t.strip().lower() in seed_lower] == []
    assert [t for t in texts if _loose(t) in seed_loose] == []


@pytest.mark.parametrize("name", sorted(BANKING77_FILES))
def test_banking77_is_the_official_split(name: str) -> None:
    path = BANKING77 / name
    digest, n_rows = BANKING77_FILES[name]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, f"{name} differs from the upstream file"
    columns, rows = _read(path)
    assert columns == ["text", "category"]
    assert len(rows) == n_rows
    assert all(row["text"].strip() for row in rows)
    # Upstream spells two labels oddly ("Refund_not_showing_up", "reverted_card_payment?"); kept as published.
    assert all(row["category"].strip() for row in rows)
    assert len({row["category"] for row in rows}) == 77


def test_banking77_splits_share_their_labels() -> None:
    labels = [{row["category"] for row in _read(BANKING77 / name)[1]} for name in ("train.csv", "test.csv")]
    assert labels[0] == labels[1]
    assert (BANKING77 / "LICENSE").read_text(encoding="utf-8").startswith("Attribution 4.0 International")
