"""A fake Hugging Face Hub for stage 6's tests: huggingface_hub's real HfApi client talks to it
through its own HTTP client factory hook, so uploads, LFS, commits, tags and downloads run the real
client code. The Hub itself cannot run here (no network), hence the fake.

Fixtures: `fake_hub` (uploads) and `online_hub_cache` (Hub access on, empty cache); `route_hub`
points the client at any handler, such as a `FakeHubDownloads`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import httpx2
import pytest
from huggingface_hub.utils import _http as hf_http

TOKEN = "hf_TestSecretToken123456789"
REPO_ID = "acme/intent-model"


LFS_SUFFIXES = (".safetensors", ".onnx", ".bin", ".pt")  # what the Hub's default .gitattributes puts in LFS
LFS_HOST = "https://fake-lfs.test"


class FakeHub:
    """A small Hub: repos, branches, commits, tags and LFS storage, as HfApi's real client talks to them.

    Answers create_repo, list_repo_refs, create/delete_branch, preupload (LFS for weight files), the
    LFS batch API (upload + verify actions, none for objects it already holds), the PUT of an LFS
    object, create_commit (regular files inline, LFS files by oid, which must have been uploaded)
    and create_tag. `fail_tag` makes create_tag answer that status.
    """

    def __init__(self, existing_tags: tuple[str, ...] = (), fail_create: int | None = None):
        self.existing_tags = existing_tags
        self.fail_create = fail_create
        self.fail_tag: int | None = None
        self.tag_appears_on_refs_call: tuple[int, str] | None = None  # (call number, tag): a concurrent release
        self.repo_exists = True
        self.calls: list[tuple[str, str]] = []
        self.created: dict | None = None
        self.commits: list[dict] = []  # every commit, in order: summary, branch, oid, files (the full tree)
        self.branches: dict[str, str] = {"main": "0" * 40}
        self.trees: dict[str, dict[str, bytes]] = {"0" * 40: {".gitattributes": b"*.safetensors filter=lfs\n"}}
        self.tags: list[dict] = []
        self.lfs: dict[str, bytes] = {}  # oid (sha256) -> content
        self.lfs_puts: list[str] = []
        self.lfs_verified: list[str] = []
        self.regular_uploads: set[str] = set()
        self.auth_headers: set[str] = set()
        self.refs_calls = 0

    def tree(self, ref: str) -> dict[str, bytes]:
        """The files at a branch or a tag."""
        tags = {t["tag"]: t["revision"] for t in self.tags}
        return self.trees[self.branches.get(ref) or tags[ref]]

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        request.read()
        path = unquote(request.url.path)
        self.calls.append((request.method, path))
        if request.url.host != "fake-lfs.test":  # signed storage URLs carry no token
            self.auth_headers.add(request.headers.get("authorization", ""))
        base = f"/api/models/{REPO_ID}"
        if path == "/api/repos/create":
            self.created = json.loads(request.content)
            if self.fail_create:
                return httpx2.Response(self.fail_create, json={"error": f"Invalid credentials for token {TOKEN}"})
            self.repo_exists = True
            return httpx2.Response(200, json={"url": f"https://huggingface.co/{REPO_ID}"})
        if path == f"{base}/refs":
            return self._refs()
        if path == "/api/validate-yaml":
            return httpx2.Response(200, json={"errors": [], "warnings": []})
        if path.startswith(f"{base}/branch/"):
            return self._branch(request.method, path.removeprefix(f"{base}/branch/"))
        if path.startswith(f"{base}/preupload/"):
            files = json.loads(request.content)["files"]
            return httpx2.Response(200, json={"files": [
                {"path": f["path"], "uploadMode": "lfs" if f["path"].endswith(LFS_SUFFIXES) else "regular",
                 "shouldIgnore": False, "oid": None} for f in files]})
        if path == f"/{REPO_ID}.git/info/lfs/objects/batch":
            return self._lfs_batch(json.loads(request.content))
        if request.url.host == "fake-lfs.test" and request.method == "PUT":
            oid = path.rsplit("/", 1)[1]
            if hashlib.sha256(request.content).hexdigest() != oid:
                return httpx2.Response(400, json={"error": "content does not match its oid"})
            self.lfs[oid] = request.content
            self.lfs_puts.append(oid)
            return httpx2.Response(200)
        if path == f"/{REPO_ID}.git/info/lfs/objects/verify":
            body = json.loads(request.content)
            if len(self.lfs.get(body["oid"], b"")) != body["size"] or body["oid"] not in self.lfs:
                return httpx2.Response(404, json={"error": "object not found"})
            self.lfs_verified.append(body["oid"])
            return httpx2.Response(200, json={})
        if path.startswith(f"{base}/commit/"):
            return self._commit(path.removeprefix(f"{base}/commit/"), request.content)
        if path.startswith(f"{base}/tag/") and request.method == "DELETE":  # moving `serving`: none yet
            return httpx2.Response(404, json={"error": "tag not found"})
        if path.startswith(f"{base}/tag/"):
            if self.fail_tag:
                return httpx2.Response(self.fail_tag, json={"error": f"You cannot create tags here ({TOKEN})"})
            self.tags.append({"revision": path.rsplit("/", 1)[1], **json.loads(request.content)})
            return httpx2.Response(200, json={})
        return httpx2.Response(404, json={"error": f"fake hub: unexpected {request.method} {path}"})

    def _refs(self) -> httpx2.Response:
        self.refs_calls += 1
        if not self.repo_exists:
            return httpx2.Response(404, headers={"X-Error-Code": "RepoNotFound"}, json={"error": "not found"})
        if self.tag_appears_on_refs_call and self.refs_calls >= self.tag_appears_on_refs_call[0]:
            self.existing_tags = (*self.existing_tags, self.tag_appears_on_refs_call[1])
        tags = [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": "0" * 40} for t in self.existing_tags]
        tags += [{"name": t["tag"], "ref": f"refs/tags/{t['tag']}", "targetCommit": t["revision"]} for t in self.tags]
        branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": oid} for b, oid in self.branches.items()]
        return httpx2.Response(200, json={"branches": branches, "converts": [], "tags": tags})

    def _branch(self, method: str, name: str) -> httpx2.Response:
        if method == "DELETE":
            if name == "main" or name not in self.branches:
                return httpx2.Response(404 if name != "main" else 403, json={"error": f"cannot delete {name}"})
            del self.branches[name]
            return httpx2.Response(200, json={})
        if name in self.branches:
            return httpx2.Response(409, json={"error": f"branch {name} exists"})
        self.branches[name] = self.branches["main"]
        return httpx2.Response(200, json={})

    def _lfs_batch(self, body: dict) -> httpx2.Response:
        assert body["operation"] == "upload" and body["hash_algo"] == "sha256"
        objects = []
        for obj in body["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.lfs:  # the server already holding an object means: no upload
                entry["actions"] = {
                    "upload": {"href": f"{LFS_HOST}/upload/{obj['oid']}"},
                    "verify": {"href": f"https://huggingface.co/{REPO_ID}.git/info/lfs/objects/verify"},
                }
            objects.append(entry)
        return httpx2.Response(200, json={"transfer": "basic", "objects": objects})

    def _commit(self, branch: str, content: bytes) -> httpx2.Response:
        if branch not in self.branches:
            return httpx2.Response(404, headers={"X-Error-Code": "RevisionNotFound"}, json={"error": "no branch"})
        lines = [json.loads(line) for line in content.splitlines() if line.strip()]
        tree = dict(self.trees[self.branches[branch]])
        for item in lines:
            value = item["value"]
            if item["key"] == "file":
                tree[value["path"]] = base64.b64decode(value["content"])
                self.regular_uploads.add(value["path"])
            elif item["key"] == "lfsFile":
                if value["oid"] not in self.lfs:  # the real Hub refuses a pointer to an object it lacks
                    return httpx2.Response(422, json={"error": f"LFS object {value['oid']} was never uploaded"})
                tree[value["path"]] = self.lfs[value["oid"]]
        header = next(item["value"] for item in lines if item["key"] == "header")
        oid = f"{len(self.commits) + 1:040x}"
        self.trees[oid] = tree
        self.branches[branch] = oid
        self.commits.append({"summary": header["summary"], "branch": branch, "oid": oid, "files": tree})
        return httpx2.Response(200, json={"commitUrl": f"https://huggingface.co/{REPO_ID}/commit/{oid}",
                                          "commitOid": oid})


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """Route every huggingface_hub request to a FakeHub through its own client factory hook.

    hf_xet is installed, and the real client would send LFS content through Xet storage, a Rust
    client this HTTP fake cannot see; with Xet off it takes the plain LFS protocol, all HTTP.
    """
    from huggingface_hub import constants

    hub = FakeHub()
    hf_http.set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(hub), follow_redirects=True))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_REPO_ID", REPO_ID)
    try:
        yield hub
    finally:
        hf_http.set_client_factory(hf_http.default_client_factory)


class FakeHubDownloads:
    """Serves one release folder the way the Hub serves a model repo to snapshot_download."""

    def __init__(self, folder: Path, status: int = 200):
        self.files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
        self.status = status
        self.commit = "c" * 40
        self.auth_headers: set[str] = set()

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        path = unquote(request.url.path)
        if path.startswith(f"/api/models/{REPO_ID}") or path.startswith(f"/{REPO_ID}/"):
            self.auth_headers.add(request.headers.get("authorization", ""))
            if self.status != 200:
                headers = {"X-Error-Code": "RepoNotFound"} if self.status == 404 else {}
                return httpx2.Response(self.status, headers=headers,
                                       json={"error": f"Invalid credentials for token {TOKEN}"})
        if path.startswith(f"/api/models/{REPO_ID}/revision/"):
            return httpx2.Response(200, json={"id": REPO_ID, "sha": self.commit,
                                              "siblings": [{"rfilename": name} for name in self.files]})
        if path.startswith(f"/api/models/{REPO_ID}/tree/"):
            return httpx2.Response(200, json=[{"type": "file", "path": name, "oid": hashlib.sha1(name.encode()).hexdigest(),
                                               "size": file.stat().st_size} for name, file in self.files.items()])
        prefix = f"/{REPO_ID}/resolve/{self.commit}/"
        if path.startswith(prefix) and path[len(prefix):] in self.files:
            body = self.files[path[len(prefix):]].read_bytes()
            headers = {"X-Repo-Commit": self.commit, "ETag": f'"{hashlib.sha1(body).hexdigest()}"',
                       "Content-Length": str(len(body))}
            return httpx2.Response(200, headers=headers, content=b"" if request.method == "HEAD" else body)
        return httpx2.Response(404, json={"error": f"fake hub: unexpected {request.method} {path}"})


@pytest.fixture
def online_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Hub access switched back on (conftest turns it off) with an empty cache under tmp_path."""
    from huggingface_hub import constants

    cache = tmp_path / "hf_home" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    # huggingface_hub reads these once, at import: the module constants are what its calls use.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def route_hub(handler) -> None:
    hf_http.set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(handler), follow_redirects=True))
