"""ONNX export and the backend choice of IntentClassifier, on the untrained 3-label model."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from intent_pipeline import onnx_export
from intent_pipeline.errors import PipelineError
from intent_pipeline.predict import FallbackRule, IntentClassifier

from conftest import linked_copy

TEXTS = ["Where is my order?", "i want my money back for the broken headphones i bought", "hi", "cancel it", "ok"]


def _set_trained_length(model_dir: Path, max_length: int) -> None:
    """Replace the (linked) training config of `model_dir` by one recording `max_length`."""
    path = model_dir / "training_config.json"
    cfg = json.loads(path.read_text())
    path.unlink()
    path.write_text(json.dumps({**cfg, "max_length": max_length}))


@pytest.fixture(scope="module")
def exported(untrained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model_dir = linked_copy(untrained_model_dir, tmp_path_factory.mktemp("onnx") / "model")
    _set_trained_length(model_dir, 24)  # not MAX_LENGTH's default: the export must check at the model's length
    paths = onnx_export.export_onnx(model_dir, quantize=True)
    assert paths == {"onnx": model_dir / "onnx" / "model.onnx", "onnx-int8": model_dir / "onnx" / "model.int8.onnx"}
    return model_dir


@pytest.fixture(scope="module")
def torch_probs(exported: Path) -> np.ndarray:
    return IntentClassifier.load(exported, backend="torch").predict_proba(TEXTS, batch_size=2)


def test_export_writes_files_and_record(exported: Path) -> None:
    info = json.loads((exported / "onnx" / "export.json").read_text())
    assert info["source_sha256"] == onnx_export.weights_digest(exported)
    assert info["max_length"] == 24  # checked at the length the model was trained with
    assert info["fp32"]["max_prob_diff"] <= onnx_export.FP32_ATOL
    assert (exported / "onnx" / "model.int8.onnx").stat().st_size < (exported / "onnx" / "model.onnx").stat().st_size / 2
    assert not list((exported / "onnx").glob(".*tmp"))  # no temp files left behind


def test_onnx_fp32_matches_torch(exported: Path, torch_probs: np.ndarray) -> None:
    clf = IntentClassifier.load(exported, backend="onnx")
    assert clf.backend == "onnx" and clf.model is None and clf.labels == ["check_order", "refund", "other"]
    np.testing.assert_allclose(clf.predict_proba(TEXTS, batch_size=2), torch_probs, atol=1e-4)
    np.testing.assert_allclose(clf.predict_proba(TEXTS[:1]), torch_probs[:1], atol=1e-4)  # single-message path


def test_onnx_int8_is_close_to_torch(exported: Path, torch_probs: np.ndarray) -> None:
    clf = IntentClassifier.load(exported, backend="onnx-int8")
    assert clf.backend == "onnx-int8"
    probs = clf.predict_proba(TEXTS)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs, torch_probs, atol=0.05)
    preds = clf.predict(TEXTS, top_k=2, fallback=FallbackRule(threshold=0.99, label="unsure"))
    assert all(p.is_fallback and p.intent == "unsure" and len(p.top_k) == 2 for p in preds)
    assert [len(p.top_k) for p in clf.predict(TEXTS[:1], top_k=50) + clf.predict(TEXTS[:1], top_k=0)] == [3, 1]


def test_missing_int8_falls_back_to_torch(exported: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model_dir = linked_copy(exported, tmp_path / "m")
    (model_dir / "onnx").mkdir()
    (model_dir / "onnx" / "model.onnx").symlink_to(exported / "onnx" / "model.onnx")
    shutil.copy(exported / "onnx" / "export.json", model_dir / "onnx" / "export.json")
    with caplog.at_level(logging.WARNING):
        clf = IntentClassifier.load(model_dir, backend="onnx-int8")
    assert clf.backend == "torch" and clf.model is not None
    assert "falling back to PyTorch" in caplog.text and "model.int8.onnx is missing" in caplog.text
    assert IntentClassifier.load(model_dir, backend="onnx").backend == "onnx"


def test_stale_or_broken_export_falls_back(exported: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model_dir = linked_copy(exported, tmp_path / "m")
    (model_dir / "onnx").mkdir()
    (model_dir / "onnx" / "model.onnx").write_bytes(b"not an onnx graph")
    info = json.loads((exported / "onnx" / "export.json").read_text())
    (model_dir / "onnx" / "export.json").write_text(json.dumps(info))
    with caplog.at_level(logging.WARNING):
        assert IntentClassifier.load(model_dir, backend="onnx").backend == "torch"
    assert "onnxruntime cannot load" in caplog.text
    info["source_sha256"] = "0" * 64  # exported from other weights
    (model_dir / "onnx" / "export.json").write_text(json.dumps(info))
    (model_dir / "onnx" / "model.onnx").unlink()
    (model_dir / "onnx" / "model.onnx").symlink_to(exported / "onnx" / "model.onnx")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert IntentClassifier.load(model_dir, backend="onnx").backend == "torch"
    assert "older than the model weights" in caplog.text


def test_bad_backend_and_missing_model_are_clear_errors(untrained_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="INFERENCE_BACKEND must be one of"):
        IntentClassifier.load(untrained_model_dir, backend="tensorrt")
    with pytest.raises(PipelineError, match="no model at"):
        onnx_export.export_onnx(tmp_path)


def test_export_cli_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from intent_pipeline.cli import run_cli

    assert run_cli(onnx_export.main, [str(tmp_path / "nothing")]) == 1
    assert "error: no model at" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        onnx_export.main(["--help"])
    assert exit_info.value.code == 0
    assert "--no-quantize" in capsys.readouterr().out


def test_load_max_length_explicit_wins_else_training_config_else_setting(
    untrained_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_LENGTH", "40")
    monkeypatch.setenv("FALLBACK_LABEL", "needs_human")
    model_dir = linked_copy(untrained_model_dir, tmp_path / "m")
    _set_trained_length(model_dir, 16)
    recorded = IntentClassifier.load(model_dir)
    assert recorded.max_length == 16 and recorded.fallback.label == "needs_human"
    explicit = IntentClassifier.load(model_dir, max_length=20, fallback_label="other_label")
    assert explicit.max_length == 20 and explicit.fallback.label == "other_label"
    (model_dir / "training_config.json").unlink()
    assert IntentClassifier.load(model_dir).max_length == 40  # no training config: MAX_LENGTH


def _with_onnx(exported: Path, dst: Path, release: dict | None) -> Path:
    model_dir = linked_copy(exported, dst)
    (model_dir / "onnx").symlink_to(exported / "onnx")
    if release is not None:
        (model_dir / "release.json").write_text(json.dumps(release))
    return model_dir


@pytest.mark.parametrize(
    ("release", "expected", "why"),
    [
        ({"onnx_int8_macro_f1": 0.912, "onnx_int8_delta": -0.004}, "onnx-int8", "within 0.5"),
        ({"onnx_int8_macro_f1": 0.95, "onnx_int8_delta": 0.01}, "onnx-int8", "+1.00 points"),
        ({"onnx_int8_macro_f1": 0.90, "onnx_int8_delta": -0.006}, "onnx", "more than 0.5 lost"),
        ({"version": "v3"}, "onnx", "records no int8 test macro-F1"),
        (None, "onnx", "records no int8 test macro-F1"),
    ],
)
def test_auto_serves_int8_only_when_the_release_vouches_for_it(
    exported: Path, tmp_path: Path, release: dict | None, expected: str, why: str
) -> None:
    clf = IntentClassifier.load(_with_onnx(exported, tmp_path / "m", release), backend="auto")
    assert clf.backend == expected and clf.backend_reason.startswith("auto:") and why in clf.backend_reason


def test_auto_without_graphs_serves_torch_and_says_why(exported: Path, tmp_path: Path) -> None:
    model_dir = linked_copy(exported, tmp_path / "m")
    (model_dir / "release.json").write_text(json.dumps({"onnx_int8_delta": 0.0}))
    clf = IntentClassifier.load(model_dir, backend="auto")
    assert clf.backend == "torch" and clf.model is not None
    assert "onnx-int8 unavailable" in clf.backend_reason and "onnx unavailable" in clf.backend_reason


def test_an_explicit_backend_wins_over_auto(exported: Path, tmp_path: Path) -> None:
    model_dir = _with_onnx(exported, tmp_path / "m", {"onnx_int8_delta": 0.0})
    for backend in ("torch", "onnx", "onnx-int8"):
        clf = IntentClassifier.load(model_dir, backend=backend)
        assert clf.backend == backend and clf.backend_reason == f"INFERENCE_BACKEND={backend}"


def test_backend_names_are_defined_once() -> None:
    from intent_pipeline import backends

    assert backends.BACKEND_NAMES == ("torch", "onnx", "onnx-int8")
    assert set(onnx_export.BACKEND_FILES) == {backends.ONNX, backends.ONNX_INT8}
    assert backends.SETTING_VALUES[0] == "auto"
