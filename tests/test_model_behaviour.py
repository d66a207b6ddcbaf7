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

# Invariance: each change keeps the answer. (name, function of the base text)
PERTURBATIONS = {
    "typos": lambda t: t.replace("I want", "I wnat").replace("I need", "I ned").replace("your", "yuor")
                        .replace("What", "Wat").replace("How", "Hw").replace("Which", "Whcih")
                        .replace("Are there", "Are tehre").replace("I would", "I wuold").replace("I forgot", "I forgto"),
    "slang": lambda t: "hey " + t.replace("I want", "i wanna").replace("I need", "i gotta").replace("you", "u")
                        .replace("your", "ur").replace("What", "wat") + " pls thx",
    "placeholders": lambda t: f"Hi, this is [PERSON]. {t}. You can reach me at [PHONE]",
    "politeness": lambda t: f"Good morning! Could you please help me? {t}. Thank you so much, have a nice day",
}
# The CI model trains on 40 rows per intent, so one slip per perturbation is tolerated (measured on
# the seed-0 run: 12 of 13 plain requests right; typos, slang, placeholders, politeness: 13 of 13
# answers unchanged). A model that ignores its input fails the plain requests; one that reads
# surface noise instead of the request fails the invariance tests.
MIN_PLAIN_RIGHT = len(BASE) - 2
MAX_CHANGED = 1

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


@pytest.fixture(scope="module")
def base_answers(classifier: IntentClassifier) -> dict[str, str]:
    return dict(zip(BASE, _top(classifier, list(BASE.values()))))


def test_every_intent_of_the_base_cases_is_one_the_model_knows(classifier: IntentClassifier) -> None:
    assert set(BASE) <= set(classifier.labels) and len(classifier.labels) == 15


def test_minimum_functionality_plain_requests(base_answers: dict[str, str]) -> None:
    wrong = {intent: answer for intent, answer in base_answers.items() if answer != intent}
    assert len(BASE) - len(wrong) >= MIN_PLAIN_RIGHT, wrong


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_invariance(classifier: IntentClassifier, base_answers: dict[str, str], name: str) -> None:
    perturb = PERTURBATIONS[name]
    changed = {intent: perturb(text) for intent, text in BASE.items()}
    for intent, text in changed.items():  # the change reaches the model: normalisation does not undo it
        assert normalize_for_model(text) != normalize_for_model(BASE[intent]), (name, text)
    answers = dict(zip(changed, _top(classifier, list(changed.values()))))
    flipped = [(changed[i], base_answers[i], answers[i]) for i in BASE if answers[i] != base_answers[i]]
    assert len(flipped) <= MAX_CHANGED, flipped
    assert sum(answers[i] == i for i in BASE) >= MIN_PLAIN_RIGHT  # and the answers stay right


def test_invariance_to_word_order(classifier: IntentClassifier) -> None:
    answers = _top(classifier, [text for text, _ in REORDERED])
    assert answers == [intent for _, intent in REORDERED]


@pytest.mark.parametrize("text, intent", [
    ("I need to track my order [ORDER_ID]", "queries_related_to_order"),
    pytest.param("I need the invoice for order [ORDER_ID]", "request_invoice", marks=pytest.mark.xfail(
        reason="known weakness of the small CI model: [ORDER_ID] pulls a request about an order to the order intent",
        strict=False)),
    pytest.param("Change the shipping address of order [ORDER_ID]", "manage_shipping_address", marks=pytest.mark.xfail(
        reason="known weakness of the small CI model: [ORDER_ID] pulls a request about an order to the order intent",
        strict=False)),
    pytest.param("I want a refund for order [ORDER_ID]", "queries_related_to_refund", marks=pytest.mark.xfail(
        reason="known weakness of the small CI model: [ORDER_ID] pulls a refund request to the order intent",
        strict=False)),
    pytest.param("I want a refund, my email is [EMAIL]", "queries_related_to_refund", marks=pytest.mark.xfail(
        reason="known weakness of the small CI model: [EMAIL] reads as the newsletter's email list", strict=False)),
])
def test_placeholders_do_not_take_over_the_intent(classifier: IntentClassifier, text: str, intent: str) -> None:
    assert _top(classifier, [text]) == [intent]


NEGATIONS = [  # praise, and the same sentence negated: a grievance
    ("I am happy with your service", "I am not happy with your service"),
    ("I like your company", "I do not like your company"),
    ("I am happy with your service", "I am unhappy with your service"),
]


def test_directional_negation_moves_the_answer_towards_complaint(classifier: IntentClassifier) -> None:
    """Negating praise turns it into a grievance: `complaint` must gain probability every time, and
    become the answer at least once (measured on the seed-0 run: 2 of 3; complaint's probability
    rises by 30-100 %)."""
    index = classifier.labels.index("complaint")
    rises = []
    for praise, grievance in NEGATIONS:
        before, after = classifier.predict_proba([praise, grievance])
        assert before.argmax() != index, praise
        rises.append(after[index] / before[index])
    assert min(rises) > 1.1, rises
    assert "complaint" in _top(classifier, [grievance for _, grievance in NEGATIONS])


def test_negation_that_keeps_the_topic_keeps_the_intent(classifier: IntentClassifier) -> None:
    """Not wanting the newsletter is still a newsletter request (unsubscribe), not a complaint."""
    texts = ["I want to receive your newsletter", "I do not want to receive your newsletter anymore"]
    assert _top(classifier, texts) == ["newsletter_subscription"] * 2
