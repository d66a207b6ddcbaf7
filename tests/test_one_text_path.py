"""One text path: `transformers.pipeline` on raw text, the app/API (PredictionService), the ONNX graphs
and tokenizer.json users all give the same answers, because the released tokenizer normalises text.

Real fine-tuned model (the session's `trained_model_dir`), real masker, real ONNX export; 500 varied
messages generated deterministically from templates (case, punctuation, emoji, whitespace, zero-width
characters, accents, fullwidth forms, quotes and dashes at the edges).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import config
from intent_pipeline.predict import IntentClassifier
from intent_pipeline.serving.service import PredictionService, load_model
from intent_pipeline.text import clean_text

from conftest import linked_copy
from varied_text import N_MESSAGES, varied_messages  # benchmarks/ (on sys.path via conftest)

PROB_ATOL = 1e-4
# int8 weights move probabilities (measured on this model: top-1 agreement 0.996, mean per-message
# max difference 0.017, worst 0.18); the top intent may flip only where two are nearly tied.
INT8_MIN_TOP1_AGREEMENT = 0.98
INT8_MEAN_PROB_ATOL = 0.03
INT8_PROB_ATOL = 0.3

def _pipeline_probs(folder: Path, texts: list[str], labels: list[str]) -> np.ndarray:
    """What a Hub user gets: `pipeline("text-classification", model=folder, top_k=None)` on the texts."""
    from transformers import pipeline

    classifier = pipeline("text-classification", model=str(folder), top_k=None, device="cpu")
    out = classifier(texts, batch_size=32)
    return np.array([[{d["label"]: d["score"] for d in row}[label] for label in labels] for row in out])


@pytest.fixture(scope="module")
def messages() -> list[str]:
    return varied_messages()


@pytest.fixture(scope="module")
def app_answers(trained_model_dir: Path, masker, messages: list[str]):
    """The app/API path (clean -> mask -> normalise -> score) on the raw messages, and the pipeline's inputs:
    the raw message, or its masked text where the masker found something to mask (PII masking aside)."""
    settings = dataclasses.replace(config.get_settings(), model_source=str(trained_model_dir),
                                   inference_backend="torch", max_text_chars=0)
    service = PredictionService(settings, load_model(settings, warm_up=False), masker)
    labels = service.model.classifier.labels
    scored = service.predict(messages, top_k=len(labels))
    probs = np.array([[dict(p.top_k)[label] for label in labels] for p in scored.predictions])
    inputs = [raw if masked == clean_text(raw) else masked for raw, masked in zip(messages, scored.masked)]
    return labels, probs, inputs


@pytest.fixture(scope="module")
def pipeline_probs(trained_model_dir: Path, app_answers) -> np.ndarray:
    labels, _, inputs = app_answers
    return _pipeline_probs(trained_model_dir, inputs, labels)


def test_the_messages_are_varied_and_fit_the_model(messages: list[str], trained_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    assert len(set(messages)) == N_MESSAGES and messages == varied_messages()
    joined = "".join(messages)
    for kind in ("\t", "\n", "\u00a0", "\u200b", "Ｗ", "é", "📦", "??", "“", "— ", "!!!"):
        assert kind in joined, kind
    assert sum(m != m.lower() for m in messages) > 200 and sum(m != m.strip() for m in messages) > 200
    tokenizer = AutoTokenizer.from_pretrained(trained_model_dir)
    longest = max(len(ids) for ids in tokenizer(messages)["input_ids"])
    assert longest <= tokenizer.model_max_length == 32  # so the pipeline, which does not truncate, sees all


def test_raw_pipeline_and_the_app_agree(app_answers, pipeline_probs: np.ndarray, messages: list[str]) -> None:
    labels, app_probs, inputs = app_answers
    # Most messages reach the pipeline raw; where the masker replaced words (the order number in "order
    # 1234"), both paths score the masked text.
    assert sum(i == m for i, m in zip(inputs, messages)) >= 0.75 * N_MESSAGES
    assert (pipeline_probs.argmax(1) == app_probs.argmax(1)).all()
    assert float(np.abs(pipeline_probs - app_probs).max()) <= PROB_ATOL
    assert len(set(app_probs.argmax(1))) == len(labels)  # a real model: every intent is answered somewhere


def test_a_model_saved_before_the_change_still_serves_the_same(
    trained_model_dir: Path, app_answers, pipeline_probs: np.ndarray, tmp_path: Path,
) -> None:
    """Same weights, the old tokenizer (no steps inside): the app normalises in Python and answers alike,
    while the raw pipeline on it does not: the steps in the tokenizer are what makes the pipeline agree."""
    from transformers import AutoTokenizer

    old = linked_copy(trained_model_dir, tmp_path / "old")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (old / name).unlink()
    AutoTokenizer.from_pretrained(config.get_settings().base_model).save_pretrained(old)
    labels, app_probs, inputs = app_answers
    new_clf, old_clf = IntentClassifier.load(trained_model_dir), IntentClassifier.load(old)
    np.testing.assert_allclose(old_clf.predict_proba(inputs), new_clf.predict_proba(inputs), atol=1e-6, rtol=0)
    some = slice(0, 200)  # enough to show the difference (measured on all 500: 4.6% of top intents differ)
    old_pipeline = _pipeline_probs(old, inputs[some], labels)
    assert float(np.abs(old_pipeline - pipeline_probs[some]).max(axis=1).mean()) > 10 * PROB_ATOL


@pytest.fixture(scope="module")
def exported(trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from intent_pipeline import onnx_export

    folder = linked_copy(trained_model_dir, tmp_path_factory.mktemp("one_text_path") / "model")
    onnx_export.export_onnx(folder, quantize=True)
    return folder


def test_onnx_backends_agree_with_the_raw_pipeline(exported: Path, app_answers, pipeline_probs: np.ndarray) -> None:
    _, _, inputs = app_answers
    fp32 = IntentClassifier.load(exported, backend="onnx")
    assert fp32.backend == "onnx"
    fp32_probs = fp32.predict_proba(inputs)
    assert (fp32_probs.argmax(1) == pipeline_probs.argmax(1)).all()
    assert float(np.abs(fp32_probs - pipeline_probs).max()) <= PROB_ATOL
    int8 = IntentClassifier.load(exported, backend="onnx-int8")
    assert int8.backend == "onnx-int8"
    int8_probs = int8.predict_proba(inputs)
    assert float((int8_probs.argmax(1) == pipeline_probs.argmax(1)).mean()) >= INT8_MIN_TOP1_AGREEMENT
    assert float(np.abs(int8_probs - pipeline_probs).max(axis=1).mean()) <= INT8_MEAN_PROB_ATOL
    assert float(np.abs(int8_probs - pipeline_probs).max()) <= INT8_PROB_ATOL


def test_tokenizer_json_and_the_graph_alone_agree_with_the_raw_pipeline(
    exported: Path, app_answers, pipeline_probs: np.ndarray,
) -> None:
    """An ONNX user with only `tokenizers` and onnxruntime, no transformers and no project code."""
    from tokenizers import Tokenizer

    from intent_pipeline.onnx_export import ort_feed, ort_session, softmax

    _, _, inputs = app_answers
    tokenizer = Tokenizer.from_file(str(exported / "tokenizer.json"))
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]"), pad_token="[PAD]")
    session = ort_session(exported / "onnx" / "model.onnx")
    rows = []
    for start in range(0, len(inputs), 32):
        encodings = tokenizer.encode_batch(inputs[start:start + 32])
        batch = {"input_ids": [e.ids for e in encodings], "attention_mask": [e.attention_mask for e in encodings],
                 "token_type_ids": [e.type_ids for e in encodings]}
        rows.append(softmax(session.run(None, ort_feed(session, batch))[0]))
    probs = np.concatenate(rows)
    assert (probs.argmax(1) == pipeline_probs.argmax(1)).all()
    assert float(np.abs(probs - pipeline_probs).max()) <= PROB_ATOL
