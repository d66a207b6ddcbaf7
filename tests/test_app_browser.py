"""The dashboard in a real browser: `streamlit run app.py` driven by headless Chromium (Playwright).

Needs Debian's chromium at /usr/bin/chromium (Playwright's own browser download is not used). Without
it the test is skipped on a developer's machine and FAILS in CI (CI=true).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

import config
from conftest import PROJECT_ROOT, TINY_LABELS

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
ARTIFACT_DIR = PROJECT_ROOT / "test-artifacts"
STARTUP_S = 60
ANSWER_MS = 90_000  # the first script run loads the model and spaCy


def _missing(reason: str) -> None:
    if config.get_settings().ci:
        pytest.fail(f"{reason} (CI requires the browser test)")
    pytest.skip(reason)


@pytest.fixture
def browser_path() -> Path:
    if not CHROMIUM.is_file():
        _missing(f"{CHROMIUM} not found: apt-get install -y chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("playwright is not installed: pip install -r requirements-dev.txt")
    return CHROMIUM


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"streamlit not healthy after {STARTUP_S}s:\n{log_path.read_text()[-3000:]}")


@pytest.fixture
def app_url(settings_env: Path, untrained_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("MODEL_SOURCE", str(untrained_model_dir))
    port = _free_port()
    log_path = settings_env / "streamlit.log"
    command = [
        sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "app.py"),
        "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(command, cwd=PROJECT_ROOT, env=dict(os.environ), stdout=log_file,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log_path)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_type_a_message_and_read_the_intent(browser_path: Path, app_url: str, settings_env: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(browser_path), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.goto(app_url, wait_until="domcontentloaded")
            box = page.get_by_label("Customer message")
            box.wait_for(timeout=ANSWER_MS)
            box.fill("Hi, I'm Jane Smith, where is my order? jane.smith@example.com")
            page.get_by_role("button", name="Classify").click()
            value = page.locator('[data-testid="stMetricValue"]').first
            value.wait_for(timeout=ANSWER_MS)
            intent = value.inner_text().strip()
            seen = page.locator('[data-testid="stCode"]').first.inner_text()
            page.wait_for_timeout(500)  # let the chart finish drawing before the screenshot
            shot = page.screenshot(full_page=True)
        finally:
            browser.close()

    ARTIFACT_DIR.mkdir(exist_ok=True)
    for folder in (ARTIFACT_DIR, settings_env):
        (folder / "app_predict.png").write_bytes(shot)
    assert intent in TINY_LABELS + [config.get_settings().fallback_label]
    assert "jane.smith@example.com" not in seen and "where is my order" in seen

    engine = sa.create_engine(config.get_settings().database_url)
    with engine.connect() as conn:
        logged = conn.execute(sa.text("SELECT intent, text FROM predictions")).all()
    engine.dispose()
    assert len(logged) == 1 and logged[0].intent == intent and "jane.smith" not in logged[0].text
