"""Behaviour of the model the pipeline trains (Made-With-ML style): minimum functionality, invariance,
directional expectations.

The model is `pipeline_run`'s (stages 1-5 on all 15 intents, tests/conftest.py), not a hand-made
one. Every perturbation here survives `normalize_for_model` (checked below), so these test the
model, not the normaliser: casing and edge punctuation are erased before the model sees a text.
"""

from __future__ import annotations

import pytest

from conftest import PipelineRun
from intent_pipeline.predict import IntentClassifier
from intent_pipeline.text import normalize_for_model

# Minimum functionality: plain requests, written for these tests (not taken from the seed data).
BASE = {
    "queries_related_to_refund": "I want a refund for the shoes I bought",
    "queries_related_to_order": "I need to track my order",
    "request_invoice": "I need a copy of the invoice for my purchase",
    "contact_support": "I want to talk to a customer service agent",
    "manage_shipping_address": "I need to change my shipping address",
    "newsletter_subscription": "I want to subscribe to your newsletter",
    "inquire_business_hours": "What are your opening hours on saturday",
    "complaint": "I want to file a complaint about your service",
    "check_promotions": "Are there any discounts on laptops right now",
    "delivery_information": "How long does delivery take",
    "queries_related_to_payments/fee": "Which payment methods do you accept",
    "review": "I would like to leave a review of your product",
    "account_management": "I forgot my password and cannot log in to my account",
}

# Invariance: each change keeps the intent. (name, function of the base text)
PERTURBATIONS = {
    "typos": lambda t: t.replace("I want", "I wnat").replace("I need", "I ned").replace("your", "yuor")
                        .replace("What", "Wat").replace("How", "Hw").replace("Which", "Whcih")
                        .replace("Are there", "Are tehre").replace("I would", "I wuold").replace("I forgot", "I forgto"),
    "slang": lambda t: "hey " + t.replace("I want", "i wanna").replace("I need", "i gotta").replace("you", "u")
                        .replace("your", "ur").replace("What", "wat") + " pls thx",
    "placeholders": lambda t: f"Hi, this is [PERSON] ([EMAIL]). {t}, my order is [ORDER_ID]",
    "politeness": lambda t: f"Good morning! Could you please help me? {t}. Thank you so much, have a nice day",
}

# Word order: the same request with its parts moved around.
REORDERED = [
    ("For the shoes I bought, I want a refund", "queries_related_to_refund"),
    ("My shipping address needs to change", "manage_shipping_address"),
    ("On saturday, what are your opening hours", "inquire_business_hours"),
    ("To your newsletter I want to subscribe", "newsletter_subscription"),
    ("The invoice for my purchase, I need a copy of it", "request_invoice"),
]


@pytest.fixture(scope="module")
def classifier(pipeline_run: PipelineRun) -> IntentClassifier:
    return IntentClassifier.load(pipeline_run.model_dir)


def _top(classifier: IntentClassifier, texts: list[str]) -> list[str]:
    return [p.top_intent for p in classifier.predict(texts)]


def test_every_intent_of_the_base_cases_is_one_the_model_knows(classifier: IntentClassifier) -> None:
    assert set(BASE) <= set(classifier.labels) and len(classifier.labels) == 15


def test_minimum_functionality_plain_requests(classifier: IntentClassifier) -> None:
    predictions = classifier.predict(list(BASE.values()))
    wrong = [(text, intent, p.top_intent) for (intent, text), p in zip(BASE.items(), predictions)
             if p.top_intent != intent]
    assert not wrong, wrong


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_invariance(classifier: IntentClassifier, name: str) -> None:
    perturb = PERTURBATIONS[name]
    changed = {intent: perturb(text) for intent, text in BASE.items()}
    for intent, text in changed.items():  # the change reaches the model: normalisation does not undo it
        assert normalize_for_model(text) != normalize_for_model(BASE[intent]), (name, text)
    answers = _top(classifier, list(changed.values()))
    flipped = [(text, intent, answer) for (intent, text), answer in zip(changed.items(), answers) if answer != intent]
    assert not flipped, flipped


def test_invariance_to_word_order(classifier: IntentClassifier) -> None:
    answers = _top(classifier, [text for text, _ in REORDERED])
    assert answers == [intent for _, intent in REORDERED]


def test_placeholders_do_not_pull_towards_the_order_intent(classifier: IntentClassifier) -> None:
    """[ORDER_ID] is common in order messages; an order number in a refund request must not win."""
    texts = ["I want a refund for order [ORDER_ID]", "I need the invoice for order [ORDER_ID]",
             "Change the shipping address of order [ORDER_ID]"]
    assert _top(classifier, texts) == ["queries_related_to_refund", "request_invoice", "manage_shipping_address"]


@pytest.mark.parametrize("positive, negative, intent", [
    ("I am happy with your service", "I am not happy with your service", "complaint"),
    ("I am satisfied with the product I received", "I am not satisfied with the product I received", "complaint"),
])
def test_directional_negation_changes_the_intent(classifier: IntentClassifier, positive: str, negative: str,
                                                 intent: str) -> None:
    """A negation that turns praise into a grievance must move the answer to `complaint`."""
    index = classifier.labels.index(intent)
    before, after = classifier.predict_proba([positive, negative])
    assert classifier.predict([negative])[0].top_intent == intent
    assert after[index] - before[index] > 0.2, (before[index], after[index])


def test_directional_subscribe_vs_unsubscribe_stays_newsletter(classifier: IntentClassifier) -> None:
    """Negating the action ("stop sending") is still about the newsletter, not a complaint or other."""
    texts = ["I want to receive your newsletter", "I do not want to receive your newsletter anymore"]
    assert _top(classifier, texts) == ["newsletter_subscription"] * 2
