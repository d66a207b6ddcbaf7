"""Rollback (issue 14, part 5): `push_model.py --rollback vN` makes an earlier release serve again, in the
local registry and on the Hub (its `serving` tag, through huggingface_hub's real HfApi with HTTP faked
at the transport); the Hub's serving release is what hot reload watches."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import HfApi
from huggingface_hub.utils import _http as hf_http

import config
import push_model
from intent_pipeline import registry
from intent_pipeline.cli import run_cli
from intent_pipeline.reload import serving_release_id
from test_reload import publish_copy_of_v1

TOKEN = "hf_TestSecretToken123456789"
REPO_ID = "acme/intent-model"


@pytest.fixture
def three_releases(tiny_release: Path, settings_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = settings_env / "registry"
    shutil.copytree(tiny_release, target, symlinks=True)
    monkeypatch.setenv("REGISTRY_DIR", str(target))
    repo = target / "intent-classifier"
    publish_copy_of_v1(repo, "v2")
    publish_copy_of_v1(repo, "v3")
    return repo


def test_rollback_makes_an_earlier_local_release_serve(three_releases: Path, capsys) -> None:
    repo = three_releases
    assert (repo / "LATEST").read_text().strip() == "v3"
    assert run_cli(push_model.main, ["--rollback", "v2"]) == 0
    assert "Serving v2 again (was v3)" in capsys.readouterr().out
    assert (repo / "LATEST").read_text().strip() == "v2"
    assert registry.resolve_model_source(config.get_settings()) == repo / "v2"
    assert sorted(p.name for p in repo.iterdir()) == ["LATEST", "v1", "v2", "v3"]  # nothing copied or deleted
    assert registry.next_version(registry.local_versions(config.get_settings())) == "v4"  # numbers never reused

    assert run_cli(push_model.main, ["--list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listing] == ["v1", "*", "v3"] and listing[1].split()[1] == "v2"

    assert run_cli(push_model.main, ["--rollback", "v9"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: no release 'v9' in the local registry {repo} (releases: v1, v2, v3)"]
    assert (repo / "LATEST").read_text().strip() == "v2"  # unchanged by a refused rollback

    (repo / "v1" / "config.json").unlink()
    assert run_cli(push_model.main, ["--rollback", "v1"]) == 1
    assert "incomplete (no config.json)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        push_model.parse_args(["--rollback", "latest"])


class FakeHubRefs:
    """A Hub repo's tags, as list_repo_refs, create_tag and delete_tag see them."""

    def __init__(self, tags: dict[str, str]):
        self.tags = dict(tags)
        self.calls: list[tuple[str, str]] = []
        self.auth: set[str] = set()

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        path, base = request.url.path, f"/api/models/{REPO_ID}"
        self.calls.append((request.method, path))
        if path.startswith(base):
            self.auth.add(request.headers.get("authorization", ""))
        if path == f"{base}/refs":
            tags = [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": c} for n, c in self.tags.items()]
            return httpx2.Response(200, json={"branches": [], "converts": [], "tags": tags})
        if path.startswith(f"{base}/tag/") and request.method == "DELETE":
            name = path.rsplit("/", 1)[1]
            if name not in self.tags:
                return httpx2.Response(404, json={"error": "tag not found"})
            del self.tags[name]
            return httpx2.Response(200, json={})
        if path.startswith(f"{base}/tag/") and request.method == "POST":
            body = json.loads(request.content)
            if body["tag"] in self.tags:
                return httpx2.Response(409, json={"error": "tag exists"})
            self.tags[body["tag"]] = path.rsplit("/", 1)[1]
            return httpx2.Response(200, json={})
        return httpx2.Response(404, json={"error": f"fake hub: unexpected {request.method} {path}"})


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHubRefs]:
    from huggingface_hub import constants

    fake = FakeHubRefs({"v1": "a" * 40, "v2": "b" * 40, "v3": "c" * 40, "serving": "c" * 40})
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # conftest keeps the Hub off; this Hub is fake
    hf_http.set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(fake), follow_redirects=True))
    try:
        yield fake
    finally:
        hf_http.set_client_factory(hf_http.default_client_factory)


def test_rollback_moves_the_hub_serving_tag_and_the_watcher_follows(three_releases: Path, hub: FakeHubRefs,
                                                                    monkeypatch: pytest.MonkeyPatch, capsys,
                                                                    caplog) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_REPO_ID", REPO_ID)
    monkeypatch.setenv("REGISTRY_DIR", str(three_releases.parent))
    # The local registry folder is named after the Hub repo.
    shutil.move(three_releases, three_releases.parent / "intent-model")

    def watcher_settings() -> config.Settings:
        return dataclasses.replace(config.get_settings(), model_source=REPO_ID)

    assert serving_release_id(watcher_settings()) == "c" * 40

    assert run_cli(push_model.main, ["--rollback", "v1"]) == 0
    assert hub.tags["serving"] == "a" * 40 and hub.tags["v3"] == "c" * 40  # only the serving tag moved
    assert ("DELETE", f"/api/models/{REPO_ID}/tag/serving") in hub.calls
    assert (three_releases.parent / "intent-model" / "LATEST").read_text().strip() == "v1"
    assert serving_release_id(watcher_settings()) == "a" * 40  # what a hot-reloading API would load next
    assert hub.auth == {f"Bearer {TOKEN}"}

    assert run_cli(push_model.main, ["--rollback", "v7"]) == 1
    seen = capsys.readouterr()
    assert "no release 'v7' on the Hub repo acme/intent-model (releases: v1, v2, v3)" in seen.err
    assert TOKEN not in seen.out + seen.err + caplog.text

    del hub.tags["serving"]  # a repo published before the serving tag existed: its newest version serves
    assert registry.hub_serving_revision(HfApi(token=TOKEN), REPO_ID) == "c" * 40
