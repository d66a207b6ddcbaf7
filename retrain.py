"""Retrain from reviewed feedback, champion/challenger style: approved corrections in the database +
the serving release -> a new release only if it is no worse (report in ARTIFACTS_DIR/retrain/).

Runs stages 3-5 when at least RETRAIN_MIN_CORRECTIONS approved corrections arrived since the serving
release (or with --force), keeping the serving release's test split frozen; scores both models on
that split, its noisy copy, the off-topic set (OFFTOPIC_EVAL_FILE, if present) and the gold set of
corrections never trained on; publishes (stage 6) only if no metric in GUARDED_METRICS drops by more
than PROMOTION_TOLERANCE. Exit codes: 0 published or nothing to do, 3 the champion was kept, 1 error.
Meant for cron or a systemd timer (docs/operations.md).

    python retrain.py            # only when enough corrections arrived
    python retrain.py --force    # now
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from config import get_settings
from intent_pipeline.cli import run_cli
from intent_pipeline.logging_setup import setup_logging
from intent_pipeline.retrain import retrain


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force", action="store_true", help="retrain now, whatever the number of new corrections")
    parser.add_argument("--epochs", type=float, default=None, help="training epochs for the challenger (default: EPOCHS)")
    parser.add_argument("--max-train-rows", type=int, default=None,
                        help="train the challenger on at most this many rows (quick trial runs)")
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs <= 0:
        parser.error("--epochs must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = get_settings()
    setup_logging(settings.log_level)
    outcome = retrain(settings, force=args.force, epochs=args.epochs, max_train_rows=args.max_train_rows)
    print(f"retrain: {outcome.message}")
    for path in outcome.files:
        print(f"  report: {path}")
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(run_cli(main))
