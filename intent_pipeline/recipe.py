"""How long stage 4 trains: an epoch budget scaled to the data, and when to stop early.

Two fixed epochs suit the seed's 15 well-separated intents (~850 clean training rows each as stage 3
writes them), and nothing harder: a 77-intent set with ~117 rows per intent needs 10-15 passes (see
docs/training_recipe.md for the measurements). So the budget is a number of training examples per
intent, turned into epochs for the data at hand and bounded on both sides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Below two passes the linear learning-rate decay has no room to settle, even on large data sets.
MIN_EPOCHS = 2


@dataclass(frozen=True)
class EpochPlan:
    epochs: float
    patience: int
    reason: str


def plan_epochs(train_rows: int, num_labels: int, epochs: float | None, patience: int,
                examples_per_intent: int, max_epochs: int) -> EpochPlan:
    """Epochs and early-stopping patience for `train_rows` rows of `num_labels` intents.

    `epochs=None` (EPOCHS=auto) scales the budget: `examples_per_intent * num_labels` training
    examples, at least MIN_EPOCHS and at most `max_epochs` passes. `patience=0` (auto) waits a third
    of the epochs: per-epoch validation scores on a few hundred rows are noisy, and the learning rate
    decays over the whole budget, so stopping at the first flat epoch cuts the best ones off.
    """
    if epochs is not None:
        chosen, reason = float(epochs), "EPOCHS/--epochs"
    else:
        needed = examples_per_intent * num_labels / max(1, train_rows)
        chosen = float(min(max_epochs, max(MIN_EPOCHS, math.ceil(needed))))
        reason = (f"auto: {examples_per_intent} examples per intent x {num_labels} intents over {train_rows} "
                  f"training rows, within [{MIN_EPOCHS}, {max_epochs}]")
    waited = patience if patience > 0 else max(2, math.ceil(chosen / 3))
    return EpochPlan(chosen, waited, reason)
