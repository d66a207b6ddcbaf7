"""The dashboard in a real browser: `streamlit run app.py` driven by headless Chromium (Playwright).

Needs Debian's chromium at /usr/bin/chromium (Playwright's own browser download is not used). Without
it the test is skipped on a developer's machine and FAILS in CI (CI=true).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

import config
from conftest import PROJECT_ROOT, TINY_LABELS
from servers import ChildServer, child_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
ARTIFACT_DIR = PROJECT_ROOT / "test-artifacts"
STARTUP_S = 60
ANSWER_MS = 90_000
STREAMLIT_READY = re.compile(r"URL: (http://127\.0\.0\.1:\d+)")  # the first script run loads the model and spaCy


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


def _wait_healthy(server: ChildServer) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(f"streamlit exited with {server.proc.returncode}:\n{server.output()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"streamlit not healthy after {STARTUP_S}s:\n{server.output()[-3000:]}")


@contextlib.contextmanager
def serve_app(folder: Path) -> Iterator[str]:
    """`streamlit run app.py` from the project root (so .streamlit/config.toml applies) on a port it picks
    itself (port 0, read from its "URL:" line: no free-port race); stopped when the block ends."""
    command = [
        sys.executable, "-u", "-m", "streamlit", "run", str(PROJECT_ROOT / "app.py"),
        "--server.headless", "true", "--server.port", "0", "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]
    with child_server(command, dict(os.environ), ready=STREAMLIT_READY, startup_s=STARTUP_S) as server:
        try:
            _wait_healthy(server)
            yield server.url
        finally:
            port = server.url.rsplit(":", 1)[1]
            (folder / f"streamlit-{port}.log").write_text(server.output())


@pytest.fixture
def app_url(settings_env: Path, untrained_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("MODEL_SOURCE", str(untrained_model_dir))
    from intent_pipeline import db

    db.create_schema(config.get_settings().database_url)  # as stage 2 does: the app only checks the schema
    with serve_app(settings_env) as url:
        yield url


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


def batch_csv(rows: int) -> bytes:
    lines = ["text"] + [f"where is my order number {i}, it is late" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def test_review_view_behind_a_password(browser_path: Path, settings_env: Path, untrained_model_dir: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A shared dashboard: log in, then approve one correction and reject the rest in bulk."""
    from playwright.sync_api import sync_playwright

    from intent_pipeline import auth, db

    password = "review team password"
    monkeypatch.setenv("MODEL_SOURCE", str(untrained_model_dir))
    monkeypatch.setenv("DASHBOARD_PASSWORD_HASH", auth.hash_password(password))
    url = config.get_settings().database_url
    engine = db.connect(url)
    curated = "i need the invoice for [ORDER_ID]"
    with engine.begin() as conn:
        conn.execute(db.messages.insert().values(text=curated, label="check_order",
                                                 text_hash=hashlib.sha256(curated.encode()).hexdigest()))
    ids = [db.save_feedback(engine, text, said, label, model_version="test-untrained") for text, said, label in [
        ("where is my parcel, it was due on monday", "other", "check_order"),
        (curated, "check_order", "refund"),
        ("i want my money back for [PERSON]'s order", "other", "refund"),
    ]]
    engine.dispose()

    with serve_app(settings_env) as app, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(browser_path), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(app, wait_until="domcontentloaded")
            box = page.get_by_label("Password", exact=True)
            box.wait_for(timeout=ANSWER_MS)
            assert page.locator('[data-testid="stSidebar"] [role="radiogroup"]').count() == 0  # nothing before login
            box.fill(password)
            page.get_by_role("button", name="Log in").click()
            sidebar = page.locator('[data-testid="stSidebar"]')
            sidebar.get_by_text("Review", exact=True).click(timeout=ANSWER_MS)
            page.get_by_text("where is my parcel, it was due on monday").wait_for(timeout=ANSWER_MS)
            page.get_by_text("Select all on this page").wait_for(timeout=ANSWER_MS)
            page.locator('[data-testid="stMetricValue"]').first.wait_for(timeout=ANSWER_MS)
            page.wait_for_function("!document.querySelector('[data-stale=\"true\"]')", timeout=ANSWER_MS)
            page.wait_for_timeout(500)
            shot = page.screenshot(full_page=True)
            page.get_by_role("button", name="Approve", exact=True).first.click()
            page.get_by_text("1 correction approved.").wait_for(timeout=ANSWER_MS)
            page.get_by_text("Select all on this page").click()
            page.get_by_role("button", name="Reject selected (2)").click()
            page.get_by_text("2 corrections rejected.").wait_for(timeout=ANSWER_MS)
            page.get_by_text("Nothing to review").wait_for(timeout=ANSWER_MS)

            # A longer batch shows a progress bar while it is masked and classified.
            sidebar.get_by_text("Batch", exact=True).click()
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
                files=[{"name": "batch.csv", "mimeType": "text/csv", "buffer": batch_csv(600)}])
            page.locator('[data-testid="stProgress"]').wait_for(timeout=ANSWER_MS)
            page.get_by_text("Classified 600 messages").wait_for(timeout=ANSWER_MS)
        finally:
            browser.close()

    ARTIFACT_DIR.mkdir(exist_ok=True)
    for folder in (ARTIFACT_DIR, settings_env):
        (folder / "app_review.png").write_bytes(shot)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        decided = dict(conn.execute(sa.text("SELECT id, status FROM feedback")).all())
        batch_logged = conn.execute(sa.text("SELECT COUNT(*) FROM predictions WHERE channel = 'batch'")).scalar()
    engine.dispose()
    assert decided == {ids[0]: "approved", ids[1]: "rejected", ids[2]: "rejected"}
    assert batch_logged == 600
