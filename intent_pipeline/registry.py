"""Model releases: where they live (local registry or Hugging Face Hub) and how to find one.

Local layout: `<REGISTRY_DIR>/<repo name>/<version>/` (a full release folder) and
`<REGISTRY_DIR>/<repo name>/LATEST` (a text file naming the latest version). `MODEL_SOURCE` picks a
release: empty = latest local release; an existing path = that folder; `owner/name[@revision]` = a
Hub repo, downloaded with `snapshot_download` (needs network, and `HF_TOKEN` if private).

Publishing: versions are `v1, v2, ...` per repo (the next number after every version seen locally
and, for the Hub, among the repo's tags). A release is built in a hidden staging folder inside the
repo folder, renamed into place in one step (a reader never sees half a release), and only then is
LATEST replaced atomically. On the Hub, the same folder is one commit, tagged with the version on a
temporary branch (so a failed upload or tag publishes nothing), then committed to main as well.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from config import Settings
from intent_pipeline.artifacts import LATEST_POINTER, MODEL_CONFIG
from intent_pipeline.errors import PipelineError
from intent_pipeline.files import write_text_atomic

log = logging.getLogger(__name__)

DEFAULT_REPO_NAME = "intent-classifier"
SERVING_TAG = "serving"
VERSION_RE = re.compile(r"^v(\d+)$")
# A release is committed and tagged on this branch before main sees it (see publish_hub).
STAGING_BRANCH_PREFIX = "release-staging-"


def repo_name(settings: Settings) -> str:
    """Folder name in the local registry: the name part of HF_REPO_ID, or a default."""
    return settings.hf_repo_id.split("/")[-1] if settings.hf_repo_id else DEFAULT_REPO_NAME


def latest_local_release(settings: Settings) -> Path:
    repo_dir = settings.registry_dir / repo_name(settings)
    pointer = repo_dir / LATEST_POINTER
    if not pointer.is_file():
        raise PipelineError(
            f"no release in the local registry {repo_dir}: run `python push_model.py` "
            "(or set MODEL_SOURCE to a release folder or a Hub repo id)"
        )
    return local_release(settings, pointer.read_text(encoding="utf-8").strip())


def local_release(settings: Settings, version: str) -> Path:
    """The folder of local release `version`, or a PipelineError when it is missing or incomplete."""
    release = settings.registry_dir / repo_name(settings) / version
    if not version or not (release / MODEL_CONFIG).is_file():
        raise PipelineError(f"the latest release {release} is missing or incomplete: re-run `python push_model.py`")
    return release


def resolve_model_source(settings: Settings, source: str | None = None) -> Path:
    """A local folder holding the release named by `source` (default: settings.model_source)."""
    source = (settings.model_source if source is None else source).strip()
    if not source:
        return latest_local_release(settings)
    path = Path(source).expanduser()
    if path.exists():
        if not (path / MODEL_CONFIG).is_file():
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
        revision = revision or _serving_revision_or_none(repo_id, settings)
        folder = Path(snapshot_download(repo_id, revision=revision or None, token=settings.hf_token or None))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as exc:
        reason = hub_error_reason(exc, settings)
        raise PipelineError(f"cannot download model {source!r} from the Hugging Face Hub: {reason}") from None
    if not (folder / MODEL_CONFIG).is_file():
        raise PipelineError(f"the Hub repo {source!r} holds no model release (no config.json)")
    return folder


def _serving_revision_or_none(repo_id: str, settings: Settings) -> str | None:
    """The serving commit of `repo_id`, or None (then `main`) when its tags cannot be listed."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return hub_serving_revision(HfApi(token=settings.hf_token or None), repo_id)
    except (HfHubHTTPError, OSError, ValueError):
        return None  # snapshot_download then reports the real problem (auth, missing repo, offline)


def next_version(existing: Iterable[str]) -> str:
    """`v<n+1>` where n is the highest `v<n>` among `existing` (other names are ignored)."""
    numbers = [int(m.group(1)) for name in existing if (m := VERSION_RE.match(name))]
    return f"v{max(numbers, default=0) + 1}"


def local_versions(settings: Settings) -> list[str]:
    repo_dir = settings.registry_dir / repo_name(settings)
    if not repo_dir.is_dir():
        return []
    return sorted((p.name for p in repo_dir.iterdir() if p.is_dir() and VERSION_RE.match(p.name)),
                  key=lambda name: int(name[1:]))


def staging_dir(settings: Settings) -> Path:
    """An empty hidden folder on the registry's file system, so publishing is a single rename."""
    repo_dir = settings.registry_dir / repo_name(settings)
    repo_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".staging-", dir=repo_dir))


def publish_local(staged: Path, version: str, settings: Settings) -> Path:
    """Rename a complete staged release to `<repo>/<version>/` and point LATEST at it."""
    repo_dir = settings.registry_dir / repo_name(settings)
    target = repo_dir / version
    if target.exists():
        raise PipelineError(f"release {target} already exists: versions are never overwritten; re-run to get the next one")
    os.replace(staged, target)  # same file system (staging_dir), so this is atomic
    write_text_atomic(repo_dir / LATEST_POINTER, version + "\n")
    log.info("published %s to the local registry at %s", version, target)
    return target


def serving_local_version(settings: Settings) -> str | None:
    """The version LATEST names, or None when nothing was released locally."""
    pointer = settings.registry_dir / repo_name(settings) / LATEST_POINTER
    try:
        return pointer.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def rollback_local(settings: Settings, version: str) -> str | None:
    """Point LATEST at an existing, complete local release; returns the version it named before."""
    repo_dir = settings.registry_dir / repo_name(settings)
    release = repo_dir / version
    if not VERSION_RE.match(version) or not release.is_dir():
        known = ", ".join(local_versions(settings)) or "none"
        raise PipelineError(f"no release {version!r} in the local registry {repo_dir} (releases: {known})")
    if not (release / MODEL_CONFIG).is_file():
        raise PipelineError(f"release {release} is incomplete (no config.json): it cannot serve")
    previous = serving_local_version(settings)
    write_text_atomic(repo_dir / LATEST_POINTER, version + "\n")
    log.info("local registry: LATEST now names %s (was %s)", version, previous or "nothing")
    return previous


def discard_staging(staged: Path) -> None:
    shutil.rmtree(staged, ignore_errors=True)


def hub_versions(api, repo_id: str) -> list[str]:
    """Version tags already on the Hub repo (so numbering continues across machines); none if it does not exist yet."""
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        refs = api.list_repo_refs(repo_id, repo_type="model")
    except RepositoryNotFoundError:
        return []  # created only once the release has passed every check
    return [tag.name for tag in refs.tags if VERSION_RE.match(tag.name)]


def _hub_operations(folder: Path) -> list:
    from huggingface_hub import CommitOperationAdd

    return [CommitOperationAdd(path_in_repo=path.relative_to(folder).as_posix(), path_or_fileobj=str(path))
            for path in sorted(folder.rglob("*")) if path.is_file()]


def publish_hub(folder: Path, repo_id: str, version: str, settings: Settings, api, private: bool = True) -> str:
    """Upload every file of `folder` to `repo_id` in one commit tagged `version`; returns the commit URL.

    The commit is made on a temporary branch and tagged there; only then does `main` get the same
    files (a second, cheap commit: the large files are already in LFS storage). So a failed upload or
    a failed tag leaves no half-published version: no tag, `main` untouched, the branch deleted.
    `api` is an `HfApi` built with the token (the caller made sure the repo exists). The token never
    reaches a message: Hub errors are reduced to their first line.
    """
    from huggingface_hub.errors import HfHubHTTPError

    # RuntimeError: huggingface_hub wraps a failed LFS upload in one.
    failures = (HfHubHTTPError, ValueError, OSError, RuntimeError)
    branch = f"{STAGING_BRANCH_PREFIX}{version}"
    message = f"Release {version}"
    try:
        with contextlib.suppress(*failures):  # a branch left by a crashed run may hold other files
            api.delete_branch(repo_id, branch=branch, repo_type="model")
        api.create_branch(repo_id, branch=branch, repo_type="model")
        try:
            # create_commit rather than upload_folder: with hf_xet installed upload_folder may split
            # a folder into several commits, and a release must be exactly one.
            commit = api.create_commit(repo_id=repo_id, operations=_hub_operations(folder), commit_message=message,
                                       repo_type="model", revision=branch)
            api.create_tag(repo_id, tag=version, revision=commit.oid, tag_message=message, repo_type="model")
        finally:
            with contextlib.suppress(*failures):
                api.delete_branch(repo_id, branch=branch, repo_type="model")
    except failures as exc:
        raise PipelineError(f"publishing {version} to the Hub repo {repo_id} failed, nothing was published: "
                            f"{hub_error_reason(exc, settings)}") from None
    try:
        api.create_commit(repo_id=repo_id, operations=_hub_operations(folder), commit_message=message,
                          repo_type="model")
    except failures as exc:
        raise PipelineError(f"{version} is complete on the Hub repo {repo_id} under its tag, but its main branch "
                            f"was not updated ({hub_error_reason(exc, settings)}): use MODEL_SOURCE={repo_id}@{version}"
                            ) from None
    try:  # last: `serving` moves only to a release that is complete on main and under its tag
        move_serving_tag(api, repo_id, commit.oid, version)
    except failures as exc:
        raise PipelineError(f"{version} is published on the Hub repo {repo_id}, but its `{SERVING_TAG}` tag was not "
                            f"moved ({hub_error_reason(exc, settings)}): run push_model.py --rollback {version}"
                            ) from None
    log.info("published %s to the Hub: %s (%s repo)", version, commit.commit_url, "private" if private else "public")
    return commit.commit_url


def _hub_refs(api, repo_id: str) -> tuple[dict[str, str], dict[str, str]]:
    """(version tag -> commit, other tag -> commit) of a Hub repo."""
    refs = api.list_repo_refs(repo_id, repo_type="model")
    versions = {tag.name: tag.target_commit for tag in refs.tags if VERSION_RE.match(tag.name)}
    others = {tag.name: tag.target_commit for tag in refs.tags if not VERSION_RE.match(tag.name)}
    return versions, others


def hub_serving_revision(api, repo_id: str) -> str | None:
    """Commit the Hub repo serves: its `serving` tag, else its newest version tag, else None (use `main`)."""
    versions, others = _hub_refs(api, repo_id)
    if SERVING_TAG in others:
        return others[SERVING_TAG]
    if versions:
        return versions[max(versions, key=lambda name: int(name[1:]))]
    return None


def move_serving_tag(api, repo_id: str, commit: str, version: str) -> None:
    """Point the Hub repo's `serving` tag at `commit` (tags cannot move: delete, then create)."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        api.delete_tag(repo_id, tag=SERVING_TAG, repo_type="model")
    except HfHubHTTPError as exc:
        if getattr(exc.response, "status_code", None) != 404:  # no tag yet is fine
            raise
    api.create_tag(repo_id, tag=SERVING_TAG, revision=commit, tag_message=f"Serving {version}")


def rollback_hub(api, repo_id: str, version: str, settings: Settings) -> None:
    """Move the Hub repo's `serving` tag back to release `version`."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        versions, _ = _hub_refs(api, repo_id)
        if version not in versions:
            raise PipelineError(f"no release {version!r} on the Hub repo {repo_id} (releases: "
                                f"{', '.join(sorted(versions, key=lambda v: int(v[1:]))) or 'none'})")
        move_serving_tag(api, repo_id, versions[version], version)
    except (HfHubHTTPError, ValueError, OSError) as exc:
        raise PipelineError(f"rollback of the Hub repo {repo_id} to {version} failed: "
                            f"{hub_error_reason(exc, settings)}") from None
    log.info("Hub repo %s: tag %r now points at %s", repo_id, SERVING_TAG, version)


def hub_error_reason(exc: Exception, settings: Settings) -> str:
    """One line saying why a Hub call failed (status, the server's own message), never the token."""
    from huggingface_hub.errors import RepositoryNotFoundError

    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    parts = [lines[0]]
    if isinstance(exc, RepositoryNotFoundError):
        parts.append("repository not found, or not accessible with this HF_TOKEN")
    server = (getattr(exc, "server_message", None) or "").strip()
    if server and server.splitlines()[0] not in parts[0]:
        parts.append(server.splitlines()[0])
    text = " ".join(parts)
    return text.replace(settings.hf_token, "***") if settings.hf_token else text
