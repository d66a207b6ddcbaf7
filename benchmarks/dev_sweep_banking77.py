"""BANKING77's training file -> one JSON line: development accuracy of ways to pick the final weights.

The recipe sweep behind stage 4's checkpoint averaging (docs/training_recipe.md, "Checkpoint averaging").
The authors' test file is never read: per seed, a stratified 15% of train.csv is a development split,
10% of the rest validates, and the rest trains. A plain PyTorch loop with stage 4's recipe
(class-weighted loss, AdamW with weight decay 0.01, 6% warm-up, linear decay, batch 32, lr 1e-4, frozen
word embeddings, 14 epochs) keeps the weights at every epoch end, then scores on the development split
the best-validation epoch, the last epoch and the mean of the last 3, 5 and 7 epochs' weights.
--variant changes the training: llrd (layer-wise lr decay, top 2e-4, x0.85 a layer), unfrozen (trained
word embeddings), swa (decay to 0.25x by 60%, then held), dropout0, lr2e-4 (peak learning rate 2e-4),
reinit_pooler (the pooler's dense layer re-initialised: all-MiniLM-L6-v2 was trained through mean
pooling, so its pooler is a leftover), smoothing (label smoothing 0.1), val5 (5% of the rest
validates instead of 10%; the development split is the same), dropout2 (dropout 0.2 instead of 0.1),
head10x (the classifier layer at 10x the learning rate), tokmask (10% of the input tokens replaced by
[MASK] in each training batch) or cosine (cosine decay after the warm-up). With --epochs E the mean of
the last ceil(E/3) epochs is scored too, the share stage 4 averages. About 6 minutes a run on an H200 shared by
12 runs; about an hour on a 2-core CPU (one epoch took 258 s on an AMD EPYC with AVX-512, 2026-11-27: its
random batches are padded to their longest query, where stage 4 groups them by length).

    python benchmarks/dev_sweep_banking77.py --variant base --seed 0 --device cuda
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS = ("base", "llrd", "unfrozen", "swa", "dropout0", "lr2e-4", "reinit_pooler", "smoothing", "val5",
            "dropout2", "head10x", "tokmask", "cosine")
LR, BATCH, WARMUP, WEIGHT_DECAY = 1e-4, 32, 0.06, 0.01


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=VARIANTS, default="base")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=14)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "benchmarks" / "banking77" / "train.csv")
    parser.add_argument("--model", default=None, help="base model folder (default: BASE_MODEL)")
    parser.add_argument("--rows-per-intent", type=int, default=0, help="a smoke test on this many rows per intent")
    return parser.parse_args(argv)


def splits(frame: pd.DataFrame, seed: int, val_share: float = 0.10) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, validation, development), stratified by intent; development is 15% of the file."""
    from sklearn.model_selection import train_test_split

    rest, dev = train_test_split(frame, test_size=0.15, stratify=frame["category"], random_state=1000 + seed)
    train, val = train_test_split(rest, test_size=val_share, stratify=rest["category"], random_state=2000 + seed)
    return train, val, dev


class Run:
    """One fine-tune of `variant`, with the weights at every epoch end kept on the CPU."""

    def __init__(self, args: argparse.Namespace, labels: list[str]) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.args, self.torch = args, torch
        self.l2i = {label: i for i, label in enumerate(labels)}
        self.tokenizer = AutoTokenizer.from_pretrained(args.model)
        dropout = {"dropout0": 0.0, "dropout2": 0.2}.get(args.variant)
        extra = {} if dropout is None else dict(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            args.model, num_labels=len(labels), dtype=torch.float32, **extra).to(args.device)
        if args.variant != "unfrozen":
            self.model.get_input_embeddings().weight.requires_grad_(False)
        if args.variant == "reinit_pooler":
            pooler = self.model.base_model.pooler.dense
            pooler.weight.data.normal_(0.0, self.model.config.initializer_range)
            pooler.bias.data.zero_()

    def encode(self, frame: pd.DataFrame) -> tuple[list[list[int]], np.ndarray]:
        ids = self.tokenizer([str(t).strip() for t in frame["text"]], truncation=True, max_length=64)["input_ids"]
        return ids, np.array([self.l2i[label] for label in frame["category"]])

    def pad(self, rows: list[list[int]]):
        torch = self.torch
        ids = torch.zeros(len(rows), max(len(r) for r in rows), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, row in enumerate(rows):
            ids[i, :len(row)], mask[i, :len(row)] = torch.tensor(row), 1
        return ids.to(self.args.device), mask.to(self.args.device)

    def predict(self, rows: list[list[int]]) -> np.ndarray:
        self.model.eval()
        out = []
        with self.torch.no_grad():
            for i in range(0, len(rows), 256):
                ids, mask = self.pad(rows[i:i + 256])
                out.append(self.model(input_ids=ids, attention_mask=mask).logits.argmax(-1).cpu().numpy())
        self.model.train()
        return np.concatenate(out)

    def optimizer(self):
        """AdamW with one group per tensor, each with its own base learning rate."""
        top = 2e-4 if self.args.variant in ("llrd", "lr2e-4") else LR
        decay = 0.85 if self.args.variant == "llrd" else 1.0
        layers = self.model.config.num_hidden_layers
        groups = []
        for name, param in self.model.named_parameters():
            if not param.requires_grad:
                continue
            if ".layer." in name:
                scale = decay ** (layers - 1 - int(name.split(".layer.")[1].split(".")[0]))
            else:
                scale = decay ** layers if "embeddings" in name else 1.0
            if self.args.variant == "head10x" and name.startswith("classifier."):
                scale = 10.0
            no_decay = "bias" in name or "LayerNorm" in name
            groups.append({"params": [param], "lr": top * scale, "base": top * scale,
                           "weight_decay": 0.0 if no_decay else WEIGHT_DECAY})
        return self.torch.optim.AdamW(groups, lr=top, fused=self.args.device.startswith("cuda"))

    def schedule(self, step: int, total: int) -> float:
        warm = int(WARMUP * total)
        if step < warm:
            return step / max(1, warm)
        if self.args.variant == "swa":
            knee = int(0.6 * total)
            return 0.25 if step >= knee else 1.0 - 0.75 * (step - warm) / max(1, knee - warm)
        if self.args.variant == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
        return max(0.0, (total - step) / max(1, total - warm))

    def train(self, train: tuple, val: tuple) -> tuple[list[dict], list[float]]:
        """Weights and validation macro-F1 at every epoch end."""
        from sklearn.metrics import f1_score

        torch, (ids, y) = self.torch, train
        counts = np.maximum(np.bincount(y, minlength=len(self.l2i)), 1).astype(float)
        weight = torch.tensor(len(y) / (len(self.l2i) * counts), dtype=torch.float32, device=self.args.device)
        smoothing = 0.1 if self.args.variant == "smoothing" else 0.0
        loss_fn, opt = torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=smoothing), self.optimizer()
        total, step = math.ceil(len(ids) / BATCH) * self.args.epochs, 0
        rng, snapshots, scores = np.random.default_rng(self.args.seed), [], []
        for _ in range(self.args.epochs):
            order = rng.permutation(len(ids))
            for start in range(0, len(order), BATCH):
                batch = order[start:start + BATCH]
                inputs, mask = self.pad([ids[i] for i in batch])
                if self.args.variant == "tokmask":
                    inputs = self.mask_tokens(inputs, mask)
                for group in opt.param_groups:
                    group["lr"] = group["base"] * self.schedule(step, total)
                logits = self.model(input_ids=inputs, attention_mask=mask).logits
                loss_fn(logits, torch.tensor(y[batch], device=self.args.device)).backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
                step += 1
            scores.append(float(f1_score(val[1], self.predict(val[0]), average="macro")))
            snapshots.append({k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()})
        return snapshots, scores

    def mask_tokens(self, inputs, mask):
        """10% of the tokens other than [CLS], [SEP] and padding replaced by [MASK]."""
        torch, tok = self.torch, self.tokenizer
        real = mask.bool() & (inputs != tok.cls_token_id) & (inputs != tok.sep_token_id)
        drop = real & (torch.rand(inputs.shape, device=inputs.device) < 0.10)
        return inputs.masked_fill(drop, tok.mask_token_id)

    def accuracy(self, weights: dict, data: tuple) -> float:
        self.model.load_state_dict(weights)
        return float((self.predict(data[0]) == data[1]).mean())


def mean_of(states: list[dict]) -> dict:
    return {k: (sum(s[k].float() for s in states) / len(states)).to(states[0][k].dtype) for k in states[0]}


def sweep(args: argparse.Namespace) -> dict:
    import torch
    from sklearn.metrics import f1_score

    torch.manual_seed(args.seed)
    frame = pd.read_csv(args.data)
    if args.rows_per_intent:
        frame = frame.groupby("category").head(args.rows_per_intent)
    train, val, dev = splits(frame, args.seed, 0.05 if args.variant == "val5" else 0.10)
    run = Run(args, sorted(frame["category"].unique()))
    train_xy, val_xy, dev_xy = run.encode(train), run.encode(val), run.encode(dev)
    started = time.time()
    snapshots, scores = run.train(train_xy, val_xy)
    best = int(np.argmax(scores))
    result = {"variant": args.variant, "seed": args.seed, "epochs": args.epochs, "best_epoch": best + 1,
              "val_by_epoch": [round(s, 4) for s in scores],
              "dev_best": run.accuracy(snapshots[best], dev_xy), "dev_last": run.accuracy(snapshots[-1], dev_xy)}
    for k in sorted({3, 5, 7, math.ceil(args.epochs / 3)}):
        average = mean_of(snapshots[-k:])
        result[f"dev_avg{k}"] = run.accuracy(average, dev_xy)
        result[f"val_avg{k}"] = float(f1_score(val_xy[1], run.predict(val_xy[0]), average="macro"))
    result.update(val_best=scores[best], train_rows=len(train), dev_rows=len(dev), secs=round(time.time() - started, 1))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.model is None:
        import config  # here, not at the top: a GPU machine without the pipeline's requirements passes --model

        args.model = config.get_settings().base_model
    print(json.dumps(sweep(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
