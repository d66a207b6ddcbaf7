"""MODEL_DIR (a saved sequence classifier) -> MODEL_DIR/onnx/model.onnx (+ model.int8.onnx, export.json).

The ONNX Runtime files are the fast CPU inference path (`INFERENCE_BACKEND=onnx|onnx-int8`).
`push_model.py` calls `export_onnx(model_dir, quantize=True)` at release time; the CLI does the
same for any model folder: `python -m intent_pipeline.onnx_export MODEL_DIR`.

Every export is checked before it is kept: the fp32 graph must reproduce PyTorch's probabilities
(max abs diff <= FP32_ATOL) on padded batches of several shapes, and the int8 graph's top-1
agreement with PyTorch is recorded in `export.json`. Files are written atomically; `export.json`
(written last) carries the SHA-256 of the weights it was exported from, so a model that was
re-trained after the export is detected at load time instead of silently serving stale graphs.

The graphs have two outputs: `logits`, and `features` (the pooled last hidden state that the
out-of-scope detector scores, `intent_pipeline.ood.pool_features`, traced from the same function
PyTorch serving calls). Graphs exported before the second output existed still serve models
without a detector.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from config import get_settings
from intent_pipeline.backends import ONNX as ONNX_BACKEND
from intent_pipeline.backends import ONNX_INT8 as ONNX_INT8_BACKEND
from intent_pipeline.artifacts import MODEL_CONFIG, ONNX_DIR, ONNX_EXPORT_INFO, ONNX_FP32, ONNX_INT8
from intent_pipeline.cli import run_cli
from intent_pipeline.errors import PipelineError
from intent_pipeline.files import atomic_path, read_json, sha256_file, write_json_atomic
from intent_pipeline.logging_setup import setup_logging
from intent_pipeline.predict import model_max_length

log = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
DEFAULT_OPSET = 17
FP32_ATOL = 1e-4
FP32_FEATURE_ATOL = 1e-3  # hidden-state units (values of order 1): float32 reassociation noise only
# Positional order of BERT-family forward(); the legacy exporter binds example inputs by position.
INPUT_ORDER = ("input_ids", "attention_mask", "token_type_ids")
BACKEND_FILES = {ONNX_BACKEND: ONNX_FP32, ONNX_INT8_BACKEND: ONNX_INT8}
LOGITS = "logits"
FEATURES = "features"  # ood.pool_features of the last hidden state

# Check texts of different lengths, so the check runs padded batches like serving does.
CHECK_TEXTS = (
    "where is my order",
    "i want a refund for the broken headphones i bought last week, they stopped working",
    "hi",
    "can you change the delivery address to the office please",
    "cancel it",
)


def onnx_file(model_dir: Path | str, backend: str) -> Path:
    """Path of the ONNX graph for `backend` ('onnx' or 'onnx-int8') inside a model folder."""
    if backend not in BACKEND_FILES:
        raise PipelineError(f"unknown ONNX backend {backend!r}: use one of {', '.join(BACKEND_FILES)}")
    return Path(model_dir) / ONNX_DIR / BACKEND_FILES[backend]


def weights_digest(model_dir: Path | str) -> str:
    """SHA-256 of the model's weight file: ties an export to the exact weights it came from."""
    for name in WEIGHT_FILES:
        path = Path(model_dir) / name
        if path.is_file():
            return sha256_file(path)
    raise PipelineError(f"no weights ({' or '.join(WEIGHT_FILES)}) in {model_dir}")


def stale_reason(model_dir: Path | str) -> str | None:
    """Why the ONNX files in `model_dir` must not be used (missing, stale), or None if they are current."""
    info_path = Path(model_dir) / ONNX_DIR / ONNX_EXPORT_INFO
    if not info_path.is_file():
        return f"{info_path} is missing (run `python -m intent_pipeline.onnx_export {model_dir}`)"
    info = read_json(info_path, "ONNX export info", "re-run the ONNX export")
    if info.get("source_sha256") != weights_digest(model_dir):
        return "the ONNX export is older than the model weights (re-run the ONNX export)"
    return None


def ort_session(path: Path | str, num_threads: int | None = None):
    """An ONNX Runtime CPU session tuned for this machine (all graph optimisations, one thread per core)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = num_threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    # Spinning worker threads burn the cores between requests, starving the tokenizer, the web
    # server and any other process on a small CPU; blocking costs microseconds per call.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # ORT's warnings about unused initialisers are noise for users
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def ort_feed(session, encoding) -> dict[str, np.ndarray]:
    """The tokenizer output restricted to (and typed as) the inputs the graph declares."""
    return {i.name: np.asarray(encoding[i.name], dtype=np.int64) for i in session.get_inputs()}


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ONNX Runtime logits (numpy; PyTorch is not needed on this path)."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _load_torch(model_dir: Path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        # Eager attention traces to plain MatMul/Softmax, which every ORT version optimises.
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, attn_implementation="eager")
    except (OSError, ValueError) as exc:
        raise PipelineError(f"model at {model_dir} cannot be loaded: {str(exc).splitlines()[0]}") from None
    return model.eval(), tokenizer


def _with_features(model, names: Sequence[str]):
    """`model` as a module taking the inputs `names` by position and returning (logits, pooled features)."""
    import torch

    from intent_pipeline.ood import pool_features

    class LogitsAndFeatures(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            kwargs = dict(zip(names, inputs))
            out = self.model(**kwargs, output_hidden_states=True)
            return out.logits, pool_features(out.hidden_states[-1], kwargs["attention_mask"])

    return LogitsAndFeatures().eval()


def _export_fp32(model, tokenizer, out_path: Path, opset: int) -> None:
    import torch

    enc = tokenizer(list(CHECK_TEXTS[:2]), padding=True, return_tensors="pt")
    names = [name for name in INPUT_ORDER if name in enc]
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes[LOGITS] = {0: "batch"}
    axes[FEATURES] = {0: "batch"}
    with atomic_path(out_path) as tmp, torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about Python-side shape checks in transformers' masking code; the export is
        # verified numerically against PyTorch right after (_compare), so the warnings only alarm users.
        warnings.simplefilter("ignore")
        # dynamo=False: the TorchScript exporter needs no onnxscript and handles BERT with dynamic axes.
        torch.onnx.export(
            _with_features(model, names), tuple(enc[n] for n in names), str(tmp), input_names=names,
            output_names=[LOGITS, FEATURES],
            dynamic_axes=axes, opset_version=opset, do_constant_folding=True, dynamo=False,
        )


def _quantize_int8(fp32_path: Path, out_path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    # The quantizer logs one INFO line per tensor, and a generic "consider pre-processing" WARNING,
    # on the root logger: noise for users (the int8 graph's agreement with PyTorch is checked below).
    root.setLevel(max(level, logging.ERROR))
    try:
        with atomic_path(out_path) as tmp:
            quantize_dynamic(fp32_path, tmp, weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)


def _compare(model, tokenizer, path: Path, max_length: int) -> tuple[float, float, float]:
    """(max abs probability difference, top-1 agreement, max abs feature difference) of an ONNX graph
    vs PyTorch on CHECK_TEXTS."""
    import torch

    from intent_pipeline.ood import pool_features

    session = ort_session(path)
    worst, worst_feature, agree, total = 0.0, 0.0, 0, 0
    for batch in (list(CHECK_TEXTS), [CHECK_TEXTS[2]], list(CHECK_TEXTS[1:3]) * 3):
        enc = tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="np")
        with torch.inference_mode():
            out = model(**{k: torch.from_numpy(v) for k, v in enc.items()}, output_hidden_states=True)
            ref = torch.softmax(out.logits, -1).numpy()
            ref_features = pool_features(out.hidden_states[-1], torch.from_numpy(enc["attention_mask"])).numpy()
        logits, features = session.run([LOGITS, FEATURES], ort_feed(session, enc))
        got = softmax(logits)
        worst = max(worst, float(np.abs(got - ref).max()))
        worst_feature = max(worst_feature, float(np.abs(features - ref_features).max()))
        agree += int((got.argmax(-1) == ref.argmax(-1)).sum())
        total += len(batch)
    return worst, agree / total, worst_feature


def export_onnx(model_dir: Path | str, quantize: bool = True, opset: int = DEFAULT_OPSET) -> dict[str, Path]:
    """Export `model_dir` to `model_dir/onnx/` and return {'onnx': path, 'onnx-int8': path (if quantize)}.

    Raises PipelineError if the model cannot be loaded or the fp32 graph disagrees with PyTorch.
    """
    model_dir = Path(model_dir)
    if not (model_dir / MODEL_CONFIG).is_file():
        raise PipelineError(f"no model at {model_dir}: nothing to export to ONNX")
    model, tokenizer = _load_torch(model_dir)
    max_length = model_max_length(model_dir)  # the graphs are checked at the length they will serve with
    out_dir = model_dir / ONNX_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    # Drop the export record first: a crash midway must not leave old info vouching for new files.
    (out_dir / ONNX_EXPORT_INFO).unlink(missing_ok=True)
    paths = {ONNX_BACKEND: out_dir / ONNX_FP32}
    log.info("exporting %s to ONNX (opset %d)", model_dir, opset)
    _export_fp32(model, tokenizer, paths[ONNX_BACKEND], opset)
    fp32_diff, fp32_agree, fp32_feature_diff = _compare(model, tokenizer, paths[ONNX_BACKEND], max_length)
    if fp32_diff > FP32_ATOL or fp32_feature_diff > FP32_FEATURE_ATOL:
        paths[ONNX_BACKEND].unlink(missing_ok=True)
        raise PipelineError(f"ONNX export of {model_dir} disagrees with PyTorch (max prob diff {fp32_diff:.2e}, "
                            f"max feature diff {fp32_feature_diff:.2e})")
    info: dict = {"opset": opset, "source_sha256": weights_digest(model_dir), "max_length": max_length,
                  "outputs": [LOGITS, FEATURES],
                  "fp32": {"file": ONNX_FP32, "max_prob_diff": fp32_diff, "top1_agreement": fp32_agree,
                           "max_feature_diff": fp32_feature_diff}}
    if quantize:
        paths[ONNX_INT8_BACKEND] = out_dir / ONNX_INT8
        log.info("quantizing to int8 (dynamic, QInt8 weights)")
        _quantize_int8(paths[ONNX_BACKEND], paths[ONNX_INT8_BACKEND])
        int8_diff, int8_agree, int8_feature_diff = _compare(model, tokenizer, paths[ONNX_INT8_BACKEND], max_length)
        info["int8"] = {"file": ONNX_INT8, "max_prob_diff": int8_diff, "top1_agreement": int8_agree,
                        "max_feature_diff": int8_feature_diff}
    else:
        (out_dir / ONNX_INT8).unlink(missing_ok=True)  # an int8 file from older weights would be stale
    write_json_atomic(out_dir / ONNX_EXPORT_INFO, info)
    log.info("ONNX export done: %s", ", ".join(f"{k}={v}" for k, v in paths.items()))
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="model folder (save_pretrained output or a release folder)")
    parser.add_argument("--no-quantize", action="store_true", help="skip the int8 dynamic-quantized copy")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--log-level", default=None, help="logging level (default: LOG_LEVEL setting)")
    args = parser.parse_args(argv)
    setup_logging(args.log_level or get_settings().log_level)
    paths = export_onnx(args.model_dir, quantize=not args.no_quantize, opset=args.opset)
    for backend, path in paths.items():
        print(f"{backend}: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
