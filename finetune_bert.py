"""Stage 4: ARTIFACTS_DIR/splits (+ label map, class weights, fingerprint) -> fine-tuned BERT-family
intent classifier in MODEL_DIR (model, tokenizer with the model's text normalisation built in,
label_mapping.json, training_config.json).

Hugging Face Trainer with dynamic padding, length-grouped batches, validation macro-F1 every epoch,
early stopping, best checkpoint kept and reloaded, optional class-weighted loss, seeded, resumable
(--resume). Runs unchanged under `torchrun --nproc_per_node=N` (gloo on CPU) and
`accelerate launch` (GPUs); only the main process writes MODEL_DIR.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import config
from intent_pipeline import tracking
from intent_pipeline.artifacts import LABEL_MAPPING, TRAINING_CONFIG, Artifacts
from intent_pipeline.base_models import verify_base_model
from intent_pipeline.cli import run_cli
from intent_pipeline.errors import PipelineError
from intent_pipeline.logging_setup import setup_logging
from intent_pipeline.recipe import plan_epochs
from intent_pipeline.tokenizer_normalizer import with_model_normalizer
from intent_pipeline.training import (
    EncodedDataset,
    compute_metrics,
    freeze_word_embeddings,
    load_base_model,
    load_split_data,
    save_model_dir,
    subsample,
    weighted_trainer_class,
)
from intent_pipeline.weight_averaging import EpochAverager, finish_weights

log = logging.getLogger("finetune_bert")



def parse_args(argv: Sequence[str] | None, settings: config.Settings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts-dir", type=Path, default=settings.artifacts_dir,
                        help="folder with splits/ and label_mapping.json from prepare_data.py (default: ARTIFACTS_DIR)")
    parser.add_argument("--output-dir", type=Path, default=settings.model_dir, help="where the model goes (default: MODEL_DIR)")
    parser.add_argument("--checkpoint-dir", type=Path, default=None,
                        help="Trainer checkpoints, for --resume (default: ARTIFACTS_DIR/checkpoints)")
    parser.add_argument("--base-model", default=settings.base_model,
                        help="checkpoint to fine-tune: local folder or Hub id (default: BASE_MODEL)")
    parser.add_argument("--epochs", type=_epochs_arg, default=settings.epochs,
                        help="training epochs, or `auto` to scale them to the data (default: EPOCHS)")
    parser.add_argument("--max-epochs", type=int, default=settings.max_epochs,
                        help="cap on auto epochs (default: MAX_EPOCHS)")
    parser.add_argument("--examples-per-intent", type=int, default=settings.examples_per_intent,
                        help="auto epochs: training examples per intent to aim for (default: EXAMPLES_PER_INTENT)")
    parser.add_argument("--batch-size", type=int, default=settings.batch_size, help="per-device batch size (default: BATCH_SIZE)")
    parser.add_argument("--lr", type=float, default=settings.learning_rate, help="peak learning rate (default: LEARNING_RATE)")
    parser.add_argument("--max-length", type=int, default=settings.max_length, help="max tokens per text (default: MAX_LENGTH)")
    parser.add_argument("--max-train-rows", type=int, default=0,
                        help="train on a label-stratified sample of at most this many rows, 0 = all (fast runs)")
    parser.add_argument("--seed", type=int, default=settings.seed, help="seed for weights init and data order (default: SEED)")
    parser.add_argument("--patience", type=int, default=settings.early_stopping_patience,
                        help="epochs without validation macro-F1 gain before stopping, 0 = a third of the epochs "
                             "(default: EARLY_STOPPING_PATIENCE)")
    parser.add_argument("--weight-decay", type=float, default=settings.weight_decay,
                        help="AdamW weight decay (default: WEIGHT_DECAY)")
    parser.add_argument("--warmup-ratio", type=float, default=settings.warmup_ratio,
                        help="share of training steps for learning-rate warm-up (default: WARMUP_RATIO)")
    parser.add_argument("--no-class-weights", dest="class_weights", action="store_false", default=settings.class_weights,
                        help="plain cross-entropy instead of the class-weighted loss (default: CLASS_WEIGHTS)")
    parser.add_argument("--no-freeze-embeddings", dest="freeze_embeddings", action="store_false",
                        default=settings.freeze_embeddings,
                        help="also train the word-embedding matrix (slower; default: FREEZE_EMBEDDINGS)")
    parser.add_argument("--no-average-weights", dest="average_weights", action="store_false",
                        default=settings.average_weights,
                        help="keep the best validation checkpoint instead of the mean of the last third of the "
                             "epochs' weights (default: AVERAGE_WEIGHTS)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --checkpoint-dir")
    args = parser.parse_args(argv)
    positive = (args.batch_size, args.lr, args.max_epochs, args.examples_per_intent,
                1 if args.epochs is None else args.epochs)
    if min(positive) <= 0 or args.max_length < 8:
        raise PipelineError("--epochs (or auto), --batch-size, --lr, --max-epochs and --examples-per-intent must be "
                            "positive and --max-length at least 8")
    if args.patience < 0 or args.weight_decay < 0 or not 0 <= args.warmup_ratio < 1:
        raise PipelineError("--patience must be >= 0, --weight-decay >= 0 and --warmup-ratio within [0, 1)")
    args.checkpoint_dir = args.checkpoint_dir or Artifacts(args.artifacts_dir).checkpoints_dir
    return args


def _epochs_arg(value: str) -> float | None:
    if value.strip().lower() == "auto":
        return None
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number or `auto`, got {value!r}") from None


def apply_epoch_plan(args: argparse.Namespace, train_rows: int, num_labels: int) -> None:
    """Resolve `auto` epochs and patience for this data (intent_pipeline/recipe.py), in place."""
    plan = plan_epochs(train_rows, num_labels, args.epochs, args.patience, args.examples_per_intent, args.max_epochs)
    args.epochs, args.patience, args.epoch_plan = plan.epochs, plan.patience, plan.reason
    log.info("training for up to %g epochs (%s), early stopping after %d epochs without validation gain",
             plan.epochs, plan.reason, plan.patience)


def training_arguments(args: argparse.Namespace, report_to: str = "none"):
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(args.checkpoint_dir),
        num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=max(64, args.batch_size),
        learning_rate=args.lr,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_ratio,  # a float below 1 is a share of all steps
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=2,  # with load_best_model_at_end the best one is never rotated out
        load_best_model_at_end=True,
        metric_for_best_model="macro_f1",
        greater_is_better=True,
        train_sampling_strategy="group_by_length",
        logging_steps=50,
        report_to=report_to,  # "mlflow": per-step loss and per-epoch validation metrics into the active run
        run_name=getattr(args, "run_name", None),
        seed=args.seed,
        data_seed=args.seed,
        # CPU processes started by torchrun need gloo; single-process and GPU runs pick their own.
        ddp_backend="gloo" if torch.distributed.is_torchelastic_launched() and not torch.cuda.is_available() else None,
        ddp_find_unused_parameters=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,  # True only warns on CPU; GPU runs gain nothing for tiny batches
        disable_tqdm=False,
    )


def build_trainer(args: argparse.Namespace, data, tokenizer, model, train_args, extra_callbacks=()):
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback

    weights = [data.class_weights.get(data.id2label[i], 1.0) for i in range(len(data.label2id))]
    trainer_cls = weighted_trainer_class()
    return trainer_cls(
        model=model,
        args=train_args,
        train_dataset=EncodedDataset(data.train, tokenizer, data.label2id, args.max_length),
        eval_dataset=EncodedDataset(data.val, tokenizer, data.label2id, args.max_length),
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=args.patience), *extra_callbacks],
        class_weights=weights if args.class_weights else None,
    )


def training_config(args, data, val_metrics: dict, train_output, world_size: int, averaging: dict) -> dict:
    now = datetime.now(timezone.utc)
    return {
        "model_version": f"{now:%Y%m%d-%H%M%S}-{data.fingerprint[:8]}",
        "created_at": now.isoformat(timespec="seconds"),
        "dataset_fingerprint": data.fingerprint,
        "base_model": args.base_model,
        "max_length": args.max_length,
        "num_labels": len(data.label2id),
        "hyperparameters": {
            "epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.lr,
            "weight_decay": args.weight_decay, "warmup_share": args.warmup_ratio, "patience": args.patience,
            "average_weights": args.average_weights, "class_weights": args.class_weights,
            "freeze_embeddings": args.freeze_embeddings,
            "seed": args.seed, "max_train_rows": args.max_train_rows, "world_size": world_size,
            "epoch_plan": getattr(args, "epoch_plan", "EPOCHS/--epochs"),
        },
        "base_model_check": getattr(args, "base_model_check", ""),
        "train_rows": len(data.train),
        "val_rows": len(data.val),
        "val_metrics": {k.removeprefix("eval_"): v for k, v in val_metrics.items()},
        "weight_averaging": averaging,
        "train_runtime_s": round(float(train_output.metrics.get("train_runtime", 0.0)), 1),
        "train_samples_per_second": round(float(train_output.metrics.get("train_samples_per_second", 0.0)), 2),
    }


def tracked_settings(args: argparse.Namespace) -> dict:
    """The settings of this fine-tune that MLflow records beside the Trainer's own arguments."""
    keys = ("base_model", "epochs", "batch_size", "lr", "max_length", "max_train_rows", "seed", "patience",
            "weight_decay", "warmup_ratio", "average_weights", "class_weights", "freeze_embeddings", "resume")
    return {key: getattr(args, key) for key in keys}


def train(args: argparse.Namespace, settings: config.Settings | None = None) -> dict | None:
    """Fine-tune and save, tracked as an MLflow run (on the main process) when MLFLOW_TRACKING is on.

    Returns the training config on the main process, None on the others.
    """
    from transformers import set_seed

    settings = settings or config.get_settings()
    data = load_split_data(args.artifacts_dir)
    data.train = subsample(data.train, args.max_train_rows, args.seed)
    apply_epoch_plan(args, len(data.train), len(data.label2id))
    args.base_model_check = verify_base_model(args.base_model)
    log.info("base model: %s", args.base_model_check)
    set_seed(args.seed)
    tokenizer, model = load_base_model(args.base_model, data.id2label)
    # Trained with the tokenizer it ships: the release normalises raw text itself (one text path).
    tokenizer = with_model_normalizer(tokenizer, args.max_length)
    if args.freeze_embeddings:
        log.info("word embeddings frozen (%d parameters)", freeze_word_embeddings(model))
    args.run_name = f"finetune-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
    config.library_env_defaults()  # the Trainer's MLflow callback imports mlflow on every process
    train_args = training_arguments(args, report_to="mlflow" if settings.mlflow_tracking else "none")
    track = settings.mlflow_tracking and train_args.process_index == 0
    with tracking.start_run(replace(settings, mlflow_tracking=track), args.run_name, "finetune") as run:
        if run is not None:
            tracking.log_training_inputs(tracked_settings(args), data.fingerprint, data.train, data.val)
        return _train(args, settings, data, tokenizer, model, train_args, run)


def _train(args, settings: config.Settings, data, tokenizer, model, train_args, run: dict | None) -> dict | None:
    from transformers.trainer_utils import get_last_checkpoint

    resume_from = None
    if args.resume:
        resume_from = get_last_checkpoint(str(args.checkpoint_dir)) if args.checkpoint_dir.is_dir() else None
        if resume_from is None:
            raise PipelineError(f"--resume: no checkpoint in {args.checkpoint_dir}; run without --resume to start fresh")
    else:
        with train_args.main_process_first(desc="clear old checkpoints"):
            if train_args.process_index == 0:
                shutil.rmtree(args.checkpoint_dir, ignore_errors=True)  # stale ones may be of other data
    averager = EpochAverager(args.epochs)
    trainer = build_trainer(args, data, tokenizer, model, train_args, [averager.callback()])
    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=resume_from)
    choice, val_metrics = finish_weights(trainer, averager, args.average_weights)
    if not trainer.is_world_process_zero():
        return None
    cfg = training_config(args, data, val_metrics, output, train_args.world_size, choice.as_dict())
    cfg["wall_time_s"] = round(time.perf_counter() - started, 1)
    if run is not None:
        cfg["mlflow"] = run
        tracking.log_final_training(cfg)
        cfg["mlflow"]["model_uri"] = tracking.log_model(trainer.model, tokenizer, settings) or ""
    mapping = {"label2id": data.label2id, "id2label": {str(i): label for i, label in data.id2label.items()}}
    save_model_dir(args.output_dir, trainer.model, tokenizer,
                   {LABEL_MAPPING: mapping, TRAINING_CONFIG: cfg})
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    settings = config.get_settings()
    setup_logging(settings.log_level)
    args = parse_args(argv, settings)
    cfg = train(args, settings)
    if cfg is not None:
        log.info("model %s saved to %s: validation macro-F1 %.4f, accuracy %.4f (%.0f s)",
                 cfg["model_version"], args.output_dir, cfg["val_metrics"].get("macro_f1", float("nan")),
                 cfg["val_metrics"].get("accuracy", float("nan")), cfg["wall_time_s"])
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
