"""Benchmark of stage 1's PII masking: raw seed CSV -> messages per second (printed, nothing written).

Measures (1) the seed project's approach, one `AnalyzerEngine.analyze` + `AnonymizerEngine` call per
message with the full spaCy pipeline and every default recognizer, on a sample; and (2) stage 1's
batched masker on the whole file with N_PROCESS workers. Both run under the same machine load, so
their ratio is the fair number when other jobs share the CPU. CPU seconds per message (workers
included) are printed too: they do not depend on how busy the machine is.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config import get_settings  # noqa: E402
from intent_pipeline.cli import run_cli  # noqa: E402
from intent_pipeline.ingest import clean_rows, mask_rows  # noqa: E402
from intent_pipeline.masking import clean_text, get_masker, offline_tld_extractor  # noqa: E402
from intent_pipeline.message_files import read_message_file  # noqa: E402


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, default=settings.raw_data_file, help="raw messages file (default: RAW_DATA_FILE)")
    parser.add_argument("--n-process", type=int, default=settings.n_process, help="worker processes (N_PROCESS)")
    parser.add_argument("--rows", type=int, default=0, help="use only the first N rows (0 = the whole file)")
    parser.add_argument("--baseline-sample", type=int, default=200, help="messages for the per-message baseline (0 = skip)")
    return parser.parse_args(argv)


def cpu_seconds() -> float:
    """CPU time of this process plus its finished children (the masking workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def seed_style_baseline(texts: list[str], spacy_model: str) -> tuple[float, float]:
    """Messages/s and CPU ms per message of the per-message approach: full spaCy pipeline, default recognizers, anonymizer."""
    import tldextract
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import AnonymizerEngine

    # The default email recognizer would fetch the public suffix list; keep the baseline offline too.
    tldextract.tldextract.TLD_EXTRACTOR = offline_tld_extractor()
    provider = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": spacy_model}],
    })
    analyzer = AnalyzerEngine(nlp_engine=provider.create_engine())
    anonymizer = AnonymizerEngine()
    start, cpu_start = time.perf_counter(), cpu_seconds()
    for text in texts:
        anonymizer.anonymize(text=text, analyzer_results=analyzer.analyze(text=text, language="en"))
    return len(texts) / (time.perf_counter() - start), 1000 * (cpu_seconds() - cpu_start) / len(texts)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = get_settings()
    rows, _ = read_message_file(args.input, settings.text_column, settings.label_column)
    if args.rows:
        rows = rows.head(args.rows)
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}, n_process: {args.n_process}")

    if args.baseline_sample:
        sample = [clean_text(t) for t in rows["raw_text"].sample(args.baseline_sample, random_state=0)]
        baseline, baseline_cpu_ms = seed_style_baseline(sample, settings.spacy_model)
        print(f"per-message baseline: {baseline:.0f} msgs/s, {baseline_cpu_ms:.2f} CPU ms/msg "
              f"({len(sample)} messages, 1 process)")

    start = time.perf_counter()
    get_masker(settings.spacy_model)
    load_s = time.perf_counter() - start
    start, cpu_start = time.perf_counter(), cpu_seconds()
    cleaned = clean_rows(rows, settings.max_text_chars, skipped=Counter())
    masked, _, pii = mask_rows(cleaned, settings.spacy_model, args.n_process, progress=True)
    mask_s = time.perf_counter() - start
    rate = len(masked) / mask_s
    cpu_ms = 1000 * (cpu_seconds() - cpu_start) / len(masked)
    print(f"stage 1 masker: {rate:.0f} msgs/s ({len(masked)} messages in {mask_s:.1f} s, model load {load_s:.1f} s "
          f"not included; end to end {len(masked) / (mask_s + load_s):.0f} msgs/s), {cpu_ms:.2f} CPU ms/msg; "
          f"PII found: {dict(pii)}")
    cores = min(args.n_process, os.cpu_count() or 1)
    print(f"on an idle machine ({cores} core(s) busy): about {1000 * cores / cpu_ms:.0f} msgs/s")
    if args.baseline_sample:
        print(f"speed-up over the per-message baseline: {rate / baseline:.1f}x wall clock under the current load, "
              f"{cores * baseline_cpu_ms / cpu_ms:.1f}x on an idle machine (CPU time; target >= 10x)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
