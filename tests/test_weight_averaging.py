"""Stage 4's final weights: which epochs are averaged, the mean, when the best checkpoint stays instead."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import torch
from safetensors.torch import load_file

import finetune_bert
from conftest import write_tiny_splits
from intent_pipeline.weight_averaging import EpochAverager, averaged_epoch_ends, finish_weights


def test_the_last_third_of_the_planned_epochs_is_averaged() -> None:
    assert averaged_epoch_ends(14) == [10.0, 11.0, 12.0, 13.0, 14.0]  # BANKING77's auto plan
    assert averaged_epoch_ends(2) == [2.0]  # the seed's plan: nothing to average
    assert averaged_epoch_ends(4) == [3.0, 4.0]
    assert averaged_epoch_ends(2.5) == [2.5]  # a fractional last epoch ends the run
    assert averaged_epoch_ends(0.5) == [0.5]


def test_the_average_is_the_mean_of_the_due_epochs_and_ignores_integer_buffers() -> None:
    model = torch.nn.Linear(2, 1)
    model.register_buffer("ids", torch.arange(3))
    averager = EpochAverager(6)
    assert [e for e in (1.0, 3.0, 4.0, 5.0, 6.0) if averager.is_due(e)] == [5.0, 6.0]
    for value in (1.0, 5.0):
        with torch.no_grad():
            model.weight.fill_(value)
        averager.add(model, epoch=value)
    mean = averager.averaged()
    assert torch.allclose(mean["weight"], torch.full((1, 2), 3.0)) and "ids" not in mean
    assert EpochAverager(6).averaged() == {}


class FakeTrainer:
    """A one-weight model whose validation macro-F1 is a function of that weight."""

    def __init__(self, weight: float, global_step: int = 10, max_steps: int = 10) -> None:
        self.model = torch.nn.Linear(1, 1, bias=False)
        with torch.no_grad():
            self.model.weight.fill_(weight)
        self.state = SimpleNamespace(global_step=global_step, max_steps=max_steps)

    def evaluate(self) -> dict:
        return {"eval_macro_f1": 1 - abs(self.model.weight.item() - 2), "eval_accuracy": 0.0}


def averager_of(planned: float, samples: dict[float, float]) -> EpochAverager:
    averager = EpochAverager(planned)
    for epoch, weight in samples.items():
        model = torch.nn.Linear(1, 1, bias=False)
        with torch.no_grad():
            model.weight.fill_(weight)
        averager.add(model, epoch)
    return averager


def test_the_average_replaces_the_best_checkpoint_without_a_validation_vote() -> None:
    trainer = FakeTrainer(2.0)  # the best checkpoint scores 1.0 on validation
    choice, metrics = finish_weights(trainer, averager_of(6, {5.0: 1.0, 6.0: 4.0}), enabled=True)
    assert choice.kept == "average" and trainer.model.weight.item() == 2.5
    assert metrics["eval_macro_f1"] == 0.5 and choice.best_checkpoint_f1 == 1.0 and choice.average_f1 == 0.5
    assert choice.as_dict()["averaged_epochs"] == [5.0, 6.0]


def test_the_best_checkpoint_stays_when_averaging_would_mislead() -> None:
    cases = {
        "off": (FakeTrainer(1.0), averager_of(6, {5.0: 3.0, 6.0: 3.0}), False, "off"),
        "stopped": (FakeTrainer(1.0, global_step=7), averager_of(6, {5.0: 3.0, 6.0: 3.0}), True, "early stopping"),
        "short": (FakeTrainer(1.0), averager_of(2, {2.0: 3.0}), True, "too few"),
        "resumed": (FakeTrainer(1.0), averager_of(6, {6.0: 3.0}), True, "resumed"),
    }
    for name, (trainer, averager, enabled, why) in cases.items():
        choice, metrics = finish_weights(trainer, averager, enabled)
        assert choice.kept == "best checkpoint" and why in choice.reason, name
        assert trainer.model.weight.item() == 1.0 and metrics["eval_macro_f1"] == 0.0, name


def test_a_real_fine_tune_saves_the_average_of_its_last_epochs(tmp_path: Path) -> None:
    artifacts = write_tiny_splits(tmp_path / "artifacts", per_label=4)
    out, off = tmp_path / "model", tmp_path / "model-off"
    common = ["--artifacts-dir", str(artifacts), "--epochs", "4", "--batch-size", "8", "--max-length", "16",
              "--checkpoint-dir", str(tmp_path / "ck"), "--patience", "4"]
    assert finetune_bert.main([*common, "--output-dir", str(out)]) == 0
    assert finetune_bert.main([*common, "--output-dir", str(off), "--no-average-weights"]) == 0
    cfg, cfg_off = (json.loads((d / "training_config.json").read_text()) for d in (out, off))
    averaging = cfg["weight_averaging"]
    assert averaging["kept"] == "average" and averaging["averaged_epochs"] == [3.0, 4.0]
    assert cfg["val_metrics"]["macro_f1"] == averaging["average_macro_f1"]
    assert cfg["hyperparameters"]["average_weights"] is True
    assert cfg_off["weight_averaging"]["kept"] == "best checkpoint" and "off" in cfg_off["weight_averaging"]["reason"]
    # Same seed and data: the saved weights differ only because one run averaged its last two epochs.
    saved, saved_off = (load_file(str(d / "model.safetensors")) for d in (out, off))
    assert not torch.equal(saved["classifier.weight"], saved_off["classifier.weight"])
    assert cfg["val_metrics"]["macro_f1"] > 0.6  # the average is still a working classifier (chance: 0.25)
