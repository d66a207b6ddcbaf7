"""Who may open the dashboard (app.py through AppTest): local by default, a password or Streamlit's OIDC
login when shared (every view behind it), failed passwords backing off, and an exposed dashboard
without a login refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from app import VIEWS as VIEWS_SHOWN
from intent_pipeline import auth, ui_login
from test_app import APP, TIMEOUT, app_env  # noqa: F401  (app_env: fixture)

PASSWORD = "team password 2026"
OIDC = {"auth": {"redirect_uri": "https://dash.example/oauth2callback", "cookie_secret": "c0okie",
                 "client_id": "dashboard", "client_secret": "s3cret-client",
                 "server_metadata_url": "https://id.example/.well-known/openid-configuration"}}


@pytest.fixture(scope="module")
def password_hash() -> str:
    return auth.hash_password(PASSWORD)


@pytest.fixture(autouse=True)
def fresh_throttle() -> None:
    ui_login.login_throttle.clear()  # the back-off is per server process; each test starts clean


@pytest.fixture
def bound_to() -> Iterator:
    """Set the address the Streamlit server is bound to (as --server.address would), restored after."""
    before = st_config.get_option("server.address")

    def bind(address: str) -> None:
        st_config.set_option("server.address", address)

    yield bind
    st_config.set_option("server.address", before)


def open_app(secrets: dict | None = None, user: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.secrets.update(secrets or {})
    if user is not None:
        at.user = user
    at.run()
    assert not at.exception, at.exception
    return at


def log_in(at: AppTest, password: str) -> AppTest:
    at.text_input(key="login_password").input(password)
    at.button[0].click().run()  # the form's "Log in"
    assert not at.exception, at.exception
    return at


def shows_dashboard(at: AppTest) -> bool:
    return bool(at.sidebar.radio) and at.sidebar.radio(key="view").options == list(VIEWS_SHOWN)


def test_local_dashboard_opens_without_login(app_env: Path) -> None:
    assert st_config.get_option("server.address") == "127.0.0.1"  # from .streamlit/config.toml
    at = open_app()
    assert shows_dashboard(at) and not at.text_input


def test_password_guards_every_view_and_backs_off(app_env: Path, password_hash: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHBOARD_PASSWORD_HASH", password_hash)
    at = open_app()
    assert not shows_dashboard(at) and at.text_input(key="login_password").proto.type == at.text_input(key="login_password").proto.PASSWORD
    assert not at.get("plotly_chart") and not at.metric  # nothing from the model or the database
    for attempt in range(3):
        log_in(at, f"guess {attempt}")
        assert at.error[0].value == "Wrong password." and not shows_dashboard(at)
    log_in(at, "guess 4")
    assert "try again in 2 s" in at.error[0].value
    log_in(at, PASSWORD)  # even the right password waits out the back-off
    assert "Too many failed attempts" in at.error[0].value and not shows_dashboard(at)

    ui_login.login_throttle.clear()
    log_in(at, PASSWORD)
    assert shows_dashboard(at)
    for view in VIEWS_SHOWN:
        at.sidebar.radio(key="view").set_value(view).run()
        assert not at.exception and shows_dashboard(at)
    at.sidebar.button(key="logout").click().run()
    assert not shows_dashboard(at) and at.text_input(key="login_password")


def test_password_hash_from_streamlit_secrets(app_env: Path, password_hash: str) -> None:
    at = open_app(secrets={"DASHBOARD_PASSWORD_HASH": password_hash})
    assert not shows_dashboard(at)
    assert shows_dashboard(log_in(at, PASSWORD))


def test_oidc_login_guards_every_view(app_env: Path, password_hash: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHBOARD_PASSWORD_HASH", password_hash)  # OIDC wins: it names the person
    at = open_app(secrets=OIDC, user={"is_logged_in": False})
    assert not shows_dashboard(at) and not at.text_input
    assert [b.label for b in at.button] == ["Log in"]
    at.button(key="login_default").click().run()  # AppTest's secrets never reach st.login: a clear error, no trace
    assert not at.exception and "not configured correctly" in at.error[0].value and not shows_dashboard(at)
    at = open_app(secrets=OIDC, user={"is_logged_in": True, "email": "lead@example.com"})
    assert shows_dashboard(at)
    assert any("lead@example.com" in c.value for c in at.sidebar.caption)
    at.sidebar.button(key="logout").click().run()
    assert not at.exception and not shows_dashboard(at) and [b.label for b in at.button] == ["Log in"]


def test_exposed_dashboard_without_login_is_refused(app_env: Path, bound_to, password_hash: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    bound_to("0.0.0.0")
    at = open_app()
    [error] = at.error
    assert error.value.startswith("Refusing to serve the dashboard on 0.0.0.0 without a login")
    assert not shows_dashboard(at) and not at.metric
    monkeypatch.setenv("DASHBOARD_PASSWORD_HASH", password_hash)
    at = open_app()
    assert not at.error and at.text_input(key="login_password") and not shows_dashboard(at)
    bound_to("")  # Streamlit's own default: every interface
    monkeypatch.delenv("DASHBOARD_PASSWORD_HASH")
    assert "every network interface" in open_app().error[0].value


def test_broken_password_hash_never_opens_the_door(app_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHBOARD_PASSWORD_HASH", "my-plain-password")
    at = open_app()
    assert "not a hash made by `python app.py --hash-password`" in at.error[0].value
    assert not shows_dashboard(at) and "my-plain-password" not in at.error[0].value
