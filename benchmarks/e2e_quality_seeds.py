"""Measure the end-to-end quality test's numbers over several seeds: the evidence for its floors.

Runs the test's exact stages-1-5 run (tests/conftest.py: run_stages_1_to_5, the same slice size and
training arguments) for each seed and prints test macro-F1, accuracy, noisy macro-F1 and stage times.

    python benchmarks/e2e_quality_seeds.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conftest import PIPELINE_ROWS_PER_INTENT, run_stages_1_to_5  # noqa: E402


def cpu_seconds() -> float:
    """User + system CPU time of the finished stage processes so far (wall time on a busy machine misleads)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rows-per-intent", type=int, default=PIPELINE_ROWS_PER_INTENT)
    args = parser.parse_args(argv)
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            run = run_stages_1_to_5(Path(tmp), rows_per_intent=args.rows_per_intent, seed=seed, timeout_s=7200)
            metrics = json.loads((run.artifacts / "metrics.json").read_text())
            print(json.dumps({"seed": seed, "rows_per_intent": args.rows_per_intent,
                              "test_n": metrics["test"]["n"], "macro_f1": round(metrics["macro_f1"], 4),
                              "accuracy": round(metrics["accuracy"], 4),
                              "noisy_macro_f1": round(metrics["noisy_macro_f1"], 4),
                              "weakest": metrics["weakest_classes"][:2], "wall_s": run.stage_seconds,
                              "children_cpu_s": round(cpu_seconds(), 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
