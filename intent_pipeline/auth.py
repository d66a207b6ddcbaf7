"""Who may open the dashboard: password hashes, failed-login back-off and the bind-address rule.

The dashboard shows logged customer messages and sends reviewed labels to training, so it is local
(127.0.0.1) by default and needs a login whenever it is shared. Two logins exist: a password whose
scrypt hash is configured (DASHBOARD_PASSWORD_HASH, made by `python app.py --hash-password`), and
Streamlit's own OIDC login (`st.login`) when `.streamlit/secrets.toml` has an `[auth]` section.
Serving a non-local address with neither is refused (`check_exposure`).

Everything here is Streamlit-free, so launchers (run_pipeline.py, `python app.py`) and tests use it too.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import ipaddress
import logging
import secrets
import sys
import threading
import time
import tomllib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from intent_pipeline.errors import PipelineError

log = logging.getLogger(__name__)

SCHEME = "scrypt"
# scrypt cost: ~50 ms and 16 MiB per check, which makes guessing slow without slowing a login.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES = 16
KEY_BYTES = 32
MIN_PASSWORD_CHARS = 10
HOW_TO_LOGIN = (
    "set DASHBOARD_PASSWORD_HASH (make one with `python app.py --hash-password`) or configure Streamlit's "
    "OIDC login ([auth] in .streamlit/secrets.toml)"
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, salt: bytes | None = None) -> str:
    """`scrypt:N:r:p:salt:key` (base64url; no `$`, so it survives shells and .env files unquoted)."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise PipelineError(f"the password is too short: use at least {MIN_PASSWORD_CHARS} characters")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return ":".join([SCHEME, str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(key)])


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024,
                          dklen=KEY_BYTES)


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes]:
    parts = stored.strip().split(":")
    try:
        if len(parts) != 6 or parts[0] != SCHEME:
            raise ValueError
        n, r, p = (int(x) for x in parts[1:4])
        salt, key = _unb64(parts[4]), _unb64(parts[5])
        if n < 2 or n & (n - 1) or not (0 < r <= 64 and 0 < p <= 16) or len(salt) < 8 or len(key) < 16:
            raise ValueError
    except ValueError:
        raise PipelineError("DASHBOARD_PASSWORD_HASH is not a hash made by `python app.py --hash-password`") from None
    return n, r, p, salt, key


def read_new_password() -> str:
    """A new password from the terminal (asked twice, not echoed) or the first line of piped stdin."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("Dashboard password: ")
    if getpass.getpass("Repeat it: ") != password:
        raise PipelineError("the two passwords differ")
    return password


def check_password_hash(stored: str) -> None:
    """Raise a one-line PipelineError if `stored` is not a usable hash (checked when the app starts)."""
    _parse(stored)


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored`, compared in constant time."""
    n, r, p, salt, key = _parse(stored)
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), key)


class LoginThrottle:
    """Failed password attempts per client: a few free tries, then a wait that doubles with each failure.

    One instance serves every session of the app process (thread-safe); a success clears the client.
    The table is bounded so that a flood of client keys cannot grow memory without limit.
    """

    def __init__(self, free_attempts: int = 3, base_s: float = 2.0, max_s: float = 300.0,
                 max_clients: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.free_attempts, self.base_s, self.max_s, self.max_clients = free_attempts, base_s, max_s, max_clients
        self.clock = clock
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()  # client -> (failures, locked until)
        self._lock = threading.Lock()

    def wait_s(self, client: str) -> float:
        """Seconds before `client` may try again (0 when it may try now)."""
        with self._lock:
            _, until = self._failures.get(client, (0, 0.0))
        return max(0.0, until - self.clock())

    def failed(self, client: str) -> float:
        """Record a failed attempt; returns the wait now imposed on `client`."""
        with self._lock:
            count = self._failures.pop(client, (0, 0.0))[0] + 1
            extra = count - self.free_attempts
            wait = min(self.max_s, self.base_s * 2 ** (extra - 1)) if extra > 0 else 0.0
            self._failures[client] = (count, self.clock() + wait)
            while len(self._failures) > self.max_clients:
                self._failures.popitem(last=False)
        return wait

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


def is_local_address(address: str | None) -> bool:
    """Whether a bind address only accepts connections from this machine ("" means every interface)."""
    address = (address or "").strip().strip("[]")
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False  # "", 0.0.0.0-style wildcards are caught above; any other host name may be public


def oidc_configured(secrets_: Mapping[str, Any]) -> bool:
    """Whether Streamlit secrets configure `st.login` (an [auth] section with redirect_uri and cookie_secret)."""
    section = secrets_.get("auth") if isinstance(secrets_, Mapping) else None
    return isinstance(section, Mapping) and bool(section.get("redirect_uri")) and bool(section.get("cookie_secret"))


def read_secrets_files(paths: Iterable[Path]) -> dict[str, Any]:
    """Merge the TOML secrets files Streamlit would read (later files win); unreadable ones are skipped."""
    merged: dict[str, Any] = {}
    for path in paths:
        try:
            merged.update(tomllib.loads(Path(path).read_text(encoding="utf-8")))
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            log.warning("ignoring unreadable secrets file %s (%s)", path, type(exc).__name__)
    return merged


def login_kind(password_hash: str, oidc: bool) -> str | None:
    """"oidc", "password" or None; OIDC wins when both are configured (it names the person)."""
    if oidc:
        return "oidc"
    return "password" if password_hash.strip() else None


def may_review(user: str, reviewers: str) -> bool:
    """Whether `user` may approve or reject feedback: anyone signed in, unless REVIEWERS lists who
    (comma-separated e-mail addresses of OIDC users; then a password or local user may not)."""
    allowed = {name.strip().lower() for name in reviewers.split(",") if name.strip()}
    return not allowed or user.strip().lower() in allowed


def check_exposure(address: str | None, password_hash: str, oidc: bool) -> None:
    """Refuse (one-line PipelineError) to serve a non-local address without any login configured."""
    if password_hash.strip():
        check_password_hash(password_hash)
    if not is_local_address(address) and login_kind(password_hash, oidc) is None:
        where = address.strip() if address and address.strip() else "every network interface"
        raise PipelineError(f"refusing to serve the dashboard on {where} without a login: {HOW_TO_LOGIN}, "
                            "or bind to 127.0.0.1")
