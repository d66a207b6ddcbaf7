"""Dashboard access (intent_pipeline/auth.py, launch.py): password hashes, back-off, the bind rule,
and the launchers (`python app.py`, run_pipeline.py) refusing an exposed dashboard without a login."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import config
import run_pipeline
from intent_pipeline import auth, launch
from intent_pipeline.cli import run_cli
from intent_pipeline.errors import PipelineError
from conftest import PROJECT_ROOT

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def password_hash() -> str:
    return auth.hash_password(PASSWORD)


@pytest.fixture
def no_secrets_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Launch checks read no real ~/.streamlit/secrets.toml; returns the (absent) file they read instead."""
    path = tmp_path / "secrets.toml"
    monkeypatch.setattr(launch, "SECRETS_FILES", (path,))
    monkeypatch.delenv("DASHBOARD_PASSWORD_HASH", raising=False)
    monkeypatch.delenv("DASHBOARD_ADDRESS", raising=False)
    return path


def test_hash_is_salted_and_verifies_only_the_password(password_hash: str) -> None:
    assert password_hash.startswith("scrypt:16384:8:1:") and "$" not in password_hash and PASSWORD not in password_hash
    assert auth.hash_password(PASSWORD) != password_hash  # a fresh salt each time
    assert auth.verify_password(PASSWORD, password_hash)
    assert not auth.verify_password(PASSWORD + " ", password_hash)
    assert not auth.verify_password("", password_hash)
    with pytest.raises(PipelineError, match="too short"):
        auth.hash_password("short")


@pytest.mark.parametrize("stored", ["", "plain-text-password", "scrypt:16384:8:1:abc", "pbkdf2:1:2:3:AAAAAAAAAAA:BBBB",
                                    "scrypt:1000:8:1:AAAAAAAAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"])
def test_malformed_hash_is_a_clear_error(stored: str) -> None:
    with pytest.raises(PipelineError, match="--hash-password"):
        auth.verify_password(PASSWORD, stored)


def test_failed_logins_back_off_per_client() -> None:
    now = [1000.0]
    throttle = auth.LoginThrottle(free_attempts=3, base_s=2, max_s=60, clock=lambda: now[0])
    assert [throttle.failed("a") for _ in range(3)] == [0, 0, 0]  # a few typos cost nothing
    assert throttle.failed("a") == 2 and throttle.wait_s("a") == 2
    assert throttle.wait_s("b") == 0  # another client is not locked out
    assert throttle.failed("a") == 4 and throttle.failed("a") == 8
    for _ in range(10):
        throttle.failed("a")
    assert throttle.wait_s("a") == 60  # capped
    now[0] += 61
    assert throttle.wait_s("a") == 0
    throttle.succeeded("a")
    assert throttle.failed("a") == 0  # a success starts over


def test_throttle_table_is_bounded() -> None:
    throttle = auth.LoginThrottle(max_clients=5)
    for i in range(50):
        throttle.failed(f"client{i}")
    assert len(throttle._failures) == 5


@pytest.mark.parametrize("address, local", [
    ("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True), ("127.0.1.1", True),
    ("0.0.0.0", False), ("", False), (None, False), ("::", False), ("192.168.1.5", False), ("myhost.example", False),
])
def test_local_addresses(address: str | None, local: bool) -> None:
    assert auth.is_local_address(address) is local


def test_exposure_needs_a_login(password_hash: str) -> None:
    auth.check_exposure("127.0.0.1", "", oidc=False)
    auth.check_exposure("0.0.0.0", password_hash, oidc=False)
    auth.check_exposure("0.0.0.0", "", oidc=True)
    with pytest.raises(PipelineError) as refused:
        auth.check_exposure("0.0.0.0", "", oidc=False)
    message = str(refused.value)
    assert "\n" not in message and "0.0.0.0" in message and "DASHBOARD_PASSWORD_HASH" in message
    with pytest.raises(PipelineError, match="every network interface"):
        auth.check_exposure("", "", oidc=False)
    with pytest.raises(PipelineError, match="not a hash"):  # a broken hash never opens the door, even locally
        auth.check_exposure("127.0.0.1", "secret123456", oidc=False)


def test_oidc_is_configured_by_an_auth_section(tmp_path: Path) -> None:
    section = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x", "client_id": "id"}
    assert auth.oidc_configured({"auth": section})
    assert not auth.oidc_configured({"auth": {"redirect_uri": "http://x"}})
    assert not auth.oidc_configured({"DATABASE_URL": "sqlite://"})
    first, second, broken = tmp_path / "a.toml", tmp_path / "b.toml", tmp_path / "c.toml"
    first.write_text('A = "1"\n[auth]\nredirect_uri = "http://x"\ncookie_secret = "s"\n')
    second.write_text('A = "2"\n')
    broken.write_text("[[[ not toml")
    merged = auth.read_secrets_files([first, second, broken, tmp_path / "missing.toml"])
    assert merged["A"] == "2" and auth.oidc_configured(merged)


def test_streamlit_config_keeps_the_dashboard_local_and_quiet() -> None:
    options = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())
    assert options["server"]["address"] == "127.0.0.1"
    assert 0 < options["server"]["maxUploadSize"] <= 50
    assert options["client"]["showErrorDetails"] == "none" and options["client"]["toolbarMode"] == "minimal"
    assert options["browser"]["gatherUsageStats"] is False


def test_launch_command_binds_the_checked_address(settings_env: Path, no_secrets_files: Path) -> None:
    settings = config.get_settings()
    assert settings.dashboard_address == "127.0.0.1"
    command = launch.dashboard_command(8600, settings.dashboard_address)
    assert command[command.index("--server.address") + 1] == "127.0.0.1"
    launch.check_dashboard_access(settings, "127.0.0.1")
    with pytest.raises(PipelineError, match="refusing"):
        launch.check_dashboard_access(settings, "0.0.0.0")
    no_secrets_files.write_text('[auth]\nredirect_uri = "https://dash.example/oauth2callback"\ncookie_secret = "c"\n')
    launch.check_dashboard_access(settings, "0.0.0.0")  # OIDC configured in the secrets file


def test_run_pipeline_refuses_an_exposed_app_before_any_stage(settings_env: Path, no_secrets_files: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    assert run_cli(run_pipeline.main, ["--address", "0.0.0.0", "--no-venv"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: refusing to serve the dashboard on 0.0.0.0") and "\n" not in err
    assert not (settings_env / "artifacts").exists()  # refused up front: no stage ran


def test_app_cli_refuses_an_exposed_dashboard_and_makes_hashes(settings_env: Path, tmp_path: Path) -> None:
    env = {**config.child_env(DASHBOARD_ADDRESS="0.0.0.0"), "HOME": str(tmp_path)}  # no ~/.streamlit secrets
    env.pop("DASHBOARD_PASSWORD_HASH", None)
    refused = subprocess.run([sys.executable, str(PROJECT_ROOT / "app.py")], env=env, capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.strip().startswith("error: refusing to serve the dashboard on 0.0.0.0")
    assert len(refused.stderr.strip().splitlines()) == 1

    made = subprocess.run([sys.executable, str(PROJECT_ROOT / "app.py"), "--hash-password"], input=PASSWORD + "\n",
                          env=env, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    stored = made.stdout.strip()
    assert auth.verify_password(PASSWORD, stored) and PASSWORD not in made.stdout + made.stderr
    short = subprocess.run([sys.executable, str(PROJECT_ROOT / "app.py"), "--hash-password"], input="abc\n",
                           env=env, capture_output=True, text=True, timeout=120)
    assert short.returncode == 1 and "too short" in short.stderr and not short.stdout


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on `port`, from /proc/net/tcp{,6} (Linux)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                found.add(address)
    return found


def test_plain_streamlit_run_from_another_folder_binds_localhost(tmp_path: Path) -> None:
    """`streamlit run /path/to/app.py` with no flags, from any folder: .streamlit/config.toml beside app.py applies."""
    import socket
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "app.py"),
                             "--server.port", str(port)], cwd=tmp_path, env={**config.child_env(), "HOME": str(tmp_path)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "streamlit did not start"
                time.sleep(0.5)
        assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1 only, no wildcard, no IPv6 any
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_may_review() -> None:
    assert auth.may_review("anyone", "")  # no list: everyone signed in
    assert auth.may_review("Lead@Example.com", "lead@example.com, x@example.com")
    assert not auth.may_review("team password", "lead@example.com")
    assert not auth.may_review("", " , ,lead@example.com")
