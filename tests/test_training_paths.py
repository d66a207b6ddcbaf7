"""Stage 4's hard paths on tiny real fine-tunes: an interrupted run resumed mid-epoch, class weights,
early stopping, frozen embeddings and the stratified subsample.

Runs go through `finetune_bert.main(argv)`; the tests only wrap `finetune_bert.build_trainer` to
add a callback (interrupt after step N, record steps) and to see the Trainer it built.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

import finetune_bert
import prepare_data
from intent_pipeline.training import subsample
from conftest import TRAINED_LABELS, write_tiny_splits

# 4 labels x 8 rows, batches of 8: 4 optimizer steps per epoch.
STEPS_PER_EPOCH = 4
TINY = ["--batch-size", "8", "--max-length", "16", "--lr", "1e-4", "--seed", "3"]
WORD_EMBEDDINGS = "bert.embeddings.word_embeddings.weight"


class InterruptAfter(TrainerCallback):
    """Ctrl+C right after the Trainer saved a checkpoint at `step` (a save is forced there, mid-epoch)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_save = True
        return control

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


class StepRecorder(TrainerCallback):
    def __init__(self):
        self.steps: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


class Trainers(list):
    """Every Trainer finetune_bert built in a test (each with a StepRecorder as `.recorder`);
    callbacks appended to `.extra` are added to the next one built."""

    def __init__(self):
        super().__init__()
        self.extra: list = []


@pytest.fixture
def trainers(monkeypatch: pytest.MonkeyPatch) -> Trainers:
    built = Trainers()
    original = finetune_bert.build_trainer

    def wrapped(*args, **kwargs):
        trainer = original(*args, **kwargs)
        trainer.recorder = StepRecorder()
        for callback in (trainer.recorder, *built.extra):
            trainer.add_callback(callback)
        built.extra.clear()
        built.append(trainer)
        return trainer

    monkeypatch.setattr(finetune_bert, "build_trainer", wrapped)
    return built


def _argv(artifacts: Path, out: Path, checkpoints: Path, *extra: str) -> list[str]:
    return ["--artifacts-dir", str(artifacts), "--output-dir", str(out), "--checkpoint-dir", str(checkpoints),
            *TINY, *extra]


def test_interrupted_run_resumes_at_its_step_and_matches_an_uninterrupted_run(tmp_path: Path, trainers: Trainers) -> None:
    artifacts = write_tiny_splits(tmp_path / "artifacts", per_label=8)
    epochs = ["--epochs", "2", "--patience", "5"]
    total = 2 * STEPS_PER_EPOCH
    interrupt_at = STEPS_PER_EPOCH + 2  # mid-way through epoch 2, after epoch 1's checkpoint

    # Uninterrupted reference run.
    assert finetune_bert.main(_argv(artifacts, tmp_path / "straight", tmp_path / "ck_straight", *epochs)) == 0
    assert trainers[-1].recorder.steps == list(range(1, total + 1))

    # The same run, stopped by Ctrl+C right after a checkpoint at step 6: no model is written.
    trainers.extra.append(InterruptAfter(interrupt_at))
    checkpoints = tmp_path / "ck_resumed"
    with pytest.raises(KeyboardInterrupt):
        finetune_bert.main(_argv(artifacts, tmp_path / "resumed", checkpoints, *epochs))
    assert trainers[-1].recorder.steps == list(range(1, interrupt_at + 1))
    assert not (tmp_path / "resumed").exists()
    saved = json.loads((checkpoints / f"checkpoint-{interrupt_at}" / "trainer_state.json").read_text())
    assert saved["global_step"] == interrupt_at

    # --resume continues at step 7 (not 1), skipping the batches of epoch 2 it already trained on.
    assert finetune_bert.main(_argv(artifacts, tmp_path / "resumed", checkpoints, *epochs, "--resume")) == 0
    resumed = trainers[-1]
    assert resumed.recorder.steps == list(range(interrupt_at + 1, total + 1))
    assert resumed.state.global_step == total

    # Same data order, same RNG state: the resumed model is the uninterrupted one, within float noise.
    straight = load_file(tmp_path / "straight" / "model.safetensors")
    again = load_file(tmp_path / "resumed" / "model.safetensors")
    assert straight.keys() == again.keys()
    worst = max(float((straight[k] - again[k]).abs().max()) for k in straight)
    assert worst < 1e-4, worst
    straight_cfg = json.loads((tmp_path / "straight" / "training_config.json").read_text())
    resumed_cfg = json.loads((tmp_path / "resumed" / "training_config.json").read_text())
    # Float noise can flip one near-tied validation answer of this barely-trained model (1 of 32 rows).
    assert resumed_cfg["val_metrics"]["loss"] == pytest.approx(straight_cfg["val_metrics"]["loss"], abs=1e-3)
    assert resumed_cfg["val_metrics"]["accuracy"] == pytest.approx(straight_cfg["val_metrics"]["accuracy"], abs=1.01 / 32)


def test_class_weights_are_balanced_and_reach_the_loss(tmp_path: Path, trainers: Trainers) -> None:
    train = pd.DataFrame({"label": ["a"] * 6 + ["b"] * 3 + ["c"] * 1})
    weights = prepare_data.class_weights(train, ["a", "b", "c"])
    # n / (k * count) = 10/18, 10/9, 10/3; scaled to mean 1 -> proportional to 1/count.
    raw = np.array([10 / 18, 10 / 9, 10 / 3])
    assert list(weights.values()) == pytest.approx(list(raw / raw.mean()), abs=1e-6)
    assert weights["c"] == pytest.approx(6 * weights["a"], rel=1e-5) and np.mean(list(weights.values())) == pytest.approx(1)

    artifacts = write_tiny_splits(tmp_path / "artifacts", per_label=4)
    planted = {label: float(i + 1) for i, label in enumerate(sorted(TRAINED_LABELS))}
    (artifacts / "class_weights.json").write_text(json.dumps(planted))
    assert finetune_bert.main(_argv(artifacts, tmp_path / "m", tmp_path / "ck", "--epochs", "1")) == 0
    trainer = trainers[-1]
    id2label = trainer.model.config.id2label
    assert trainer.class_weight_values == [planted[id2label[i]] for i in range(len(id2label))]

    # The loss the Trainer minimises is the weighted cross-entropy, not the plain one.
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(8)])
    trainer.model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, dict(batch))
        logits = trainer.model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    weight = torch.tensor(trainer.class_weight_values)
    assert float(loss) == pytest.approx(float(torch.nn.functional.cross_entropy(logits, batch["labels"], weight=weight)), rel=1e-5)
    assert float(loss) != pytest.approx(float(torch.nn.functional.cross_entropy(logits, batch["labels"])), rel=1e-3)

    assert finetune_bert.main(_argv(artifacts, tmp_path / "m2", tmp_path / "ck2", "--epochs", "1",
                                    "--no-class-weights")) == 0
    assert trainers[-1].class_weight_values is None


def test_early_stopping_ends_training_when_validation_stalls(tmp_path: Path, trainers: Trainers) -> None:
    artifacts = write_tiny_splits(tmp_path / "artifacts", per_label=4)  # 2 steps per epoch
    # A learning rate this small cannot move validation macro-F1: epoch 1 sets the best, epoch 2 does
    # not beat it, and with patience 1 training stops there instead of running all 8 epochs.
    argv = _argv(artifacts, tmp_path / "m", tmp_path / "ck", "--epochs", "8", "--patience", "1")
    argv[argv.index("--lr") + 1] = "1e-12"
    assert finetune_bert.main(argv) == 0
    state = trainers[-1].state
    evals = [e for e in state.log_history if "eval_macro_f1" in e]
    # One evaluation per epoch run (1 and 2), then finetune_bert's final one of the kept model.
    assert sorted({e["epoch"] for e in evals}) == [1.0, 2.0]
    assert len({e["eval_macro_f1"] for e in evals}) == 1
    assert state.epoch == pytest.approx(2.0) and state.global_step == 2 * 2
    cfg = json.loads((tmp_path / "m" / "training_config.json").read_text())
    assert cfg["hyperparameters"]["patience"] == 1 and cfg["hyperparameters"]["epochs"] == 8


def test_frozen_word_embeddings_stay_exactly_as_the_base_model(trained_model_dir: Path, tmp_path: Path) -> None:
    import config

    base = Path(config.get_settings().base_model)
    base_weights = load_file(next(base.glob("*.safetensors")))
    base_embeddings = next(v for k, v in base_weights.items() if k.endswith("embeddings.word_embeddings.weight"))
    trained = load_file(trained_model_dir / "model.safetensors")  # trained with the default: frozen
    assert torch.equal(trained[WORD_EMBEDDINGS], base_embeddings)
    layer = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(trained[f"bert.{layer}"], next(v for k, v in base_weights.items() if k.endswith(layer)))

    artifacts = write_tiny_splits(tmp_path / "artifacts", per_label=4)
    out = tmp_path / "unfrozen"
    argv = _argv(artifacts, out, tmp_path / "ck", "--epochs", "1", "--no-freeze-embeddings")
    argv[argv.index("--lr") + 1] = "1e-3"
    assert finetune_bert.main(argv) == 0
    assert not torch.equal(load_file(out / "model.safetensors")[WORD_EMBEDDINGS], base_embeddings)
    assert json.loads((out / "training_config.json").read_text())["hyperparameters"]["freeze_embeddings"] is False


def test_subsample_keeps_every_label_in_proportion() -> None:
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(200)],
                          "label": ["a"] * 120 + ["b"] * 60 + ["c"] * 18 + ["d"] * 2})
    small = subsample(frame, 50, seed=1)
    counts = small["label"].value_counts().to_dict()
    assert counts == {"a": 30, "b": 15, "c": 4, "d": 1}  # 25 % of each, rounded; a rare label keeps a row
    assert small["text"].is_unique and set(small["text"]) <= set(frame["text"])
    assert subsample(frame, 50, seed=1).equals(small)  # seeded
    assert not subsample(frame, 50, seed=2)["text"].equals(small["text"])
    assert list(small["label"]) != sorted(small["label"])  # shuffled, not grouped by label
    assert subsample(frame, 0, seed=1) is frame and subsample(frame, 500, seed=1) is frame


def test_max_train_rows_trains_on_the_stratified_subsample(tmp_path: Path, trainers: Trainers) -> None:
    artifacts = write_tiny_splits(tmp_path / "artifacts", per_label=12)  # 48 rows, 12 per label
    assert finetune_bert.main(_argv(artifacts, tmp_path / "m", tmp_path / "ck", "--epochs", "1",
                                    "--max-train-rows", "24")) == 0
    labels = trainers[-1].train_dataset.labels
    assert len(labels) == 24 and sorted(np.bincount(labels).tolist()) == [6, 6, 6, 6]
    assert json.loads((tmp_path / "m" / "training_config.json").read_text())["train_rows"] == 24
