"""Champion/challenger retraining: retrain when enough reviewed corrections arrived, publish only a model
that is no worse than the serving one.

1. Trigger: at least RETRAIN_MIN_CORRECTIONS approved corrections arrived since the serving release
   was published (or `force`).
2. Stages 3-5 run as the user would run them, with the serving release's test split frozen
   (intent_pipeline/holdout.py): the challenger never re-splits test.
3. Champion (serving release) and challenger (the new MODEL_DIR) are scored on the same data: the
   frozen test split, its noisy copy, the off-topic set when OFFTOPIC_EVAL_FILE exists, and the gold
   set of approved corrections that no stage 3 ever trains on.
4. The challenger is published (stage 6) only if no guarded metric (GUARDED_METRICS) drops by more
   than PROMOTION_TOLERANCE; otherwise the champion keeps serving and the report says which metric
   blocked it. The comparison is written as JSON and Markdown and logged to MLflow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from config import Settings
from intent_pipeline import db, holdout, ood, registry, tracking
from intent_pipeline.errors import PipelineError
from intent_pipeline.files import read_json
from intent_pipeline.artifacts import RELEASE_INFO, Artifacts
from intent_pipeline.predict import IntentClassifier
from intent_pipeline.retrain_report import compare, summary_line, write_report
from intent_pipeline.stage_runner import run_script
from intent_pipeline.training import read_split

log = logging.getLogger(__name__)

KEPT_CHAMPION_EXIT = 3  # distinct exit code, so cron mail and systemd show a blocked promotion


@dataclass
class Outcome:
    decision: str  # "skipped" | "published" | "kept_champion"
    message: str
    report: dict = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return KEPT_CHAMPION_EXIT if self.decision == "kept_champion" else 0


def approved_corrections(settings: Settings) -> pd.DataFrame:
    """Approved corrections (text, label, at): reviewed feedback whose label differs from the prediction."""
    engine = db.connect(settings.database_url)
    try:
        feedback = db.read_feedback(engine, db.FEEDBACK_APPROVED)
    finally:
        engine.dispose()
    feedback = feedback[~feedback["is_correct"].astype(bool)]
    at = feedback["reviewed_at"].fillna(feedback["created_at"])  # arrived = approved
    return pd.DataFrame({"text": feedback["text"].astype(str), "label": feedback["correct_label"].astype(str),
                         "at": pd.to_datetime(at, utc=True)}).reset_index(drop=True)


def champion(settings: Settings) -> tuple[Path, dict] | None:
    """(folder, release.json) of the serving local release, or None before the first release."""
    if registry.serving_local_version(settings) is None:
        return None
    folder = registry.latest_local_release(settings)
    info = read_json(folder / RELEASE_INFO, "release info", "re-publish it") if (folder / RELEASE_INFO).is_file() else {}
    return folder, info


def new_corrections(corrections: pd.DataFrame, release_info: dict | None) -> int:
    """Corrections that arrived after the serving release was published (all of them before any release)."""
    created = (release_info or {}).get("created_at")
    if not created:
        return len(corrections)
    return int((corrections["at"] > pd.Timestamp(created).tz_convert("UTC")).sum())


def evaluation_sets(settings: Settings, frozen_dir: Path, corrections: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The data both models are scored on; absent sets are left out (and named in the log)."""
    test, noisy = holdout.read_frozen_test(frozen_dir)
    sets = {"test": test}
    if noisy is not None:
        sets["noisy"] = noisy
    offtopic = ood.read_offtopic(settings.offtopic_eval_file)
    if offtopic is not None:
        # Raw messages, as users type them: cleaned and PII-masked as the app and API would before the model.
        sets["offtopic"] = offtopic.assign(text=ood.mask_like_serving(
            offtopic["text"].tolist(), settings.spacy_model, settings.max_text_chars))
    gold = corrections[holdout.is_gold(corrections["text"], settings.gold_share)]
    gold = gold.drop_duplicates("text", keep="last")[["text", "label"]]
    if len(gold):
        sets["gold"] = gold
    else:
        log.info("no approved corrections in the gold set yet: gold metrics are left out")
    return sets


def score(classifier: IntentClassifier, sets: dict[str, pd.DataFrame], offtopic_labels: tuple[str, ...] = ()
          ) -> dict[str, dict]:
    """{metric: {"value", "n"}} for one model: argmax answers for accuracy/F1; off-topic messages are handled
    when its own fallback rule answers, or the answer is one of `offtopic_labels` (or the row's `label`)."""
    from sklearn.metrics import f1_score

    out: dict[str, dict] = {}
    for name, frame in sets.items():
        preds = classifier.predict(frame["text"].tolist(), top_k=1)
        n = len(preds)
        if name == "offtopic":
            wanted = frame["label"].tolist() if "label" in frame.columns else [""] * n
            handled = [p.is_fallback or p.intent == w or p.intent in offtopic_labels for p, w in zip(preds, wanted)]
            out["offtopic_handled"] = {"value": sum(handled) / n, "n": n}
            continue
        truth, answer = frame["label"].astype(str).tolist(), [p.top_intent for p in preds]
        prefix = "" if name == "test" else f"{name}_"
        out[f"{prefix}accuracy"] = {"value": sum(a == t for a, t in zip(answer, truth)) / n, "n": n}
        f1 = f1_score(truth, answer, labels=sorted(set(truth)), average="macro", zero_division=0)
        out[f"{prefix}macro_f1"] = {"value": float(f1), "n": n}
    return out


def _train_args(epochs: float | None, max_train_rows: int | None) -> list[str]:
    args = []
    if epochs is not None:
        args += ["--epochs", str(epochs)]
    if max_train_rows:
        args += ["--max-train-rows", str(max_train_rows)]
    return args


def retrain(settings: Settings, force: bool = False, epochs: float | None = None,
            max_train_rows: int | None = None) -> Outcome:
    corrections = approved_corrections(settings)
    current = champion(settings)
    arrived = new_corrections(corrections, current[1] if current else None)
    since = f"since {current[1].get('version', current[0].name)}" if current else "(no release yet)"
    if not force and arrived < settings.retrain_min_corrections:
        return Outcome("skipped", f"{arrived} approved correction(s) {since}; retraining needs "
                                  f"{settings.retrain_min_corrections} (RETRAIN_MIN_CORRECTIONS): nothing to do")
    log.info("retraining: %d approved correction(s) %s%s", arrived, since, " (forced)" if force else "")
    frozen_dir = holdout.frozen_dir(settings.artifacts_dir)
    if not holdout.is_frozen(frozen_dir):
        freeze_current_test(settings, current)
    run_script("prepare", "prepare_data.py", ["--frozen-test", str(frozen_dir)])
    run_script("finetune", "finetune_bert.py", _train_args(epochs, max_train_rows))
    run_script("evaluate", "export_bert_metrics.py")
    return decide(settings, current, frozen_dir, corrections, arrived)


def freeze_current_test(settings: Settings, current: tuple[Path, dict] | None) -> None:
    """Freeze stage 3's test split; without one yet (first run), draw it with a plain stage 3 first."""
    files = Artifacts.from_settings(settings)
    if not files.split("test").is_file():
        run_script("prepare", "prepare_data.py")
    prepared = read_json(files.dataset_fingerprint, "dataset fingerprint", "run `python prepare_data.py`")
    fingerprint = prepared.get("fingerprint", "")
    if current and current[1].get("dataset_fingerprint") not in (None, fingerprint):
        log.warning("the current splits are not the ones the serving release %s was trained with: its test scores "
                    "may be optimistic if it trained on some of these messages", current[1].get("version"))
    # With TEST_FILE set, stage 3's test split is that file's masked rows: the frozen test is the fixed file.
    holdout.freeze_test(settings.artifacts_dir, fingerprint, prepared.get("test_source"))


def decide(settings: Settings, current: tuple[Path, dict] | None, frozen_dir: Path,
           corrections: pd.DataFrame, arrived: int) -> Outcome:
    sets = evaluation_sets(settings, frozen_dir, corrections)
    challenger = IntentClassifier.load(settings.model_dir, fallback_label=settings.fallback_label)
    challenger_scores = score(challenger, sets, settings.offtopic_labels)
    champion_scores = {}
    if current is not None:
        serving = IntentClassifier.load(current[0], fallback_label=settings.fallback_label)
        champion_scores = score(serving, sets, settings.offtopic_labels)
    report = compare(champion_scores, challenger_scores, settings.guarded_metrics, settings.promotion_tolerance)
    report.update(
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        new_corrections=arrived, min_corrections=settings.retrain_min_corrections,
        sets={name: len(frame) for name, frame in sets.items()},
        champion={"version": current[1].get("version", current[0].name), "model_version": current[1].get("model_version", ""),
                  "mlflow": current[1].get("mlflow") or {}} if current else None,
        challenger={"model_version": challenger.info.get("model_version", ""), "mlflow": challenger.info.get("mlflow") or {}},
    )
    if report["blocked"]:
        report["decision"] = "kept_champion"
    else:
        run_script("release", "push_model.py")
        report["decision"] = "published"
        report["published_version"] = registry.serving_local_version(settings)
    files = write_report(report, settings.artifacts_dir)  # first: the decision is on disk whatever MLflow does
    run_name = f"retrain-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
    with tracking.start_run(settings, run_name, "retrain") as run:
        if run is not None:
            report["mlflow"] = run
            files = write_report(report, settings.artifacts_dir)
            tracking.log_comparison(report, files)
    return Outcome(report["decision"], summary_line(report), report, files)
