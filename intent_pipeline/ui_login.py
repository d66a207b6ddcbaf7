"""The dashboard's door (Streamlit): open on localhost, a login when shared, a refusal otherwise.

`require_login()` runs before any view or data is loaded. With Streamlit's OIDC login configured
([auth] in secrets) it shows `st.login`; with DASHBOARD_PASSWORD_HASH a password form whose failed
attempts back off per client; with neither, the page opens only when the server is bound to a
local address (the same rule launchers apply in intent_pipeline/launch.py).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import streamlit as st
from streamlit.errors import StreamlitAuthError

from intent_pipeline import auth
from intent_pipeline.errors import PipelineError

log = logging.getLogger(__name__)

TITLE = "Customer intent dashboard"
SESSION_KEY = "dashboard_login"  # set once the password was right, for this browser session only
LOCAL_USER = "local user"


@st.cache_resource
def login_throttle() -> auth.LoginThrottle:
    return auth.LoginThrottle()  # one per server process: every session's failures count


def bind_address() -> str:
    return str(st.get_option("server.address") or "")


def client_key() -> str:
    """The client the back-off applies to: its IP when Streamlit knows it."""
    try:
        ip = st.context.ip_address
    except Exception:  # no client connection (e.g. a bare script run)
        ip = None
    return ip if isinstance(ip, str) and ip else "local"  # None when the browser is on this machine


def require_login(password_hash: str, secrets: Mapping[str, Any]) -> str | None:
    """Who is looking ("" never): the page is allowed. None: a login page or refusal was rendered instead."""
    oidc = auth.oidc_configured(secrets)
    try:
        auth.check_exposure(bind_address(), password_hash, oidc)
    except PipelineError as exc:
        log.error("%s", exc)
        st.title(TITLE)
        st.error(str(exc)[:1].upper() + str(exc)[1:] + ".")
        return None
    kind = auth.login_kind(password_hash, oidc)
    if kind == "oidc":
        return oidc_gate(secrets["auth"])
    if kind == "password":
        return password_gate(password_hash)
    return LOCAL_USER


def _providers(section: Mapping[str, Any]) -> list[str | None]:
    named = [name for name, value in section.items() if isinstance(value, Mapping)]
    return [None] if "client_id" in section or not named else named


def oidc_gate(section: Mapping[str, Any]) -> str | None:
    if st.user.is_logged_in:
        who = str(st.user.get("email") or st.user.get("name") or "signed-in user")
        logout_button(who, st.logout)
        return who
    st.title(TITLE)
    st.info("Sign in to open the dashboard.")
    for provider in _providers(section):
        label = "Log in" if provider is None else f"Log in with {provider}"
        if st.button(label, type="primary", key=f"login_{provider or 'default'}"):
            try:
                st.login() if provider is None else st.login(provider)
            except StreamlitAuthError as exc:  # e.g. an incomplete [auth] section: say so, keep the door shut
                log.error("OIDC login failed: %s", exc)
                st.error("The OIDC login is not configured correctly ([auth] in .streamlit/secrets.toml); "
                         "see the server log.")
    return None


def password_gate(password_hash: str) -> str | None:
    if st.session_state.get(SESSION_KEY):
        logout_button("team password", _forget_password_login)
        return "team password"
    st.title(TITLE)
    with st.form("login_form", clear_on_submit=True):
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in", type="primary")
    if submitted:
        check_password(password, password_hash)
    else:
        st.caption("This dashboard is shared: enter the team password.")
    return None


def check_password(password: str, password_hash: str) -> None:
    throttle, client = login_throttle(), client_key()
    wait = throttle.wait_s(client)
    if wait > 0:
        st.error(f"Too many failed attempts: try again in {math.ceil(wait)} s.")
        return
    if password and auth.verify_password(password, password_hash):
        throttle.succeeded(client)
        st.session_state[SESSION_KEY] = True
        st.rerun()
    wait = throttle.failed(client)
    # A digest, not the IP: enough to see repeated attempts from one client without logging personal data.
    log.warning("failed dashboard login (client %s, wait %.0f s)", hashlib.sha256(client.encode()).hexdigest()[:12], wait)
    st.error("Wrong password." + (f" Too many failed attempts: try again in {math.ceil(wait)} s." if wait else ""))


def _forget_password_login() -> None:
    st.session_state.pop(SESSION_KEY, None)


def logout_button(who: str, logout: Callable[[], None]) -> None:
    st.sidebar.caption(f"Signed in: {who}")
    if st.sidebar.button("Log out", key="logout"):
        logout()
        st.rerun()
