"""Hot reload: notice a new serving release and switch to it without a restart or a failed request.

`ReleasePoller` runs beside a swappable model holder (the `PredictionService` of the app and the
API). A background thread checks, every RELOAD_INTERVAL_S seconds, which release should serve:

- MODEL_SOURCE empty: the local registry's LATEST pointer (moved by push_model.py, and by
  `push_model.py --rollback`);
- MODEL_SOURCE `owner/name` (no revision): the commit of the Hub repo's `serving` tag (else its newest
  version tag), one small API call per check;
- a folder or `owner/name@revision`: pinned, never reloaded.

When it changes, the new release is loaded and warmed up on that thread, off the request path, and
then swapped in (`PredictionService.swap_model`: one reference assignment). Work reads the service's
model once and keeps that object until it answers, so a request in flight finishes on the model it
started with; the old model is freed when the last such request is done. A release that fails to
load is logged and the current one keeps serving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from config import Settings
from intent_pipeline import registry

log = logging.getLogger(__name__)


def serving_release_id(settings: Settings) -> str | None:
    """Identity of the release that should serve now, or None when the source is pinned (no reload)."""
    source = settings.model_source.strip()
    if not source:
        return registry.serving_local_version(settings)
    if Path(source).expanduser().exists() or "@" in source or source.count("/") != 1:
        return None
    from huggingface_hub import HfApi

    return registry.hub_serving_revision(HfApi(token=settings.hf_token or None), source)


def release_folder(settings: Settings, release_id: str | None) -> Path:
    """The local folder of `release_id` (downloaded from the Hub at exactly that commit when needed)."""
    source = settings.model_source.strip()
    if release_id is None:
        return registry.resolve_model_source(settings)
    if not source:
        return registry.local_release(settings, release_id)  # exactly the version seen, even if LATEST moved since
    return registry.resolve_model_source(settings, f"{source}@{release_id}")


class ReleasePoller:
    """Checks which release should serve and, when it is not the one loaded, hands its folder to `apply`.

    `current_folder()` names the folder serving now: its name is the release id (a local registry
    folder is named after its version, a Hub snapshot folder after its commit). `apply(folder)` loads
    the new release and swaps it in (e.g. `PredictionService.swap_model(load_model(...))`).
    """

    def __init__(self, settings: Settings, current_folder: Callable[[], Path], apply: Callable[[Path], None],
                 interval_s: float | None = None):
        self.settings = settings
        self._current_folder = current_folder
        self._apply = apply
        self.interval_s = settings.reload_interval_s if interval_s is None else interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed: str | None = None
        self.swaps = 0

    def wanted(self) -> str | None:
        """The release id that should serve, or None (pinned source, or the check itself failed)."""
        try:
            return serving_release_id(self.settings)
        except Exception as exc:  # a Hub outage must not stop serving: keep what is loaded
            log.warning("cannot check for a new release: %s",
                        str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
            return None

    def check_now(self) -> bool:
        """Look once; load and swap in a new release if there is one. True when it swapped."""
        release_id = self.wanted()
        current = self._current_folder().name
        if release_id is None or release_id == current:
            return False
        try:
            self._apply(release_folder(self.settings, release_id))
        except Exception as exc:  # a broken release must not take the service down: the old one keeps serving
            if self._failed != release_id:
                log.error("release %s cannot be loaded, still serving %s: %s", release_id, current,
                          str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__)
                self._failed = release_id
            return False
        self.swaps += 1
        log.info("hot reload: now serving %s (was %s)", release_id, current)
        return True

    def start(self) -> "ReleasePoller":
        """Check in the background every `interval_s` seconds (no thread when it is 0)."""
        if self.interval_s <= 0 or self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="release-watcher", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            started = time.monotonic()
            self.check_now()
            log.debug("release check took %.3f s", time.monotonic() - started)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
