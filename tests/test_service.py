"""PredictionService: the one clean -> mask -> score -> fallback -> log-row path, and model swaps.

Real model (the untrained 3-label head), real spaCy/Presidio masker.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import pytest

import config
from intent_pipeline.errors import PipelineError
from intent_pipeline.predict import FallbackRule
from intent_pipeline.serving.service import PredictionService, load_model

from conftest import TINY_LABELS

EMAIL = "mary.major@example.org"


@pytest.fixture(scope="module")
def settings(untrained_model_dir: Path) -> config.Settings:
    return dataclasses.replace(config.get_settings(), model_source=str(untrained_model_dir),
                               inference_backend="auto", max_text_chars=30)


@pytest.fixture(scope="module")
def second_release(untrained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same weights under another version name."""
    folder = tmp_path_factory.mktemp("second") / "v2"
    folder.mkdir()
    for item in untrained_model_dir.iterdir():
        if item.is_file() and item.name != "training_config.json":
            (folder / item.name).symlink_to(item)
    (folder / "training_config.json").write_text(json.dumps({"model_version": "test-v2", "max_length": 64}))
    return folder


@pytest.fixture
def service(settings: config.Settings, masker) -> PredictionService:
    return PredictionService(settings, load_model(settings), masker)


def test_predict_masks_scores_and_builds_log_rows(service: PredictionService) -> None:
    scored = service.predict([f"Mail {EMAIL} now!", "Where is my order?"], top_k=2, channel="batch")
    assert EMAIL not in scored.masked[0] and "[EMAIL]" in scored.masked[0]
    assert [p.intent in TINY_LABELS for p in scored.predictions] == [True, True]
    assert all(len(p.top_k) == 2 for p in scored.predictions)
    assert scored.predictions[1].text == "where is my order"  # what the model saw: normalised
    assert [row["text"] for row in scored.log_rows] == scored.masked
    assert {row["channel"] for row in scored.log_rows} == {"batch"}
    assert {row["model_version"] for row in scored.log_rows} == {"test-untrained"}
    assert scored.model.backend == "torch" and "auto" in scored.model.classifier.backend_reason


def test_fallback_rule_and_truncation(service: PredictionService) -> None:
    answer = service.answer("where is my parcel " * 5, rule=FallbackRule(threshold=0.99, label="unsure"))
    assert answer.truncated and answer.chars == 95 and len(answer.masked) <= 30
    assert answer.prediction.intent == "unsure" and answer.prediction.is_fallback
    assert answer.row["intent"] == "unsure" and answer.row["latency_ms"] == answer.latency_ms


def test_a_swap_lets_work_in_flight_finish_on_the_old_model(service: PredictionService,
                                                           settings: config.Settings, second_release: Path) -> None:
    new = load_model(settings, source=str(second_release))
    real_masker = service.masker
    swapped = threading.Event()

    class SwapWhileMasking:  # the real masker; a release arrives while a batch is being masked
        def mask_batch(self, texts, **options):
            old = service.swap_model(new)
            swapped.set()
            assert old.version == "test-untrained"
            return real_masker.mask_batch(texts, **options)

    service.masker = SwapWhileMasking()
    in_flight = service.predict(["where is my order"])
    service.masker = real_masker
    assert swapped.is_set()
    assert in_flight.model.version == "test-untrained" and in_flight.log_rows[0]["model_version"] == "test-untrained"
    after = service.predict(["where is my order"])
    assert after.model.version == "test-v2" and after.log_rows[0]["model_version"] == "test-v2"


def test_a_release_that_fails_to_load_leaves_the_current_one_serving(service: PredictionService,
                                                                     tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    with pytest.raises(PipelineError, match="not a model release"):
        service.reload(str(tmp_path / "broken"))
    assert service.model.version == "test-untrained"
    assert service.predict(["hi"]).predictions[0].intent in TINY_LABELS


def test_api_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_BATCH", "64")
    monkeypatch.setenv("MAX_QUEUE", "10")
    with pytest.raises(config.ConfigError, match="MAX_QUEUE must be >= MAX_BATCH"):
        config.get_settings()
    monkeypatch.setenv("MAX_QUEUE", "64")
    monkeypatch.setenv("BATCH_WAIT_MS", "-1")
    with pytest.raises(config.ConfigError, match="BATCH_WAIT_MS must be >= 0"):
        config.get_settings()
    monkeypatch.delenv("BATCH_WAIT_MS")
    monkeypatch.setenv("API_TOKEN", "very-secret-token")
    settings = config.get_settings()
    assert settings.inference_backend in ("auto", "torch", "onnx", "onnx-int8")
    assert "very-secret-token" not in repr(settings)


def test_micro_batched_requests_share_no_masks(service: PredictionService) -> None:
    """A name found in one user's request must not be masked (and so revealed) in another's."""
    from intent_pipeline.serving.api import Sinks, run_batch
    from intent_pipeline.serving.metrics import ApiMetrics

    name_request = (["hi, my name is Quintrell"], 1)
    other_request = (["is quintrell open on sundays"], 1)
    apart = run_batch(service, Sinks(None, ApiMetrics()), [name_request, other_request])
    assert apart[0]["predictions"][0]["text"] == "hi, my name is [PERSON]"
    assert apart[1]["predictions"][0]["text"] == "is quintrell open on sundays"

    together = service.predict(name_request[0] + other_request[0])  # one request: its names spread
    assert together.masked == ["hi, my name is [PERSON]", "is [PERSON] open on sundays"]


def test_overlapped_scoring_answers_exactly_as_the_masked_path(service: PredictionService) -> None:
    """The early score of the unmasked text is kept only where masking changed nothing."""
    texts = [f"Mail {EMAIL} now!", "Where is my order?", "hi, my name is Quintrell", "cancel it   please"]
    plain = service.predict(texts, top_k=3, groups=[0, 1, 2, 3])
    overlapped = service.predict_overlapped(texts, top_k=3, groups=[0, 1, 2, 3])
    assert overlapped.masked == plain.masked and "[EMAIL]" in overlapped.masked[0]
    assert [p.text for p in overlapped.predictions] == [p.text for p in plain.predictions]
    assert "quintrell" not in overlapped.predictions[2].text and EMAIL not in overlapped.predictions[0].text
    for a, b in zip(overlapped.predictions, plain.predictions):
        assert a.intent == b.intent and [label for label, _ in a.top_k] == [label for label, _ in b.top_k]
        assert [score for _, score in a.top_k] == pytest.approx([score for _, score in b.top_k], abs=1e-6)
    assert [row["text"] for row in overlapped.log_rows] == plain.masked
    assert all(EMAIL not in json.dumps(row) and "Quintrell" not in json.dumps(row) for row in overlapped.log_rows)
