"""Code structure: layers run one way, artifact names have one owner, stage settings name real settings."""

from __future__ import annotations

import ast
import sys
from dataclasses import fields
from pathlib import Path

import pytest

import config
import run_pipeline
from intent_pipeline import artifacts
from intent_pipeline.artifacts import Artifacts, ModelFiles

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = {p.stem for p in ROOT.glob("*.py")} - {"config"}
PACKAGE = ROOT / "intent_pipeline"


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module `path` imports, at module level or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_helper_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os\n\ndef f():\n    from prepare_data import x\n    import ingest_clean.sub\n")
    assert imported_modules(module) == {"os", "prepare_data", "ingest_clean"}


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_package_never_imports_an_entry_point(path: Path) -> None:
    assert not imported_modules(path) & ENTRY_POINTS, "the package may use config.py, never a top-level script"


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_no_entry_point_imports_another(name: str) -> None:
    assert not imported_modules(ROOT / f"{name}.py") & (ENTRY_POINTS - {name})


def test_config_imports_nothing_of_the_project() -> None:
    assert not imported_modules(ROOT / "config.py") & (ENTRY_POINTS | {"intent_pipeline"})


def test_no_package_module_shadows_the_standard_library() -> None:
    # venv.py drives the stdlib's venv (`python3 -m intent_pipeline.venv` in the Makefile and CI).
    assert not {p.stem for p in PACKAGE.rglob("*.py")} & (set(sys.stdlib_module_names) - {"venv"})


def test_artifact_paths_follow_the_settings(settings_env: Path) -> None:
    settings = config.get_settings()
    files, model = Artifacts.from_settings(settings), ModelFiles.from_settings(settings)
    assert files.root == settings.artifacts_dir and model.root == settings.model_dir
    assert files.split("test_noisy") == settings.artifacts_dir / "splits" / "test_noisy.csv"
    assert files.metrics == settings.artifacts_dir / "metrics.json"
    assert model.thresholds == settings.model_dir / "thresholds.json"
    assert artifacts.MISCLASSIFIED not in artifacts.RELEASED_EVALUATION_FILES  # message text stays out of releases
    assert artifacts.PII_VALUES not in artifacts.RELEASED_EVALUATION_FILES


def test_stage_settings_name_real_settings_and_cover_all_of_them() -> None:
    listed = set(run_pipeline.SETTINGS_WITHOUT_OUTPUT).union(*run_pipeline.STAGE_SETTINGS.values())
    assert listed == {f.name for f in fields(config.Settings)}
    for stage in run_pipeline.pipeline_stages(fast=False):
        assert stage.depends_on == run_pipeline.STAGE_SETTINGS[stage.name]


def test_a_typo_in_a_stage_setting_list_fails() -> None:
    bad = {**run_pipeline.STAGE_SETTINGS, "finetune": (*run_pipeline.STAGE_SETTINGS["finetune"], "learnig_rate")}
    with pytest.raises(config.ConfigError, match="learnig_rate"):
        run_pipeline.check_stage_settings(bad, run_pipeline.SETTINGS_WITHOUT_OUTPUT)


def test_a_setting_in_no_list_fails() -> None:
    bad = {**run_pipeline.STAGE_SETTINGS, "finetune": tuple(
        name for name in run_pipeline.STAGE_SETTINGS["finetune"] if name != "weight_decay")}
    with pytest.raises(config.ConfigError, match="weight_decay"):
        run_pipeline.check_stage_settings(bad, run_pipeline.SETTINGS_WITHOUT_OUTPUT)
