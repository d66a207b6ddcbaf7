"""The whole pipeline in one command: stages 1-6 on the configured settings, then the app.

raw CSV -> ingest_clean.py -> load_to_mysql.py -> prepare_data.py -> finetune_bert.py
        -> export_bert_metrics.py -> push_model.py -> `streamlit run app.py`

Each stage runs as its own process, exactly as a user would run it. A stage is skipped when it
already completed with the same inputs and settings (recorded in ARTIFACTS_DIR/pipeline_state.json
after it succeeds); every stage writes its outputs atomically, so an interrupted run leaves the
previous outputs intact and a re-run picks up at the first stage that did not complete.
`--force` re-runs everything; `--fast` trains briefly on a subset to show the whole flow in minutes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from config import PROJECT_ROOT, Settings, get_settings
from intent_pipeline.io import PipelineError, run_cli, setup_logging, sha256_file, write_json_atomic

log = logging.getLogger("run_pipeline")

STATE_FILE = "pipeline_state.json"
FAST_TRAIN_ROWS = 3000
FAST_EPOCHS = "1"


@dataclass(frozen=True)
class Stage:
    name: str
    script: str
    args: tuple[str, ...] = ()
    # settings whose values change this stage's output (part of its completion key)
    depends_on: tuple[str, ...] = ()


def pipeline_stages(fast: bool) -> list[Stage]:
    train_args = ("--max-train-rows", str(FAST_TRAIN_ROWS), "--epochs", FAST_EPOCHS) if fast else ()
    return [
        Stage("ingest", "ingest_clean.py", (), ("raw_data_file", "cleaned_data_file", "spacy_model")),
        Stage("load", "load_to_mysql.py", ("--replace",), ("database_url",)),
        Stage("prepare", "prepare_data.py", (), ("seed", "val_ratio", "test_ratio", "artifacts_dir")),
        Stage(
            "finetune",
            "finetune_bert.py",
            train_args,
            ("base_model", "epochs", "batch_size", "learning_rate", "max_length", "augment", "class_weights", "model_dir"),
        ),
        Stage("evaluate", "export_bert_metrics.py", (), ("model_dir",)),
        Stage("release", "push_model.py", (), ("registry_dir", "hf_repo_id")),
    ]


def stage_keys(stages: Sequence[Stage], settings: Settings, fast: bool) -> dict[str, str]:
    """A key per stage that changes when its inputs or any earlier stage's inputs change."""
    if not settings.raw_data_file.is_file():
        raise PipelineError(f"raw data file not found: {settings.raw_data_file} (set RAW_DATA_FILE)")
    previous = sha256_file(settings.raw_data_file)
    keys: dict[str, str] = {}
    for stage in stages:
        material = {name: str(getattr(settings, name)) for name in stage.depends_on}
        material.update(previous=previous, stage=stage.name, args=list(stage.args), fast=fast)
        previous = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
        keys[stage.name] = previous
    return keys


def load_state(path: Path) -> dict[str, str]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def run_stage(stage: Stage) -> None:
    command = [sys.executable, str(PROJECT_ROOT / stage.script), *stage.args]
    log.info("stage %s: %s", stage.name, " ".join(command[1:]))
    started = time.monotonic()
    result = subprocess.run(command, cwd=PROJECT_ROOT)
    if result.returncode != 0:
        raise PipelineError(
            f"stage {stage.name} ({stage.script}) failed with exit code {result.returncode}; "
            "fix the error above and re-run: completed stages are skipped"
        )
    log.info("stage %s done in %.1f s", stage.name, time.monotonic() - started)


def start_app(port: int) -> int:
    command = [
        sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "app.py"),
        "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ]
    print(f"\nPipeline complete. Starting the dashboard at http://localhost:{port}  (Ctrl+C to stop)\n", flush=True)
    try:
        return subprocess.call(command, cwd=PROJECT_ROOT)
    except KeyboardInterrupt:
        return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fast", action="store_true",
                        help=f"train {FAST_EPOCHS} epoch on at most {FAST_TRAIN_ROWS} rows: the whole flow in minutes")
    parser.add_argument("--force", action="store_true", help="re-run every stage even if it already completed")
    parser.add_argument("--no-app", action="store_true", help="stop after the release instead of starting the app")
    parser.add_argument("--port", type=int, default=8501, help="port for the Streamlit app (default 8501)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = get_settings()
    setup_logging(settings.log_level)
    stages = pipeline_stages(args.fast)
    keys = stage_keys(stages, settings, args.fast)
    state_path = settings.artifacts_dir / STATE_FILE
    state = {} if args.force else load_state(state_path)
    upstream_ran = False
    for stage in stages:
        if not upstream_ran and state.get(stage.name) == keys[stage.name]:
            log.info("stage %s: up to date, skipped", stage.name)
            continue
        run_stage(stage)
        upstream_ran = True
        state[stage.name] = keys[stage.name]
        write_json_atomic(state_path, state)
    if args.no_app:
        print("\nPipeline complete. Start the dashboard with: streamlit run app.py", flush=True)
        return 0
    return start_app(args.port)


if __name__ == "__main__":
    sys.exit(run_cli(main))
