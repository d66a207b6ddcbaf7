"""Weight averaging over the second half of training (SWA-style), kept only where validation agrees.

A fine-grained set's validation split is a few hundred rows, and the best-epoch checkpoint that early
stopping keeps is one noisy point of the trajectory. Averaging the weights the optimiser visits late in
training lands in a flatter region of the loss surface, which generalises better for compact
pre-trained models at no extra training cost (Lu et al. 2022, "Improving Generalization of Pre-trained
Language Models via Stochastic Weight Averaging"). The average is a candidate, not a given: after
training, stage 4 scores it on the validation split beside the best checkpoint and keeps whichever
scores higher (`choose_weights`), so the averaging can only win where the validation data says so.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Weights join the average this many times per epoch (step-level sampling, as in Lu et al.).
SAMPLES_PER_EPOCH = 10


@dataclass
class WeightAverager:
    """The running mean of a model's floating-point weights from `start_share` of the planned steps on,
    sampled SAMPLES_PER_EPOCH times per epoch (`callback()` hooks it into a Trainer). A resumed run
    averages the steps it ran."""

    start_share: float
    sums: dict | None = None
    count: int = 0
    first_epoch: float | None = None
    last_epoch: float | None = None

    def due(self, step: int, max_steps: int, epochs: float) -> bool:
        """Is the weight after `step` of `max_steps` (over `epochs` epochs) one of the averaged samples?"""
        if not max_steps or not epochs:
            return False
        start = math.ceil(self.start_share * max_steps)
        every = max(1, max_steps // max(1, math.ceil(epochs * SAMPLES_PER_EPOCH)))
        return step >= start and ((step - start) % every == 0 or step == max_steps)

    def callback(self):
        """A transformers TrainerCallback that feeds this averager after every due optimiser step."""
        from transformers import TrainerCallback

        averager = self

        class AveragingCallback(TrainerCallback):
            def on_step_end(self, args, state, control, model=None, **kwargs):
                if model is not None and averager.due(state.global_step, state.max_steps, state.num_train_epochs):
                    averager.add(model, state.epoch)

        return AveragingCallback()

    def add(self, model, epoch: float | None = None) -> None:
        import torch

        with torch.no_grad():
            weights = {k: v for k, v in model.state_dict().items() if v.is_floating_point()}
            if self.sums is None:
                self.sums = {k: v.detach().to("cpu", torch.float32, copy=True) for k, v in weights.items()}
            else:
                for k, v in weights.items():
                    self.sums[k].add_(v.detach().to("cpu", torch.float32))
        self.count += 1
        if epoch is not None:
            self.first_epoch = epoch if self.first_epoch is None else self.first_epoch
            self.last_epoch = epoch

    def averaged(self) -> dict:
        """The mean weights (floating-point tensors of the state dict), or {} before two samples."""
        if self.sums is None or self.count < 2:
            return {}
        return {k: v / self.count for k, v in self.sums.items()}


@dataclass(frozen=True)
class Choice:
    kept: str  # "average" or "best checkpoint"
    best_checkpoint_f1: float
    average_f1: float | None  # None: no average was formed (training too short, or stopped first)
    samples: int
    epochs: str  # the stretch of training that was averaged, e.g. "7.0-14.0"

    def as_dict(self) -> dict:
        return {"kept": self.kept, "best_checkpoint_macro_f1": self.best_checkpoint_f1,
                "average_macro_f1": self.average_f1, "samples": self.samples, "epochs": self.epochs}


def choose_weights(trainer, averager: WeightAverager, metric: str = "eval_macro_f1") -> tuple[Choice, dict]:
    """Leave in `trainer.model` whichever of its current weights (the best checkpoint, reloaded at the
    end of training) and the averaged weights scores higher on the validation split (ties: the average).
    Returns the choice and the kept weights' validation metrics."""
    best_metrics = trainer.evaluate()
    best_f1 = float(best_metrics[metric])
    average = averager.averaged()
    stretch = "" if averager.first_epoch is None else f"{averager.first_epoch:.1f}-{averager.last_epoch:.1f}"
    if not average:
        return Choice("best checkpoint", best_f1, None, averager.count, stretch), best_metrics
    best = _swap_in(trainer.model, average)
    average_metrics = trainer.evaluate()
    average_f1 = float(average_metrics[metric])
    keep_average = average_f1 >= best_f1
    if not keep_average:
        _swap_in(trainer.model, best)
    choice = Choice("average" if keep_average else "best checkpoint", best_f1, average_f1, averager.count, stretch)
    log.info("validation macro-F1: best checkpoint %.4f, weights averaged over epochs %s (%d samples) %.4f: "
             "keeping the %s", best_f1, stretch, averager.count, average_f1, choice.kept)
    return choice, average_metrics if keep_average else best_metrics


def _swap_in(model, weights: dict) -> dict:
    """Copy `weights` into `model` in place; returns the values they replaced."""
    import torch

    current = model.state_dict()
    replaced = {k: current[k].detach().clone() for k in weights}
    with torch.no_grad():
        for k, v in weights.items():
            current[k].copy_(v.to(current[k].dtype))
    return replaced
