"""Stage 4's weight averaging: which steps are sampled, the mean, and the validation choice."""

from __future__ import annotations

import json
from pathlib import Path

import torch

import finetune_bert
from conftest import write_tiny_splits
from intent_pipeline.weight_averaging import SAMPLES_PER_EPOCH, WeightAverager, choose_weights


def test_samples_cover_the_second_half_ten_times_per_epoch() -> None:
    averager = WeightAverager(0.5)
    steps = [s for s in range(1, 1401) if averager.due(s, 1400, 14)]
    assert steps[0] == 700 and steps[-1] == 1400
    assert len(steps) == 7 * SAMPLES_PER_EPOCH + 1  # every 10 steps from the half, and the last one
    assert not [s for s in range(1, 11) if WeightAverager(1.0).due(s, 10, 1)][:-1]  # 1: only the last step
    assert WeightAverager(0.5).averaged() == {}


def test_the_average_is_the_mean_of_the_samples_and_ignores_integer_buffers() -> None:
    model = torch.nn.Linear(2, 1)
    model.register_buffer("ids", torch.arange(3))
    averager = WeightAverager(0.5)
    for value in (1.0, 2.0, 6.0):
        with torch.no_grad():
            model.weight.fill_(value)
        averager.add(model, epoch=value)
    mean = averager.averaged()
    assert torch.allclose(mean["weight"], torch.full((1, 2), 3.0)) and "ids" not in mean
    assert (averager.first_epoch, averager.last_epoch, averager.count) == (1.0, 6.0, 3)


class FakeTrainer:
    """Scores a one-weight model: validation macro-F1 is a function of that weight."""

    def __init__(self, weight: float, score) -> None:
        self.model = torch.nn.Linear(1, 1, bias=False)
        with torch.no_grad():
            self.model.weight.fill_(weight)
        self.score = score

    def evaluate(self) -> dict:
        return {"eval_macro_f1": self.score(self.model.weight.item()), "eval_accuracy": 0.0}


def averager_of(*weights: float) -> WeightAverager:
    averager = WeightAverager(0.5)
    for w in weights:
        model = torch.nn.Linear(1, 1, bias=False)
        with torch.no_grad():
            model.weight.fill_(w)
        averager.add(model, epoch=w)
    return averager


def test_the_average_is_kept_only_where_validation_scores_it_higher() -> None:
    better_near_two = FakeTrainer(1.0, lambda w: 1 - abs(w - 2))
    choice, metrics = choose_weights(better_near_two, averager_of(1.0, 3.0))
    assert choice.kept == "average" and better_near_two.model.weight.item() == 2.0
    assert metrics["eval_macro_f1"] == 1.0 and choice.best_checkpoint_f1 == 0.0

    better_near_one = FakeTrainer(1.0, lambda w: 1 - abs(w - 1))
    choice, metrics = choose_weights(better_near_one, averager_of(1.0, 3.0))
    assert choice.kept == "best checkpoint" and better_near_one.model.weight.item() == 1.0  # restored
    assert metrics["eval_macro_f1"] == 1.0 and choice.average_f1 == 0.0

    unchanged = FakeTrainer(1.0, lambda w: 0.5)
    choice, _ = choose_weights(unchanged, averager_of(4.0))  # one sample: no average to try
    assert choice.kept == "best checkpoint" and choice.average_f1 is None and unchanged.model.weight.item() == 1.0


def test_a_real_fine_tune_records_the_choice(tmp_path: Path) -> None:
    artifacts = write_tiny_splits(tmp_path / "artifacts", per_label=4)
    out = tmp_path / "model"
    argv = ["--artifacts-dir", str(artifacts), "--output-dir", str(out), "--epochs", "4", "--batch-size", "8",
            "--max-length", "16", "--checkpoint-dir", str(tmp_path / "ck"), "--average-from", "0.5"]
    assert finetune_bert.main(argv) == 0
    cfg = json.loads((out / "training_config.json").read_text())
    averaging = cfg["weight_averaging"]
    assert averaging["samples"] >= 2 and averaging["average_macro_f1"] is not None
    kept = averaging["average_macro_f1"] if averaging["kept"] == "average" else averaging["best_checkpoint_macro_f1"]
    assert kept == max(averaging["average_macro_f1"], averaging["best_checkpoint_macro_f1"])
    assert cfg["val_metrics"]["macro_f1"] == kept
    assert cfg["hyperparameters"]["average_weights_from"] == 0.5
