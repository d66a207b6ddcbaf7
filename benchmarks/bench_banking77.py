"""BANKING77 through the pipeline's own stages: does the default training recipe hold on hard data?

BANKING77 (data/benchmarks/banking77, CC BY 4.0, see docs/datasets.md) has 77 fine-grained banking
intents, 10,003 training and 3,080 test queries. Stage 1 masks train.csv (columns text,category),
stage 2 loads it into a temporary SQLite file; then, per seed, stage 3 splits it with the authors'
test.csv as the fixed test file (FIXED_LEAK_CHECK=exact: the authors' training split, less rows
identical to a test query), stage 4 fine-tunes with the default recipe (EPOCHS=auto) and stage 5
scores the official test set. Prints one JSON line per seed, then the mean.

Reference: a fine-tuned BERT-base reaches 93.66% test accuracy (Casanueva et al. 2020, "Efficient
Intent Detection with Dual Sentence Encoders", Table 2, full training data). Targets: within 1 point
of it, in under 30 minutes of training on a 2-core CPU.

    python benchmarks/bench_banking77.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config import PROJECT_ROOT, child_env  # noqa: E402
from intent_pipeline.stage_runner import run_script  # noqa: E402

DATA = PROJECT_ROOT / "data" / "benchmarks" / "banking77"
PUBLISHED_BERT_BASE_ACCURACY = 0.9366


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def stage_env(workdir: Path, seed: int, extra: dict[str, str]) -> dict[str, str]:
    """The environment that points every stage at this benchmark's own files."""
    return child_env(RAW_DATA_FILE=str(DATA / "train.csv"), TEST_FILE=str(DATA / "test.csv"),
                     LABEL_COLUMN="category", TEXT_COLUMN="text", FIXED_LEAK_CHECK="exact",
                     CLEANED_DATA_FILE=str(workdir / "cleaned.csv"), DATABASE_URL=f"sqlite:///{workdir / 'bench.db'}",
                     ARTIFACTS_DIR=str(workdir / f"artifacts-{seed}"), MODEL_DIR=str(workdir / f"model-{seed}"),
                     MLFLOW_TRACKING="false", SEED=str(seed), **extra)


def run_seed(workdir: Path, seed: int, extra: dict[str, str]) -> dict:
    env = stage_env(workdir, seed, extra)
    run_script("prepare", "prepare_data.py", (), env)
    cpu_before, started = children_cpu_s(), time.monotonic()
    run_script("finetune", "finetune_bert.py", (), env)
    train_wall, train_cpu = time.monotonic() - started, children_cpu_s() - cpu_before
    run_script("evaluate", "export_bert_metrics.py", (), env)
    metrics = json.loads((Path(env["ARTIFACTS_DIR"]) / "metrics.json").read_text())
    cfg = json.loads((Path(env["MODEL_DIR"]) / "training_config.json").read_text())
    return {"seed": seed, "test_n": metrics["test"]["n"], "accuracy": round(metrics["accuracy"], 4),
            "macro_f1": round(metrics["macro_f1"], 4), "train_rows": cfg["train_rows"],
            "epochs_cap": cfg["hyperparameters"]["epochs"], "epoch_plan": cfg["hyperparameters"]["epoch_plan"],
            "trainer_runtime_s": cfg["train_runtime_s"], "finetune_wall_s": round(train_wall, 1),
            "finetune_cpu_s": round(train_cpu, 1), "val_macro_f1": round(cfg["val_metrics"].get("macro_f1", 0), 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                        help="extra settings for every stage, e.g. AUGMENT=false EPOCHS=10 (recipe comparisons)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the files here (default: a temp folder)")
    args = parser.parse_args(argv)
    extra = dict(item.split("=", 1) for item in args.set)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        env = stage_env(workdir, args.seeds[0], extra)
        started = time.monotonic()
        run_script("ingest", "ingest_clean.py", (), env)
        run_script("load", "load_to_mysql.py", ("--replace",), env)
        print(json.dumps({"stages_1_2_wall_s": round(time.monotonic() - started, 1)}), flush=True)
        results = []
        for seed in args.seeds:
            results.append(run_seed(workdir, seed, extra))
            print(json.dumps(results[-1]), flush=True)
    accuracies = [r["accuracy"] for r in results]
    print(json.dumps({
        "seeds": args.seeds, "settings": extra, "mean_accuracy": round(statistics.mean(accuracies), 4),
        "sd_accuracy": round(statistics.stdev(accuracies), 4) if len(accuracies) > 1 else 0.0,
        "mean_macro_f1": round(statistics.mean(r["macro_f1"] for r in results), 4),
        "published_bert_base_accuracy": PUBLISHED_BERT_BASE_ACCURACY,
        "gap_points": round(100 * (PUBLISHED_BERT_BASE_ACCURACY - statistics.mean(accuracies)), 2),
        "max_finetune_wall_s": max(r["finetune_wall_s"] for r in results),
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
