"""BANKING77's training file -> printed CPU seconds per training step: all-MiniLM-L6-v2 against an
MPNet-base-sized model (all-mpnet-base-v2's architecture, random weights: only the arithmetic is timed).

Why: the registry's one larger candidate base model, all-mpnet-base-v2, would have to fit BANKING77's
training budget on a 2-core CPU (docs/training_recipe.md, "What the recipe does now"). Batches of 32
random training queries, padded to their longest, AdamW, word embeddings frozen as in stage 4; the mean
of the steps after two warm-up steps.

    python benchmarks/step_time_base_models.py --steps 12
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BATCH, WARM_STEPS = 32, 2


def seconds_per_step(model, batches: list) -> float:
    import torch

    model.get_input_embeddings().weight.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    labels = torch.randint(0, model.config.num_labels, (BATCH,))
    times = []
    for batch in batches:
        started = time.perf_counter()
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        torch.nn.functional.cross_entropy(logits, labels[:len(logits)]).backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - started)
    return sum(times[WARM_STEPS:]) / max(1, len(times) - WARM_STEPS)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "benchmarks" / "banking77" / "train.csv")
    args = parser.parse_args(argv)

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, MPNetConfig, MPNetForSequenceClassification

    import config

    torch.manual_seed(0)
    base = config.get_settings().base_model
    tokenizer = AutoTokenizer.from_pretrained(base)
    texts = pd.read_csv(args.data)["text"].sample(BATCH * args.steps, random_state=0).tolist()
    batches = [tokenizer(texts[i:i + BATCH], padding=True, return_tensors="pt") for i in range(0, len(texts), BATCH)]
    models = {"all-MiniLM-L6-v2": AutoModelForSequenceClassification.from_pretrained(base, num_labels=77),
              "MPNet-base (random weights)": MPNetForSequenceClassification(MPNetConfig(vocab_size=30527, num_labels=77))}
    results = {}
    for name, model in models.items():
        results[name] = seconds_per_step(model, batches)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"{name:<28} {params:6.1f}M parameters  {results[name]:.3f} s/step  ({torch.get_num_threads()} threads)")
    ratio = results["MPNet-base (random weights)"] / results["all-MiniLM-L6-v2"]
    print(f"MPNet-base / MiniLM-L6: {ratio:.1f}x the time per step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
