"""config.py: defaults, environment overrides, secrets never shown."""

import os
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


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("TRUE", True), ("yes", True), ("on", True),
                                             ("0", False), ("false", False), ("off", False), ("", False)])
def test_one_parser_for_the_ci_flag(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("CI", value)
    assert config.in_ci() is expected and config.get_settings().ci is expected


def test_ci_flag_typo_is_an_error_not_false(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "ture")
    with pytest.raises(config.ConfigError, match="CI"):
        config.in_ci()


def test_no_test_parses_ci_itself() -> None:
    """conftest and the tests ask config.in_ci(): a second parser once made CI=on skip the MariaDB tests."""
    tests = Path(__file__).resolve().parent
    for path in tests.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        for pattern in ('environ.get("CI"', "environ['CI']", 'environ["CI"]', 'getenv("CI"'):
            assert pattern not in text or path.name == Path(__file__).name, f"{path.name} parses CI itself"


def test_ci_on_fails_mariadb_tests_instead_of_skipping(tmp_path: Path) -> None:
    """With CI=on and no server, a MariaDB test must fail (the old conftest parser skipped it)."""
    import subprocess
    import sys

    env = {**os.environ, "CI": "on", "MARIADB_TEST_URL": "mysql+pymysql://root@127.0.0.1:9"}  # port 9: nothing there
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--no-header", "-o", "addopts=",
         "tests/test_db.py", "-k", "mariadb"],
        cwd=Path(__file__).resolve().parent.parent, env=env, capture_output=True, text=True, timeout=300,
    )
    summary = result.stdout.strip().splitlines()[-1]
    assert result.returncode == 1 and "failed" in summary and "skipped" not in summary, result.stdout[-2000:]
    assert "CI requires it" in result.stdout
