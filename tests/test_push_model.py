"""Stage 6 (push_model.py): local registry end to end, the Hub path through huggingface_hub's real
HfApi with HTTP faked at the transport (tests/fake_hub.py), the model card round trip, and the refusals."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from huggingface_hub.utils import _http as hf_http

import config
import export_bert_metrics
import push_model
from intent_pipeline.cli import run_cli
from intent_pipeline.errors import PipelineError
from intent_pipeline.pii_digests import PiiDigests, find_leaked_pii
from intent_pipeline.predict import IntentClassifier
from intent_pipeline.registry import resolve_model_source
from test_export_bert_metrics import build_stage5_inputs  # tests/ is on sys.path (rootdir-relative imports)
from fake_hub import (  # noqa: F401 (fake_hub and online_hub_cache are fixtures)
    REPO_ID, TOKEN, FakeHub, FakeHubDownloads, fake_hub, online_hub_cache, route_hub)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory, untrained_model_dir: Path) -> Path:
    """Stage 5's real outputs (and a PII digest file) for a tiny model, made once for this module."""
    root = tmp_path_factory.mktemp("stage5")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARTIFACTS_DIR", str(root / "artifacts"))
        mp.setenv("MODEL_DIR", str(root / "artifacts" / "bert_intent_model"))
        artifacts = build_stage5_inputs(root, untrained_model_dir)
        config_path = artifacts / "bert_intent_model" / "training_config.json"
        training = json.loads(config_path.read_text())
        config_path.write_text(json.dumps({**training, "base_model": config.get_settings().base_model,
                                           "epochs": 1, "learning_rate": 5e-5}))
        assert run_cli(export_bert_metrics.main, ["--batch-size", "8"]) == 0
    # "john" is masked somewhere in stage 1's data and is also an ordinary token of BERT's vocabulary.
    digests = PiiDigests()
    for kind, value in (("PERSON", "John"), ("PERSON", "Jane Doe"), ("EMAIL_ADDRESS", "jane.doe@example.com")):
        digests.add(kind, value)
    digests.save(artifacts / "pii_values.json")
    return artifacts


@pytest.fixture
def stage6_env(settings_env: Path, evaluated: Path) -> Path:
    """A private copy of the stage 5 outputs (model files stay symlinks) under this test's ARTIFACTS_DIR."""
    artifacts = settings_env / "artifacts"
    shutil.copytree(evaluated, artifacts, symlinks=True)
    return artifacts


def _release_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_local_release_end_to_end(stage6_env: Path, settings_env: Path, capsys) -> None:
    assert run_cli(push_model.main, []) == 0
    assert run_cli(push_model.main, []) == 0
    repo = settings_env / "registry" / "intent-classifier"
    assert sorted(p.name for p in repo.iterdir()) == ["LATEST", "v1", "v2"]  # no staging left behind
    assert (repo / "LATEST").read_text().strip() == "v2"
    assert "Released v2" in capsys.readouterr().out

    release = resolve_model_source(config.get_settings())
    assert release == repo / "v2"
    info = json.loads((release / "release.json").read_text())
    assert info["version"] == "v2" and info["model_version"] == "m-test"
    assert info["dataset_fingerprint"] == "f" * 64 and info["repo"] == "intent-classifier"
    for name, digest in info["files"].items():
        assert hashlib.sha256((release / name).read_bytes()).hexdigest() == digest, name
    for name in ("model.safetensors", "tokenizer.json", "config.json", "label_mapping.json", "thresholds.json",
                 "metrics.json", "per_class_report.csv", "confusion_matrix.html", "pr_curves.html",
                 "reliability.png", "confidence_histogram.png", "README.md"):
        assert name in info["files"], name
    assert "misclassified.csv" not in info["files"]  # message text stays out of a shareable release
    assert not any((release / name).is_symlink() for name in info["files"])

    classifier = IntentClassifier.load(release)
    thresholds = json.loads((stage6_env / "thresholds.json").read_text())
    assert classifier.version == "v2" and classifier.fingerprint == "f" * 64
    assert (classifier.fallback.threshold, classifier.fallback.margin) == (thresholds["threshold"], thresholds["margin"])
    assert classifier.predict(["where is my order"])[0].top_intent in {"check_order", "refund", "other"}


def test_release_carries_onnx_graphs_that_serve(stage6_env: Path, settings_env: Path, monkeypatch) -> None:
    monkeypatch.setenv("RELEASE_ONNX", "true")
    folder = push_model.publish(config.get_settings())
    info = json.loads((folder / "release.json").read_text())
    assert {"onnx/model.onnx", "onnx/model.int8.onnx", "onnx/export.json"} <= set(info["files"])
    torch_probs = IntentClassifier.load(folder).predict_proba(["where is my order", "refund please"])
    int8 = IntentClassifier.load(folder, backend="onnx-int8")
    assert int8.backend == "onnx-int8"  # not silently fallen back to torch
    assert abs(int8.predict_proba(["where is my order", "refund please"]) - torch_probs).max() < 0.05
    # Stage 5 scored PyTorch; the release also says how the int8 graph does on the same test split.
    metrics = json.loads((stage6_env / "metrics.json").read_text())
    assert 0.0 <= info["onnx_int8_macro_f1"] <= 1.0
    assert info["onnx_int8_delta"] == pytest.approx(info["onnx_int8_macro_f1"] - metrics["macro_f1"], abs=1e-5)
    assert f"macro-F1 {info['onnx_int8_macro_f1']:.4f} ({info['onnx_int8_delta']:+.4f} vs PyTorch" in (
        folder / "README.md").read_text()


def test_model_card_round_trips_with_eval_results(stage6_env: Path, settings_env: Path, monkeypatch) -> None:
    monkeypatch.setenv("FALLBACK_LABEL", "needs_human")
    folder = push_model.publish(config.get_settings(), version="v7")
    metrics = json.loads((stage6_env / "metrics.json").read_text())
    card = ModelCard.load(folder / "README.md")
    results = {(r.metric_name, r.dataset_config): r for r in card.data.eval_results}
    assert results[("Accuracy", "clean")].metric_value == pytest.approx(metrics["accuracy"], abs=1e-6)
    assert results[("Macro F1", "clean")].metric_value == pytest.approx(metrics["macro_f1"], abs=1e-6)
    assert results[("Accuracy (noisy chat text)", "noisy")].metric_value == pytest.approx(
        metrics["noisy_accuracy"], abs=1e-6)
    assert all(r.task_type == "text-classification" and r.dataset_split == "test" for r in results.values())
    data = card.data.to_dict()
    assert data["dataset_fingerprint"] == "f" * 64 and data["release_version"] == "v7"
    assert data["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert data["model-index"][0]["name"] == "intent-classifier-v7"
    assert "## Intended use" in card.text and "## Limits" in card.text and "learning_rate" in card.text
    assert "answer `needs_human` when confidence" in card.text  # the FALLBACK_LABEL setting, not a literal
    # The tiny model's tokenizer predates the normalisation steps: the card must not promise raw text works.
    assert "does not normalise text" in card.text and "Feed raw text" not in card.text


def test_refuses_stale_or_missing_metrics(stage6_env: Path, settings_env: Path, capsys) -> None:
    config_path = stage6_env / "bert_intent_model" / "training_config.json"
    training = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**training, "model_version": "m-retrained"}))
    assert run_cli(push_model.main, []) == 1
    assert "error: stale metrics.json" in capsys.readouterr().err
    config_path.write_text(json.dumps(training))
    (stage6_env / "metrics.json").unlink()
    assert run_cli(push_model.main, []) == 1
    assert "export_bert_metrics.py" in capsys.readouterr().err
    assert not (settings_env / "registry" / "intent-classifier" / "LATEST").exists()


def test_refuses_metrics_of_another_dataset(stage6_env: Path, settings_env: Path, capsys) -> None:
    """Same model_version, other dataset fingerprint: the metrics describe other test data."""
    metrics_path = stage6_env / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics_path.write_text(json.dumps({**metrics, "dataset_fingerprint": "e" * 64}))
    assert run_cli(push_model.main, []) == 1
    err = capsys.readouterr().err
    assert "error: stale metrics.json: its dataset_fingerprint 'eeeeeeeeeeeeeeee'" in err
    assert not (settings_env / "registry" / "intent-classifier" / "LATEST").exists()


def test_refuses_a_model_trained_before_the_data_was_re_split(stage6_env: Path, settings_env: Path, capsys) -> None:
    (stage6_env / "dataset_fingerprint.json").write_text(json.dumps({"fingerprint": "d" * 64}))
    assert run_cli(push_model.main, []) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "re-split after training" in err[0] and "retrain" in err[0]
    assert not (settings_env / "registry" / "intent-classifier" / "LATEST").exists()
    (stage6_env / "dataset_fingerprint.json").unlink()  # no split record: MODEL_DIR + stage 5 outputs suffice
    assert run_cli(push_model.main, []) == 0


def test_refuses_planted_pii_without_showing_it(stage6_env: Path, settings_env: Path, capsys) -> None:
    config_path = stage6_env / "bert_intent_model" / "training_config.json"
    training = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**training, "note": "asked by Jane Doe, (jane.doe@example.com)"}))
    assert run_cli(push_model.main, []) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and err[0].startswith("error: refusing to publish")
    assert "training_config.json $.note (EMAIL_ADDRESS/PERSON)" in err[0] and "1 release file" in err[0]
    assert "Jane" not in err[0] and "jane.doe" not in err[0]
    repo = settings_env / "registry" / "intent-classifier"
    assert list(repo.iterdir()) == []  # nothing published, staging removed
    # Without the planted value the same release goes out: "john" in the base vocabulary is no leak.
    config_path.write_text(json.dumps(training))
    assert run_cli(push_model.main, []) == 0
    assert find_leaked_pii([repo / "v1" / "tokenizer.json"], stage6_env / "pii_values.json") == ["PERSON"]


def _without_gitattributes(files: dict[str, bytes]) -> dict[str, bytes]:
    return {name: data for name, data in files.items() if name != ".gitattributes"}


def test_hub_release_is_one_tagged_commit_with_weights_through_lfs(stage6_env: Path, settings_env: Path,
                                                                  fake_hub: FakeHub, capsys, caplog) -> None:
    fake_hub.existing_tags = ("v1", "v4", "not-a-version")  # numbering continues after the Hub's tags
    assert run_cli(push_model.main, []) == 0

    assert fake_hub.created == {"name": "intent-model", "organization": "acme", "visibility": "private",
                                "type": "model"}
    local = settings_env / "registry" / "intent-model" / "v5"
    release, on_main = fake_hub.commits
    assert release["summary"] == on_main["summary"] == "Release v5" and on_main["branch"] == "main"
    assert fake_hub.tags == [{"revision": release["oid"], "tag": "v5", "message": "Release v5"},
                             {"revision": release["oid"], "tag": "serving", "message": "Serving v5"}]
    assert _without_gitattributes(fake_hub.tree("v5")) == _release_files(local)  # the identical folder, every byte
    assert fake_hub.tree("main") == fake_hub.tree("v5")
    assert set(fake_hub.branches) == {"main"}  # the staging branch is gone
    # The weights went through LFS (batch, PUT, verify), and only once: main's commit reused the object.
    weights = hashlib.sha256((local / "model.safetensors").read_bytes()).hexdigest()
    assert fake_hub.lfs_puts == [weights] and fake_hub.lfs_verified == [weights]
    assert "model.safetensors" not in fake_hub.regular_uploads and "config.json" in fake_hub.regular_uploads
    assert fake_hub.auth_headers == {f"Bearer {TOKEN}"}
    assert ModelCard(fake_hub.tree("v5")["README.md"].decode()).data.eval_results
    assert json.loads(fake_hub.tree("v5")["release.json"])["repo"] == REPO_ID
    seen = capsys.readouterr()
    assert TOKEN not in seen.out + seen.err + caplog.text

    # The next release of the same weights: a new tag, and LFS uploads nothing again.
    assert run_cli(push_model.main, []) == 0
    assert [t["tag"] for t in fake_hub.tags] == ["v5", "serving", "v6", "serving"] and fake_hub.lfs_puts == [weights]
    assert _without_gitattributes(fake_hub.tree("v6")) == _release_files(local.parent / "v6")


def test_hub_failure_is_one_line_without_token_and_publishes_nothing(
    stage6_env: Path, settings_env: Path, fake_hub: FakeHub, capsys, caplog
) -> None:
    fake_hub.fail_create = 401
    assert run_cli(push_model.main, ["--public"]) == 1
    assert fake_hub.created["visibility"] == "public"
    seen = capsys.readouterr()
    errors = [line for line in seen.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and REPO_ID in errors[0]
    assert TOKEN not in seen.out + seen.err + caplog.text
    assert not fake_hub.commits
    repo = settings_env / "registry" / "intent-model"
    assert not repo.exists() or list(repo.iterdir()) == []  # nothing published locally, staging removed


def test_failed_tag_leaves_no_half_published_version(stage6_env: Path, settings_env: Path, fake_hub: FakeHub,
                                                     capsys, caplog) -> None:
    fake_hub.fail_tag = 403
    main_before = fake_hub.branches["main"]
    assert run_cli(push_model.main, []) == 1
    seen = capsys.readouterr()
    errors = [line for line in seen.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "publishing v1" in errors[0] and "nothing was published" in errors[0]
    assert TOKEN not in seen.out + seen.err + caplog.text
    # The upload happened (on the staging branch), but no tag, main untouched, the branch deleted.
    assert len(fake_hub.commits) == 1 and fake_hub.commits[0]["branch"] != "main"
    assert fake_hub.tags == [] and fake_hub.branches == {"main": main_before}
    repo = settings_env / "registry" / "intent-model"
    assert not repo.exists() or list(repo.iterdir()) == []  # no local version either

    # Once tagging works, the same version number is published whole (it was never burnt).
    fake_hub.fail_tag = None
    assert run_cli(push_model.main, []) == 0
    assert [t["tag"] for t in fake_hub.tags] == ["v1", "serving"] and fake_hub.commits[-1]["branch"] == "main"
    assert _without_gitattributes(fake_hub.tree("main")) == _release_files(repo / "v1")


def test_an_existing_version_is_refused_and_nothing_is_overwritten(stage6_env: Path, settings_env: Path,
                                                                   fake_hub: FakeHub, capsys) -> None:
    fake_hub.existing_tags = ("v2",)
    assert run_cli(push_model.main, ["--version", "v2"]) == 1  # taken on the Hub
    assert "version v2 already exists" in capsys.readouterr().err
    assert ("POST", "/api/repos/create") not in fake_hub.calls and not fake_hub.commits

    assert run_cli(push_model.main, ["--version", "v3"]) == 0
    v3 = settings_env / "registry" / "intent-model" / "v3"
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in v3.rglob("*") if p.is_file()}
    commits = len(fake_hub.commits)
    assert run_cli(push_model.main, ["--version", "v3"]) == 1  # taken locally and on the Hub
    assert "version v3 already exists" in capsys.readouterr().err
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in v3.rglob("*") if p.is_file()} == before
    assert len(fake_hub.commits) == commits and [t["tag"] for t in fake_hub.tags] == ["v3", "serving"]


def test_a_version_released_meanwhile_elsewhere_is_refused(stage6_env: Path, settings_env: Path, fake_hub: FakeHub,
                                                           capsys) -> None:
    fake_hub.tag_appears_on_refs_call = (2, "v1")  # another machine tags v1 while ours is being built
    assert run_cli(push_model.main, []) == 1
    assert "version v1 appeared on the Hub repo" in capsys.readouterr().err
    assert not fake_hub.commits and fake_hub.tags == []
    repo = settings_env / "registry" / "intent-model"
    assert not repo.exists() or list(repo.iterdir()) == []


def test_new_hub_repo_is_created_only_after_the_checks(stage6_env: Path, settings_env: Path, fake_hub: FakeHub,
                                                       capsys) -> None:
    fake_hub.repo_exists = False  # a first release: listing tags finds no repo, which means "no versions yet"
    config_path = stage6_env / "bert_intent_model" / "training_config.json"
    training = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**training, "note": "asked by Jane Doe"}))
    assert run_cli(push_model.main, []) == 1
    assert "error: refusing to publish" in capsys.readouterr().err
    assert ("POST", "/api/repos/create") not in fake_hub.calls  # a refused release leaves no empty repo
    assert fake_hub.created is None and not fake_hub.commits

    config_path.write_text(json.dumps(training))
    assert run_cli(push_model.main, []) == 0
    methods = [call for call in fake_hub.calls if call[1] != "/api/validate-yaml"]
    assert methods.index(("POST", "/api/repos/create")) < methods.index(("POST", f"/api/models/{REPO_ID}/commit/main"))
    assert fake_hub.tags[0]["tag"] == "v1"


def test_model_source_hub_repo_id_downloads_a_release(settings_env: Path, tiny_release: Path, online_hub_cache: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    release = tiny_release / "intent-classifier" / "v1"
    hub = FakeHubDownloads(release)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("MODEL_SOURCE", REPO_ID)
    route_hub(hub)
    try:
        folder = resolve_model_source(config.get_settings())
    finally:
        hf_http.set_client_factory(hf_http.default_client_factory)
    assert folder.is_relative_to(online_hub_cache) and (folder / "config.json").is_file()
    assert _release_files(folder) == _release_files(release)
    assert hub.auth_headers == {f"Bearer {TOKEN}"}  # a private repo's token is sent
    classifier = IntentClassifier.load(folder)
    assert classifier.version == "v1" and classifier.labels == ["check_order", "refund", "other"]


@pytest.mark.parametrize("status", [401, 404])
def test_model_source_hub_errors_are_one_line_without_token(settings_env: Path, online_hub_cache: Path,
                                                            monkeypatch: pytest.MonkeyPatch, status: int) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("MODEL_SOURCE", f"{REPO_ID}@v3")
    route_hub(FakeHubDownloads(settings_env, status=status))  # answers with the error before serving a file
    try:
        with pytest.raises(PipelineError) as caught:
            resolve_model_source(config.get_settings())
    finally:
        hf_http.set_client_factory(hf_http.default_client_factory)
    message = str(caught.value)
    assert "\n" not in message and TOKEN not in message and "***" in message  # the server's words, token hidden
    assert message.startswith(f"cannot download model '{REPO_ID}@v3' from the Hugging Face Hub: {status}")
    assert "not accessible with this HF_TOKEN" in message
