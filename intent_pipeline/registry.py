"""Model releases: where they live (local registry or Hugging Face Hub) and how to find one.

Local layout: `<REGISTRY_DIR>/<repo name>/<version>/` (a full release folder) and
`<REGISTRY_DIR>/<repo name>/LATEST` (a text file naming the latest version). `MODEL_SOURCE` picks a
release: empty = latest local release; an existing path = that folder; `owner/name[@revision]` = a
Hub repo, downloaded with `snapshot_download` (needs network, and `HF_TOKEN` if private).
"""

from __future__ import annotations

import logging
from pathlib import Path

from config import Settings
from intent_pipeline.io import PipelineError

log = logging.getLogger(__name__)

DEFAULT_REPO_NAME = "intent-classifier"
LATEST_FILE = "LATEST"


def repo_name(settings: Settings) -> str:
    """Folder name in the local registry: the name part of HF_REPO_ID, or a default."""
    return settings.hf_repo_id.split("/")[-1] if settings.hf_repo_id else DEFAULT_REPO_NAME


def latest_local_release(settings: Settings) -> Path:
    repo_dir = settings.registry_dir / repo_name(settings)
    pointer = repo_dir / LATEST_FILE
    if not pointer.is_file():
        raise PipelineError(
            f"no release in the local registry {repo_dir}: run `python push_model.py` "
            "(or set MODEL_SOURCE to a release folder or a Hub repo id)"
        )
    release = repo_dir / pointer.read_text(encoding="utf-8").strip()
    if not (release / "config.json").is_file():
        raise PipelineError(f"the latest release {release} is missing or incomplete: re-run `python push_model.py`")
    return release


def resolve_model_source(settings: Settings, source: str | None = None) -> Path:
    """A local folder holding the release named by `source` (default: settings.model_source)."""
    source = (settings.model_source if source is None else source).strip()
    if not source:
        return latest_local_release(settings)
    path = Path(source).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise PipelineError(f"MODEL_SOURCE {path} is not a model release (no config.json)")
        return path
    if source.count("/") == 1 and not source.startswith((".", "/")):
        return _download_from_hub(source, settings)
    raise PipelineError(f"MODEL_SOURCE {source!r} is neither an existing folder nor a Hub repo id (owner/name)")


def _download_from_hub(source: str, settings: Settings) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    repo_id, _, revision = source.partition("@")
    try:
        return Path(snapshot_download(repo_id, revision=revision or None, token=settings.hf_token or None))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PipelineError(f"cannot download model {source!r} from the Hugging Face Hub: {reason}") from None
