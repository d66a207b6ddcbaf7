"""The declared text steps: Python and the tokenizer agree, the steps are idempotent, and the released
tokenizer carries them without changing the token ids of already-normalised text.

Real `tokenizers` and transformers tokenizers of the bundled base model; no model weights needed.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

import config
from intent_pipeline import text
from intent_pipeline.text import CLEAN_STEPS, MODEL_STEPS, clean_text, normalize_for_model
from intent_pipeline.tokenizer_normalizer import (
    PORTABLE_TOKENIZER_CLASS,
    folder_normalizes_raw_text,
    has_model_normalizer,
    model_normalizer,
    save_tokenizer,
    with_model_normalizer,
)

# Characters a chat message may carry, weighted towards the ones the steps act on.
ALPHABET = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" * 3
    + " " * 20 + text.WHITESPACE + text.EDGE_PUNCTUATION * 3
    + "()[]{}<>@#$%&*+=/\\|~^_“”‘’«»¿¡·•°€£¥©®™"
    + "\u200b\u200c\u200d\u2060\ufeff\u00ad\u2066\u2069\ue000\U000f0000\x00\x07\x1b\x7f"  # format, private, control
    + "àáâãäåçèéêëìíîïñòóôõöøùúûüýÿÀÉÎÕÜßæœÆŒ" + "e\u0301a\u0308n\u0303"  # composed and combining accents
    + "ＡＢＣｘｙｚ０１２！？，．" + "ﬁﬂ①②Ⅻ㎏™½" + "ΑΒΓΣσςΔαβγ" + "Привет" + "你好世界" + "مرحبا" + "İıŉǅ"
    + "🙂😡📦👍🏽❤️🇬🇧🫨"
)


def corpus(n: int = 4000, seed: int = 16) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 24))) for _ in range(n)]


@pytest.fixture(scope="module")
def base_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(config.get_settings().base_model)


@pytest.fixture(scope="module")
def release_tokenizer(base_tokenizer):
    return with_model_normalizer(base_tokenizer, max_length=32)


def test_whitespace_is_exactly_what_python_calls_space() -> None:
    assert set(text.WHITESPACE) == {chr(c) for c in range(0x110000) if chr(c).isspace()}


def test_python_and_tokenizers_steps_agree() -> None:
    from tokenizers import normalizers

    clean = normalizers.Sequence([step.tokenizers_normalizer() for step in CLEAN_STEPS])
    model = model_normalizer()  # MODEL_STEPS only, no base normalizer
    texts = corpus()
    assert [clean.normalize_str(t) for t in texts] == [clean_text(t) for t in texts]
    assert [model.normalize_str(t) for t in texts] == [normalize_for_model(t) for t in texts]
    for step in MODEL_STEPS:  # step by step too (on what the step sees in the list), so a failure names it
        rust = normalizers.Sequence([step.tokenizers_normalizer()])
        assert [rust.normalize_str(t) for t in texts] == [step.apply(t) for t in texts], step.name
        texts = [step.apply(t) for t in texts]


@pytest.mark.parametrize("raw, expected", [
    ('  "Where is MY order??" ', "where is my order"),
    ("\u200b\u00a0Ｈｅｌｌｏ\tthere…", "hello there"),
    ("- refund -", "refund"),
    ("line\nbreak\u2028and\r\ntabs\t\there", "line break and tabs here"),
    ("ΟΔΟΣ", "οδοσ"),  # per character, as the tokenizer lower-cases (no final-sigma rule)
    ("?!...", ""),
])
def test_normalize_for_model_examples(raw: str, expected: str) -> None:
    assert normalize_for_model(raw) == expected
    assert model_normalizer().normalize_str(raw) == expected


def test_the_steps_are_idempotent(release_tokenizer) -> None:
    """The app normalises in Python, then the tokenizer normalises again: that must change nothing."""
    full = release_tokenizer.backend_tokenizer.normalizer  # MODEL_STEPS + the base BertNormalizer
    for raw in corpus():
        once = normalize_for_model(raw)
        assert normalize_for_model(once) == once
        assert clean_text(clean_text(raw)) == clean_text(raw)
        assert full.normalize_str(once) == full.normalize_str(raw)


def test_token_ids_of_normalised_text_do_not_change(base_tokenizer, release_tokenizer) -> None:
    texts = [normalize_for_model(t) for t in corpus(600)] + ["café résumé naïve", "where is my order", "你好"]
    for i in range(0, len(texts), 50):
        batch = texts[i:i + 50]
        before = base_tokenizer(batch, padding=True, truncation=True, max_length=32)
        after = release_tokenizer(batch, padding=True, truncation=True, max_length=32)
        assert dict(after) == dict(before)


def test_raw_text_through_the_release_tokenizer_equals_the_python_path(base_tokenizer, release_tokenizer) -> None:
    texts = corpus(600)
    assert release_tokenizer(texts)["input_ids"] == base_tokenizer([normalize_for_model(t) for t in texts])["input_ids"]


def test_attaching_twice_changes_nothing(base_tokenizer, release_tokenizer) -> None:
    assert not has_model_normalizer(base_tokenizer)
    assert has_model_normalizer(release_tokenizer)
    again = with_model_normalizer(release_tokenizer)
    assert again is release_tokenizer
    assert again.backend_tokenizer.to_str() == release_tokenizer.backend_tokenizer.to_str()
    assert release_tokenizer.model_max_length == 32
    assert release_tokenizer.model_input_names == base_tokenizer.model_input_names
    assert not has_model_normalizer(base_tokenizer)  # the base tokenizer was copied, not changed


def test_saved_tokenizer_loads_with_the_steps(release_tokenizer, tmp_path: Path) -> None:
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    save_tokenizer(release_tokenizer, tmp_path)
    saved = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert saved["tokenizer_class"] == PORTABLE_TOKENIZER_CLASS
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert has_model_normalizer(loaded) and has_model_normalizer(Tokenizer.from_file(str(tmp_path / "tokenizer.json")))
    assert folder_normalizes_raw_text(tmp_path)
    raw = ['  "WHERE is my Order??"\u200b ', "Ｉ want a ＲＥＦＵＮＤ!!!"]
    assert loaded(raw)["input_ids"] == release_tokenizer(raw)["input_ids"]
    assert loaded.model_max_length == 32


def test_a_tokenizer_without_the_steps_is_recognised(base_tokenizer, release_tokenizer, tmp_path: Path) -> None:
    base_tokenizer.save_pretrained(tmp_path / "old")  # as models were saved before the steps moved in
    assert not folder_normalizes_raw_text(tmp_path / "old")
    # Steps in tokenizer.json but a class transformers 5 rebuilds from scratch: they would be dropped on load.
    release_tokenizer.save_pretrained(tmp_path / "rebuilt")
    config_path = tmp_path / "rebuilt" / "tokenizer_config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "tokenizer_class": "BertTokenizer"}))
    assert not folder_normalizes_raw_text(tmp_path / "rebuilt")
    assert not folder_normalizes_raw_text(tmp_path / "missing")


@pytest.mark.parametrize("normalizes", [True, False])
def test_the_model_card_says_whether_raw_text_can_go_to_the_pipeline(normalizes: bool) -> None:
    from intent_pipeline.model_card import build_model_card

    release = {"version": "v3", "model_version": "m", "dataset_fingerprint": "f" * 64}
    metrics = {"accuracy": 0.9, "macro_f1": 0.9, "weighted_f1": 0.9, "labels": ["refund", "other"]}
    card = build_model_card(release, metrics, {}, {"threshold": 0.5, "margin": 0.1}, config.get_settings(),
                            normalizes_raw_text=normalizes)
    assert ("Feed raw text to `pipeline()` directly" in card.text) is normalizes
    assert ("does not normalise text" in card.text) is not normalizes
