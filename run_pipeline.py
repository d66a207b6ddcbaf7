"""The whole pipeline in one command: stages 1-6 on the configured settings, then the app.

raw CSV -> ingest_clean.py -> load_to_mysql.py -> prepare_data.py -> finetune_bert.py
        -> export_bert_metrics.py -> push_model.py -> `streamlit run app.py`

Each stage runs as its own process, exactly as a user would run it. A stage is skipped when it
already completed with the same inputs and settings (recorded in ARTIFACTS_DIR/pipeline_state.json
after it succeeds); every stage writes its outputs atomically, so an interrupted run leaves the
previous outputs intact and a re-run picks up at the first stage that did not complete.
`--force` re-runs everything (do that after users gave feedback in the app, so stage 3 folds it in);
`--fast` trains briefly on a subset to show the whole flow in minutes. `--retrain` brings stages 1-2
up to date, then retrains champion/challenger style (retrain.py: stages 3-5 when enough approved
corrections arrived, or with --force; publishes only a model no worse than the serving one).

On a fresh clone, `python3 run_pipeline.py` first creates `.venv` with the pinned requirements
(intent_pipeline/venv.py) and re-runs itself there; `--no-venv` uses the current Python instead.
"""

from __future__ import annotations

import sys
from pathlib import Path

from intent_pipeline.venv import reexec_in_venv, running_in_venv  # standard library only

if __name__ == "__main__" and not running_in_venv() and "--no-venv" not in sys.argv:
    # A fresh clone has only Python and pip: create .venv with the pinned requirements, run in it.
    reexec_in_venv(Path(__file__).resolve(), sys.argv[1:])

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import subprocess  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, fields  # noqa: E402

from config import PROJECT_ROOT, ConfigError, Settings, check_setting_names, get_settings  # noqa: E402
from intent_pipeline import artifacts, auth, launch, registry  # noqa: E402
from intent_pipeline.artifacts import Artifacts, ModelFiles  # noqa: E402
from intent_pipeline.cli import run_cli  # noqa: E402
from intent_pipeline.errors import PipelineError  # noqa: E402
from intent_pipeline.files import sha256_file, write_json_atomic  # noqa: E402
from intent_pipeline.logging_setup import setup_logging  # noqa: E402
from intent_pipeline.stage_runner import run_script  # noqa: E402

log = logging.getLogger("run_pipeline")

FAST_TRAIN_ROWS = 3000
FAST_EPOCHS = "1"


@dataclass(frozen=True)
class Stage:
    name: str
    script: str
    args: tuple[str, ...] = ()
    # settings whose values change this stage's output (part of its completion key)
    depends_on: tuple[str, ...] = ()
    # a file the stage leaves behind: if it is gone, the stage runs again even if its key matches
    output: Callable[[Settings], Path] | None = None


# Settings whose values change each stage's output: part of its completion key, so changing one re-runs
# the stage (and every later one). Checked against `Settings` at import: a typo fails at once.
STAGE_SETTINGS = {
    "ingest": ("raw_data_file", "cleaned_data_file", "spacy_model", "max_text_chars", "artifacts_dir", "mask_unknown_ids",
               "text_column", "label_column"),
    "load": ("database_url",),
    "prepare": ("database_url", "seed", "val_ratio", "test_ratio", "augment", "augment_fraction", "train_group_cap",
                "artifacts_dir", "feedback_overrides_curated", "gold_share", "test_file", "val_file",
                "fixed_leak_check"),
    "finetune": ("base_model", "epochs", "max_epochs", "examples_per_intent", "batch_size", "learning_rate",
                 "weight_decay", "warmup_ratio", "early_stopping_patience", "average_weights", "max_length",
                 "class_weights", "freeze_embeddings", "seed", "model_dir"),
    "evaluate": ("model_dir", "artifacts_dir", "fallback_min_coverage", "oos_max_accuracy_drop", "offtopic_eval_file",
                 "offtopic_labels", "spacy_model", "max_text_chars"),
    "release": ("registry_dir", "hf_repo_id", "release_onnx", "fallback_label"),
}
# File settings whose content (not only path) is part of the stage's key.
CONTENT_SETTINGS = ("test_file", "val_file")
# Settings that change no stage's output (serving, logging, parallelism; the token only decides
# whether the release goes to the Hub, which the release key records separately).
SETTINGS_WITHOUT_OUTPUT = (
    "hf_token", "model_source", "inference_backend", "max_batch", "n_process", "log_level", "ci",
    # serving only (app and API): no stage output depends on them
    "batch_wait_ms", "max_queue", "request_timeout_s", "ready_high_water", "sqlite_busy_timeout_s", "max_body_bytes", "api_token", "api_workers",
    "inference_threads", "dashboard_address", "dashboard_password_hash", "dashboard_reviewers",
    # experiment tracking records runs, it does not change them; the rest is read by retrain.py and the servers
    "mlflow_tracking", "mlflow_tracking_uri", "mlflow_experiment", "mlflow_log_model", "retrain_min_corrections",
    "promotion_tolerance", "guarded_metrics", "reload_interval_s", "metrics_multiproc_dir",
)


def check_stage_settings(stage_settings: dict[str, Sequence[str]], without_output: Sequence[str]) -> None:
    """Every name must be a setting, and every setting must be listed somewhere, or it would be silently ignored."""
    listed = set(check_setting_names(without_output, "SETTINGS_WITHOUT_OUTPUT"))
    for stage, names in stage_settings.items():
        listed.update(check_setting_names(names, f"run_pipeline stage {stage!r}"))
    unlisted = sorted({f.name for f in fields(Settings)} - listed)
    if unlisted:
        raise ConfigError(f"setting(s) {', '.join(unlisted)} are in no stage's list in run_pipeline.py nor in "
                          "SETTINGS_WITHOUT_OUTPUT: say which stage's output they change")


check_stage_settings(STAGE_SETTINGS, SETTINGS_WITHOUT_OUTPUT)


def _latest_release_pointer(settings: Settings) -> Path:
    return settings.registry_dir / registry.repo_name(settings) / artifacts.LATEST_POINTER


def pipeline_stages(fast: bool) -> list[Stage]:
    train_args = ("--max-train-rows", str(FAST_TRAIN_ROWS), "--epochs", FAST_EPOCHS) if fast else ()
    return [
        Stage("ingest", "ingest_clean.py", (), STAGE_SETTINGS["ingest"], lambda s: s.cleaned_data_file),
        Stage("load", "load_to_mysql.py", ("--replace",), STAGE_SETTINGS["load"]),
        Stage("prepare", "prepare_data.py", (), STAGE_SETTINGS["prepare"],
              lambda s: Artifacts.from_settings(s).dataset_fingerprint),
        Stage("finetune", "finetune_bert.py", train_args, STAGE_SETTINGS["finetune"],
              lambda s: ModelFiles.from_settings(s).training_config),
        Stage("evaluate", "export_bert_metrics.py", (), STAGE_SETTINGS["evaluate"],
              lambda s: Artifacts.from_settings(s).metrics),
        Stage("release", "push_model.py", (), STAGE_SETTINGS["release"], _latest_release_pointer),
    ]


def stage_keys(stages: Sequence[Stage], settings: Settings, fast: bool) -> dict[str, str]:
    """A key per stage that changes when its inputs or any earlier stage's inputs change."""
    if not settings.raw_data_file.is_file():
        raise PipelineError(f"raw data file not found: {settings.raw_data_file} (set RAW_DATA_FILE)")
    previous = sha256_file(settings.raw_data_file)
    keys: dict[str, str] = {}
    for stage in stages:
        material = {name: str(getattr(settings, name)) for name in stage.depends_on}
        # A fixed evaluation file edited in place must re-run stage 3, as an edited raw file re-runs stage 1.
        material.update({f"{name}_sha256": sha256_file(getattr(settings, name)) for name in stage.depends_on
                         if name in CONTENT_SETTINGS and getattr(settings, name) and getattr(settings, name).is_file()})
        material.update(previous=previous, stage=stage.name, args=list(stage.args), fast=fast)
        if stage.name == "release":
            material["hub"] = bool(settings.hf_token and settings.hf_repo_id)  # whether, never the token
        previous = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
        keys[stage.name] = previous
    return keys


def is_up_to_date(stage: Stage, key: str, state: dict[str, str], settings: Settings) -> bool:
    if state.get(stage.name) != key:
        return False
    return stage.output is None or stage.output(settings).is_file()


def load_state(path: Path) -> dict[str, str]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def run_stage(stage: Stage) -> None:
    run_script(stage.name, stage.script, stage.args)


def start_app(port: int, address: str) -> int:
    host = "localhost" if auth.is_local_address(address) else address
    print(f"\nPipeline complete. Starting the dashboard at http://{host}:{port}  (Ctrl+C to stop)\n", flush=True)
    return launch.run_dashboard(port, address)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fast", action="store_true",
                        help=f"train {FAST_EPOCHS} epoch on at most {FAST_TRAIN_ROWS} rows: the whole flow in minutes")
    parser.add_argument("--force", action="store_true", help="re-run every stage even if it already completed")
    parser.add_argument("--no-app", action="store_true", help="stop after the release instead of starting the app")
    parser.add_argument("--port", type=int, default=8501, help="port for the Streamlit app (default 8501)")
    parser.add_argument("--address", default=None,
                        help="address the app binds to (default: DASHBOARD_ADDRESS, 127.0.0.1); a non-local "
                             "address needs a login (DASHBOARD_PASSWORD_HASH or Streamlit OIDC)")
    parser.add_argument("--retrain", action="store_true",
                        help="retrain from approved corrections and publish only if no guarded metric drops "
                             "(as retrain.py; with --force: whatever the number of corrections); no app")
    parser.add_argument("--no-venv", action="store_true",
                        help="run with this Python instead of creating/using the project's .venv")
    return parser.parse_args(argv)


def run_stages(stages: Sequence[Stage], settings: Settings, fast: bool, force: bool) -> None:
    """Run each stage that is not up to date (and every one after the first that ran)."""
    keys = stage_keys(pipeline_stages(fast), settings, fast)
    state_path = Artifacts.from_settings(settings).pipeline_state
    state = {} if force else load_state(state_path)
    upstream_ran = False
    for stage in stages:
        if not upstream_ran and is_up_to_date(stage, keys[stage.name], state, settings):
            log.info("stage %s: up to date, skipped", stage.name)
            continue
        run_stage(stage)
        upstream_ran = True
        state[stage.name] = keys[stage.name]
        write_json_atomic(state_path, state)


def retrain_from_feedback(settings: Settings, fast: bool, force: bool) -> int:
    from intent_pipeline.retrain import retrain

    run_stages(pipeline_stages(fast)[:2], settings, fast, force=False)  # ingest + load, if the raw data changed
    outcome = retrain(settings, force=force, epochs=float(FAST_EPOCHS) if fast else None,
                      max_train_rows=FAST_TRAIN_ROWS if fast else None)
    print(f"retrain: {outcome.message}", flush=True)
    return outcome.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = get_settings()
    setup_logging(settings.log_level)
    if args.retrain:
        return retrain_from_feedback(settings, args.fast, args.force)
    address = args.address or settings.dashboard_address
    if not args.no_app:
        launch.check_dashboard_access(settings, address)  # refuse before a long run, not after it
    run_stages(pipeline_stages(args.fast), settings, args.fast, args.force)
    if args.no_app:
        print("\nPipeline complete. Start the dashboard with: streamlit run app.py", flush=True)
        return 0
    return start_app(args.port, address)


if __name__ == "__main__":
    sys.exit(run_cli(main))
