"""Starting the dashboard server: the one `streamlit run app.py` command, and its access check.

`python app.py` and `run_pipeline.py` both start the dashboard through `run_dashboard`, from the
project root so Streamlit reads `.streamlit/config.toml` (localhost, upload limit, no error
details in the page). Before anything starts, `check_dashboard_access` refuses a non-local address
when no login is configured. app.py checks the same rule again at page load, for `streamlit run`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from config import PROJECT_ROOT, Settings
from intent_pipeline import auth

APP_SCRIPT = PROJECT_ROOT / "app.py"
# Where Streamlit looks for secrets by default (later files win), as in its `secrets.files` option.
SECRETS_FILES = (Path.home() / ".streamlit" / "secrets.toml", PROJECT_ROOT / ".streamlit" / "secrets.toml")


def check_dashboard_access(settings: Settings, address: str) -> None:
    """Raise a one-line PipelineError when serving `address` would expose the dashboard without a login."""
    secrets = auth.read_secrets_files(SECRETS_FILES)
    password_hash = settings.dashboard_password_hash or str(secrets.get("DASHBOARD_PASSWORD_HASH", "")).strip()
    auth.check_exposure(address, password_hash, auth.oidc_configured(secrets))


def dashboard_command(port: int, address: str) -> list[str]:
    # Flags override config.toml, so the address checked is the address served.
    return [sys.executable, "-m", "streamlit", "run", str(APP_SCRIPT), "--server.port", str(port),
            "--server.address", address, "--server.headless", "true", "--browser.gatherUsageStats", "false"]


def run_dashboard(port: int, address: str) -> int:
    """Serve the dashboard until Ctrl+C; returns Streamlit's exit code (0 after Ctrl+C)."""
    try:
        return subprocess.call(dashboard_command(port, address), cwd=PROJECT_ROOT)
    except KeyboardInterrupt:
        return 0
