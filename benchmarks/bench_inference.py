"""A model folder -> a printed table: inference speed of every backend vs a plain transformers pipeline.

Side by side in one run on this CPU: single-message p50/p99 latency and throughput, and batch
throughput, for `transformers.pipeline("text-classification")`, IntentClassifier on PyTorch, ONNX
Runtime fp32 and ONNX Runtime int8. Single-message timings are interleaved (each message goes
through every backend in turn) so load from other processes hits all backends alike.
When ARTIFACTS_DIR/splits/test.csv exists and matches the model's labels, it also reports test
macro-F1 for torch, fp32 and int8 (target: int8 costs <= 0.5 points). Targets: >= 3x the
pipeline's single-message throughput.

    python benchmarks/bench_inference.py --model-dir artifacts/bert_intent_model
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config import get_settings  # noqa: E402
from intent_pipeline import backends  # noqa: E402
from intent_pipeline.artifacts import Artifacts, ModelFiles  # noqa: E402
from intent_pipeline.cli import run_cli  # noqa: E402
from intent_pipeline.errors import PipelineError  # noqa: E402
from intent_pipeline.logging_setup import setup_logging  # noqa: E402
from intent_pipeline.onnx_export import export_onnx, onnx_file, stale_reason  # noqa: E402
from intent_pipeline.predict import IntentClassifier  # noqa: E402
from intent_pipeline.registry import resolve_model_source  # noqa: E402

log = logging.getLogger("bench_inference")

SAMPLE_TEXTS = (
    "Where is my order? It was supposed to arrive yesterday",
    "I want a refund for the headphones",
    "can u change my delivery address pls",
    "How do I reset my password",
    "The item arrived broken, what now?",
    "cancel my subscription",
    "Do you ship to Canada?",
    "my card was charged twice for the same order, please fix this asap",
    "hi",
    "What are your opening hours on sunday",
)
BACKENDS = backends.BACKEND_NAMES


def pick_model_dir(arg: Path | None) -> Path:
    if arg is not None:
        return arg
    settings = get_settings()
    if ModelFiles.from_settings(settings).is_model():
        return settings.model_dir
    return resolve_model_source(settings)


def load_texts(n: int, test_csv: Path) -> list[str]:
    """Real test messages when the splits exist (realistic lengths), else built-in samples."""
    if test_csv.is_file():
        import pandas as pd

        texts = pd.read_csv(test_csv)["text"].astype(str).tolist()
        if texts:
            return [texts[i % len(texts)] for i in range(n)]
    return [SAMPLE_TEXTS[i % len(SAMPLE_TEXTS)] + ("" if i < len(SAMPLE_TEXTS) else f" #{i}") for i in range(n)]


def load_backends(model_dir: Path, threads: int, with_pipeline: bool) -> dict[str, Callable[[list[str]], object]]:
    """name -> a function scoring a list of texts, every backend on the same model."""
    import torch

    torch.set_num_threads(threads)
    runners: dict[str, Callable[[list[str]], object]] = {}
    if with_pipeline:
        from transformers import pipeline

        pipe = pipeline("text-classification", model=str(model_dir), device=-1)
        runners["pipeline"] = lambda texts: pipe(texts, batch_size=64, truncation=True)
    for backend in BACKENDS:
        clf = IntentClassifier.load(model_dir, backend=backend, num_threads=threads)
        if clf.backend != backend:
            log.warning("skipping %s: not available (see the warning above)", backend)
            continue
        runners[backend] = lambda texts, clf=clf: clf.predict_proba(texts)
    return runners


def bench_single(runners: dict[str, Callable], texts: list[str], warmup: int = 10) -> dict[str, np.ndarray]:
    """Per-message latencies in ms, round-robin over the backends."""
    for name, run in runners.items():
        for text in texts[:warmup]:
            run([text])
    latencies: dict[str, list[float]] = {name: [] for name in runners}
    for text in texts:
        for name, run in runners.items():
            start = time.perf_counter()
            run([text])
            latencies[name].append((time.perf_counter() - start) * 1000)
    return {name: np.asarray(values) for name, values in latencies.items()}


def bench_batch(runners: dict[str, Callable], texts: list[str], rounds: int) -> dict[str, float]:
    """Messages per second scoring `texts` in one call (batches of 64), best of `rounds`."""
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            run(texts)
            rate = len(texts) / (time.perf_counter() - start)
            best[name] = max(best.get(name, 0.0), rate)
    return best


def macro_f1_report(model_dir: Path, test_csv: Path, threads: int, limit: int) -> list[str]:
    """Test macro-F1 per backend, or one line saying why it was skipped."""
    if not test_csv.is_file():
        return [f"macro-F1: skipped ({test_csv} not found: run prepare_data.py and finetune_bert.py)"]
    import pandas as pd
    from sklearn.metrics import f1_score

    test = pd.read_csv(test_csv)
    if limit:
        test = test.sample(n=min(limit, len(test)), random_state=0)
    lines, scores = [], {}
    for backend in BACKENDS:
        clf = IntentClassifier.load(model_dir, backend=backend, num_threads=threads)
        if clf.backend != backend:
            continue
        if not set(test["label"]) <= set(clf.labels):
            return [f"macro-F1: skipped (labels in {test_csv} do not match the model's)"]
        predicted = [clf.labels[i] for i in clf.predict_proba(test["text"].astype(str).tolist()).argmax(axis=1)]
        scores[backend] = 100 * f1_score(test["label"], predicted, average="macro")
        lines.append(f"macro-F1 {backend:<10} {scores[backend]:6.2f}  (n={len(test)})")
    if "onnx" in scores and "onnx-int8" in scores:
        cost = scores["onnx"] - scores["onnx-int8"]
        lines.append(f"int8 quantization cost: {cost:+.2f} points (target <= 0.50): {'OK' if cost <= 0.5 else 'MISSED'}")
    return lines


def print_report(single: dict[str, np.ndarray], batch: dict[str, float], batch_size: int) -> None:
    print(f"\n{'backend':<10} {'p50 ms':>8} {'p99 ms':>8} {'single msg/s':>13} {'batch msg/s':>12} {'x pipeline':>11}")
    base = 1000 / single["pipeline"].mean() if "pipeline" in single else None
    for name, lat in single.items():
        rate = 1000 / lat.mean()
        ratio = f"{rate / base:10.2f}x" if base else "-"
        print(f"{name:<10} {np.percentile(lat, 50):8.2f} {np.percentile(lat, 99):8.2f} {rate:13.1f} "
              f"{batch.get(name, float('nan')):12.1f} {ratio:>11}")
    if base:
        best = max((n for n in single if n != "pipeline"), key=lambda n: 1000 / single[n].mean())
        speedup = (1000 / single[best].mean()) / base
        print(f"\nbest single-message backend: {best}, {speedup:.2f}x the plain pipeline (target >= 3x): "
              f"{'OK' if speedup >= 3 else 'MISSED'}")
    print(f"(single = one message per call, mean-based msg/s; batch = {batch_size} messages per call)")


def main(argv: Sequence[str] | None = None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="model folder (default: MODEL_DIR if trained, else the MODEL_SOURCE release)")
    parser.add_argument("--messages", type=int, default=200, help="single-message calls per backend (default 200)")
    parser.add_argument("--batch-messages", type=int, default=512, help="messages in the batch test (default 512)")
    parser.add_argument("--rounds", type=int, default=3, help="batch test repetitions, best kept (default 3)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads per backend")
    parser.add_argument("--export", action="store_true", help="export ONNX first if missing or stale")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the transformers.pipeline baseline")
    parser.add_argument("--f1-limit", type=int, default=0, help="score at most this many test rows (0 = all)")
    args = parser.parse_args(argv)
    setup_logging("WARNING")
    model_dir = pick_model_dir(args.model_dir)
    if not ModelFiles(model_dir).is_model():
        raise PipelineError(f"no model at {model_dir}: pass --model-dir")
    if args.export and (not onnx_file(model_dir, "onnx-int8").is_file() or stale_reason(model_dir)):
        export_onnx(model_dir, quantize=True)
    test_csv = Artifacts.from_settings(settings).split("test")
    print(f"model {model_dir} · {args.threads} threads · {os.cpu_count()} CPUs visible")
    runners = load_backends(model_dir, args.threads, not args.no_pipeline)
    single = bench_single(runners, load_texts(args.messages, test_csv))
    batch = bench_batch(runners, load_texts(args.batch_messages, test_csv), args.rounds)
    print_report(single, batch, 64)
    print()
    for line in macro_f1_report(model_dir, test_csv, args.threads, args.f1_limit):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
