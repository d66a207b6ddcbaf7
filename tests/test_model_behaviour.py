"""Behaviour of a real (tiny) fine-tuned model: names, order numbers, casing and punctuation must
not change the intent. Uses the session-wide `trained_model_dir` fixture (4 intents)."""

from __future__ import annotations

from pathlib import Path

import pytest

from intent_pipeline.predict import IntentClassifier

# (base sentence, its intent): plain requests in the style of the seed data.
CASES = [
    ("I want to check the status of my order", "queries_related_to_order"),
    ("I want a refund for my purchase", "queries_related_to_refund"),
    ("I need to get the invoice for my purchase", "request_invoice"),
    ("How can I speak with customer support", "contact_support"),
]


@pytest.fixture(scope="module")
def classifier(trained_model_dir: Path) -> IntentClassifier:
    return IntentClassifier.load(trained_model_dir)


def _intents(classifier: IntentClassifier, texts: list[str]) -> list[str]:
    return [p.top_intent for p in classifier.predict(texts)]


def test_base_sentences_are_right_with_margin(classifier: IntentClassifier) -> None:
    for prediction, (_, intent) in zip(classifier.predict([t for t, _ in CASES]), CASES):
        assert prediction.top_intent == intent, prediction
        assert prediction.confidence - prediction.top_k[1][1] > 0.2, prediction


@pytest.mark.parametrize("text, intent", CASES)
def test_names_and_order_numbers_do_not_change_the_intent(classifier: IntentClassifier, text: str, intent: str) -> None:
    variants = [
        f"{text} 4815162",
        f"{text}, ref 90210",
        f"Hi, this is Maria Lopez. {text}",
        f"{text} for <PERSON>",
    ]
    assert _intents(classifier, variants) == [intent] * len(variants)


@pytest.mark.parametrize("text, intent", CASES)
def test_casing_and_punctuation_do_not_change_the_intent(classifier: IntentClassifier, text: str, intent: str) -> None:
    variants = [text.lower(), text.upper(), text + ".", text + "?!", "  " + text + " ...", text.lower().rstrip("?")]
    assert _intents(classifier, variants) == [intent] * len(variants)
    # Normalisation makes pure style changes exactly invisible to the model.
    probs = classifier.predict_proba([text, text.upper() + "?", text.lower() + "."])
    assert abs(probs[0] - probs[1]).max() < 1e-5 and abs(probs[0] - probs[2]).max() < 1e-5
