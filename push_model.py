"""Stage 6: MODEL_DIR + ARTIFACTS_DIR (metrics, plots, thresholds) -> a versioned release.

The release folder holds the model and tokenizer, label map, thresholds.json, metrics and plots, a
model card (README.md with Hub metadata) and release.json. It always goes to the local registry
(`REGISTRY_DIR/<repo name>/<version>/` + `LATEST`); with HF_TOKEN and HF_REPO_ID set, the identical
folder is also uploaded to that Hub repo (private unless --public) in one commit tagged with the
version; the repo is created only after the release passed its checks. With ONNX, the int8 graph's
test macro-F1 (and its difference from PyTorch's) goes into release.json and the model card.
Refuses stale or missing metrics, a model trained before the data was re-split, and any file that
contains a raw PII value stage 1 masked.

`--rollback vN` makes an earlier release the serving one again (local LATEST and, with HF_TOKEN and
HF_REPO_ID, the Hub repo's `serving` tag); nothing is rebuilt. `--list` shows the releases.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from config import Settings, get_settings
from intent_pipeline import backends
from intent_pipeline import artifacts
from intent_pipeline import evaluation as ev
from intent_pipeline import registry, tracking
from intent_pipeline.artifacts import Artifacts, ModelFiles
from intent_pipeline.cli import run_cli
from intent_pipeline.errors import PipelineError
from intent_pipeline.files import read_json, sha256_file, write_json_atomic
from intent_pipeline.logging_setup import setup_logging
from intent_pipeline.model_card import build_model_card
from intent_pipeline.onnx_export import export_onnx
from intent_pipeline.predict import IntentClassifier
from intent_pipeline.release_scan import find_leaks
from intent_pipeline.tokenizer_normalizer import folder_normalizes_raw_text
from intent_pipeline.training import read_split

log = logging.getLogger("push_model")

# Trainer leftovers in MODEL_DIR that are not part of a model.
SKIPPED_MODEL_ENTRIES = ("checkpoint-", "runs", "logs", "optimizer.pt", "scheduler.pt", "rng_state", "trainer_state")
METRICS_FIX = "run `python export_bert_metrics.py`"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--public", action="store_true",
                        help="create the Hub repo as public (default: private); ignored without HF_TOKEN/HF_REPO_ID")
    parser.add_argument("--no-onnx", action="store_true",
                        help="skip the ONNX (fp32 + int8) export into the release (default: RELEASE_ONNX)")
    parser.add_argument("--version", default=None,
                        help="release version, e.g. v7 (default: the next vN for this repo, locally and on the Hub)")
    parser.add_argument("--rollback", metavar="VERSION", default=None,
                        help="serve the earlier release VERSION (e.g. v3) again instead of publishing a new one")
    parser.add_argument("--list", action="store_true", help="list the local releases and which one serves, then exit")
    args = parser.parse_args(argv)
    for name in ("version", "rollback"):
        value = getattr(args, name)
        if value is not None and not registry.VERSION_RE.match(value):
            parser.error(f"--{name} must look like v<number>, e.g. v3")
    return args


def rollback(settings: Settings, version: str) -> str | None:
    """Make `version` the serving release locally and, when configured, on the Hub; returns the one it replaced."""
    if settings.hf_token and settings.hf_repo_id:
        from huggingface_hub import HfApi

        registry.rollback_hub(HfApi(token=settings.hf_token), settings.hf_repo_id, version, settings)
        if version not in registry.local_versions(settings):
            log.warning("%s is not in the local registry: only the Hub's serving tag moved", version)
            return None
    return registry.rollback_local(settings, version)


def list_releases(settings: Settings) -> str:
    serving = registry.serving_local_version(settings)
    repo_dir = settings.registry_dir / registry.repo_name(settings)
    lines = []
    for version in registry.local_versions(settings):
        info_path = repo_dir / version / artifacts.RELEASE_INFO
        info = read_json(info_path, "release info", "re-publish it") if info_path.is_file() else {}
        f1 = (info.get("metrics") or {}).get("macro_f1")
        score = f"test macro-F1 {f1:.4f}" if isinstance(f1, (int, float)) else ""
        lines.append(f"{'*' if version == serving else ' '} {version:<6} {info.get('created_at', '?'):<26} {score}")
    return "\n".join(lines) if lines else f"no releases in {repo_dir}"


def load_checked_inputs(settings: Settings) -> tuple[dict, dict, dict]:
    """(training config, metrics, thresholds) of MODEL_DIR, refusing metrics of another model or dataset."""
    model, files = ModelFiles.from_settings(settings), Artifacts.from_settings(settings)
    if not model.is_model():
        raise PipelineError(f"no model at {model.root}: run `python finetune_bert.py`")
    training = read_json(model.training_config, "training config", "run `python finetune_bert.py`")
    metrics = read_json(files.metrics, "metrics", METRICS_FIX)
    thresholds = read_json(files.thresholds, "fallback thresholds", METRICS_FIX)
    for name, data in ((artifacts.METRICS, metrics), (artifacts.THRESHOLDS, thresholds)):
        for key in ("model_version", "dataset_fingerprint"):
            if not data.get(key) or data.get(key) != training.get(key):
                raise PipelineError(
                    f"stale {name}: its {key} {str(data.get(key))[:16]!r} is not the model's "
                    f"{str(training.get(key))[:16]!r}: {METRICS_FIX}"
                )
    for key in ("accuracy", "macro_f1", "weighted_f1"):
        if not isinstance(metrics.get(key), (int, float)):
            raise PipelineError(f"metrics at {files.metrics} lack {key!r}: {METRICS_FIX}")
    check_current_splits(settings, training)
    return training, metrics, thresholds


def check_current_splits(settings: Settings, training: dict) -> None:
    """Refuse a model whose data was re-split after training: its metrics describe other test data."""
    path = Artifacts.from_settings(settings).dataset_fingerprint
    if not path.is_file():
        return  # a release can be built from MODEL_DIR + stage 5 outputs alone
    current = read_json(path, "dataset fingerprint", "run `python prepare_data.py`")
    current = current.get("fingerprint") if isinstance(current, dict) else None
    if current != training.get("dataset_fingerprint"):
        raise PipelineError(
            f"the data was re-split after training: {path} has fingerprint {str(current)[:16]!r} but the model "
            f"was trained on {str(training.get('dataset_fingerprint'))[:16]!r}: retrain "
            "(`python finetune_bert.py`, then `python export_bert_metrics.py`)"
        )


def _is_model_file(path: Path) -> bool:
    return not path.name.startswith(".") and not path.name.startswith(SKIPPED_MODEL_ENTRIES)


def copy_release_files(stage: Path, settings: Settings) -> list[str]:
    """Model folder, then stage 5's files (its thresholds.json wins); returns what was copied."""
    copied = []
    for entry in sorted(settings.model_dir.iterdir()):
        if not _is_model_file(entry):
            continue
        if entry.is_dir():
            shutil.copytree(entry, stage / entry.name)
        else:
            shutil.copy2(entry, stage / entry.name)
        copied.append(entry.name)
    for name in artifacts.RELEASED_STAGE5_FILES:
        source = settings.artifacts_dir / name
        if source.is_file():
            shutil.copy2(source, stage / name)
            copied.append(name)
        elif name != artifacts.PLOTLY_JS:
            log.warning("%s not found: the release goes without it", source)
    return sorted(set(copied))


def release_info(version: str, training: dict, metrics: dict, thresholds: dict, repo: str) -> dict:
    return {
        "version": version,
        "model_version": training.get("model_version", ""),
        "dataset_fingerprint": training.get("dataset_fingerprint", ""),
        "base_model": training.get("base_model", ""),
        "repo": repo,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "metrics": {key: metrics.get(key) for key in
                    ("accuracy", "macro_f1", "weighted_f1", "noisy_accuracy", "noisy_macro_f1", "ece")},
        "fallback": {"threshold": thresholds.get("threshold", 0.0), "margin": thresholds.get("margin", 0.0)},
        "mlflow": metrics.get("mlflow") or training.get("mlflow") or {},
    }


def assemble(stage: Path, info: dict, training: dict, metrics: dict, thresholds: dict, settings: Settings) -> None:
    """Fill `stage` with the complete release; release.json (with every file's hash) comes last."""
    copy_release_files(stage, settings)
    if settings.release_onnx:
        # Exported from the staged copy, so the graphs match the exact weights being released.
        export_onnx(stage, quantize=True)
        info.update(int8_test_check(stage, settings, metrics))
    elif (stage / artifacts.ONNX_DIR).exists():
        shutil.rmtree(stage / artifacts.ONNX_DIR)  # graphs from an earlier export of MODEL_DIR may be stale
    card = build_model_card(info, metrics, training, thresholds, settings, folder_normalizes_raw_text(stage))
    card.save(stage / artifacts.MODEL_CARD)
    info["files"] = {
        path.relative_to(stage).as_posix(): sha256_file(path) for path in sorted(stage.rglob("*")) if path.is_file()
    }
    write_json_atomic(stage / artifacts.RELEASE_INFO, info)


def int8_test_check(stage: Path, settings: Settings, metrics: dict) -> dict:
    """Test macro-F1 of the int8 graph and its difference from PyTorch's (stage 5 scored PyTorch only)."""
    test_path = Artifacts.from_settings(settings).split("test")
    frame = read_split(test_path, required=False)
    if frame is None:
        log.info("no %s: the int8 graph's test macro-F1 is not recorded in the release", test_path)
        return {}
    classifier = IntentClassifier.load(stage, backend=backends.ONNX_INT8)
    if classifier.backend != backends.ONNX_INT8:
        log.warning("the int8 graph cannot be loaded: its test macro-F1 is not recorded in the release")
        return {}
    index = {label: i for i, label in enumerate(classifier.labels)}
    frame = frame[frame["label"].isin(index.keys())]
    if frame.empty:
        log.warning("%s has no rows with the model's labels: the int8 test macro-F1 is not recorded", test_path)
        return {}
    probs = classifier.predict_proba(frame["text"].tolist())
    int8_f1 = ev.macro_f1(frame["label"].map(index).to_numpy(dtype=int), probs.argmax(axis=1), len(index))
    delta = int8_f1 - float(metrics["macro_f1"])
    log.info("int8 ONNX graph on %d test messages: macro-F1 %.4f (%+.4f vs PyTorch)", len(frame), int8_f1, delta)
    return {backends.INT8_F1_KEY: round(int8_f1, 6), backends.INT8_DELTA_KEY: round(delta, 6)}


def refuse_leaks(stage: Path, settings: Settings) -> None:
    leaks = find_leaks(stage, settings)
    if leaks:
        files = len({leak.file for leak in leaks})
        shown = ", ".join(str(leak) for leak in leaks[:5]) + (f" and {len(leaks) - 5} more" if len(leaks) > 5 else "")
        raise PipelineError(
            f"refusing to publish: raw PII values that stage 1 masked appear in {files} release file(s): "
            f"{shown}; remove them (or fix the masking and re-run stages 1-5)"
        )


def _hub_call(settings: Settings, call, *args, **kwargs):
    """Run one HfApi call; a Hub error becomes one line that names the repo and never shows the token."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return call(*args, **kwargs)
    except (HfHubHTTPError, ValueError, OSError) as exc:
        reason = registry.hub_error_reason(exc, settings)
        raise PipelineError(f"cannot use the Hub repo {settings.hf_repo_id}: {reason}") from None


def prepare_hub_repo(api, settings: Settings, version: str, private: bool) -> None:
    """Create the repo (no-op if it exists) for a release that passed every check; re-check the version."""
    _hub_call(settings, api.create_repo, settings.hf_repo_id, private=private, exist_ok=True, repo_type="model")
    # Someone may have released this version while ours was being built and scanned.
    if version in _hub_call(settings, registry.hub_versions, api, settings.hf_repo_id):
        raise PipelineError(f"version {version} appeared on the Hub repo {settings.hf_repo_id} meanwhile: re-run")


def publish(settings: Settings, version: str | None = None, public: bool = False) -> Path:
    """Build, check and publish one release; returns its local registry folder.

    Nothing is created on the Hub until the release is assembled and has passed the PII scan, so a
    refused release leaves no empty repo behind; before that the Hub is only read (its tags).
    """
    training, metrics, thresholds = load_checked_inputs(settings)
    use_hub = bool(settings.hf_token and settings.hf_repo_id)
    if bool(settings.hf_token) != bool(settings.hf_repo_id):
        log.warning("HF_TOKEN and HF_REPO_ID must both be set to publish to the Hub: publishing locally only")
    api, hub_tags = None, []
    if use_hub:
        from huggingface_hub import HfApi

        api = HfApi(token=settings.hf_token)
        hub_tags = _hub_call(settings, registry.hub_versions, api, settings.hf_repo_id)
    taken = set(registry.local_versions(settings)) | set(hub_tags)
    version = version or registry.next_version(taken)
    if version in taken:
        raise PipelineError(f"version {version} already exists for {registry.repo_name(settings)}: pick another")

    info = release_info(version, training, metrics, thresholds, settings.hf_repo_id or registry.repo_name(settings))
    stage = registry.staging_dir(settings)
    try:
        assemble(stage, info, training, metrics, thresholds, settings)
        refuse_leaks(stage, settings)
        if use_hub:
            prepare_hub_repo(api, settings, version, private=not public)
            registry.publish_hub(stage, settings.hf_repo_id, version, settings, api, private=not public)
        folder = registry.publish_local(stage, version, settings)
        tracking.tag_release(settings, (info.get("mlflow") or {}).get("run_id"), version)
        return folder
    finally:
        registry.discard_staging(stage)  # no-op after a successful rename


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = get_settings()
    if args.no_onnx:
        settings = replace(settings, release_onnx=False)
    setup_logging(settings.log_level)
    if args.list:
        print(list_releases(settings))
        return 0
    if args.rollback:
        previous = rollback(settings, args.rollback)
        print(f"Serving {args.rollback} again (was {previous or 'unknown'}); running apps and APIs switch at their "
              "next reload check")
        return 0
    folder = publish(settings, version=args.version, public=args.public)
    where = f"Hub repo {settings.hf_repo_id} and " if settings.hf_token and settings.hf_repo_id else ""
    print(f"Released {folder.name} to {where}{folder}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
