"""config.py: defaults, environment overrides, secrets never shown."""

from pathlib import Path

import pytest

import config


def test_defaults_work_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "BASE_MODEL", "MYSQL_HOST", "MYSQL_DB", "ARTIFACTS_DIR", "MODEL_DIR"):
        monkeypatch.delenv(name, raising=False)
    s = config.get_settings()
    assert s.database_url.startswith("sqlite:///")
    assert (Path(s.base_model) / "config.json").is_file(), "bundled all-MiniLM-L6-v2 not found"
    assert s.model_dir == s.artifacts_dir / "bert_intent_model"


def test_env_overrides_and_mysql_parts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("MYSQL_HOST", "db.example")
    monkeypatch.setenv("MYSQL_USER", "app")
    monkeypatch.setenv("MYSQL_PASSWORD", "p@ss:word")
    monkeypatch.setenv("MYSQL_DB", "intents")
    monkeypatch.setenv("EPOCHS", "2")
    monkeypatch.setenv("ARTIFACTS_DIR", str(tmp_path))
    s = config.get_settings()
    assert s.database_url.startswith("mysql+pymysql://app:p%40ss%3Aword@db.example:3306/intents")
    assert s.epochs == 2.0 and s.artifacts_dir == tmp_path


def test_secrets_masked_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_supersecret")
    monkeypatch.setenv("DATABASE_URL", "mysql+pymysql://u:topsecret@h/db")
    text = repr(config.get_settings())
    assert "hf_supersecret" not in text and "topsecret" not in text
    assert config.mask_url("mysql+pymysql://u:topsecret@h:1/db") == "mysql+pymysql://u:***@h:1/db"


def test_bad_number_is_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EPOCHS", "many")
    with pytest.raises(ValueError, match="EPOCHS"):
        config.get_settings()
