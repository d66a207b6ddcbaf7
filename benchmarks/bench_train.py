"""Benchmark stages 3 + 4: prepare splits from the seed data, fine-tune with default settings, and
score clean and noisy test macro-F1 with IntentClassifier. Prints wall times and scores.

Targets (2-core CPU, full 23k seed, defaults): training < 10 min, test macro-F1 >= 0.99 clean and
>= 0.97 noisy. Also times near-duplicate grouping on synthetic rows (--grouping-rows) to show it
scales linearly. Usage: python benchmarks/bench_train.py [--database-url URL] [--max-train-rows N]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402

import config  # noqa: E402
import finetune_bert  # noqa: E402
import prepare_data  # noqa: E402
from intent_pipeline import db  # noqa: E402
from intent_pipeline.artifacts import Artifacts  # noqa: E402
from intent_pipeline.cli import run_cli  # noqa: E402
from intent_pipeline.logging_setup import setup_logging  # noqa: E402


def seed_database(settings: config.Settings, url: str) -> str:
    """Fill `messages` of a fresh database the way the pipeline does: stage 1's cleaned, PII-masked
    file through stage 2's loader (run `python ingest_clean.py` first); the raw seed only as a fallback."""
    import load_to_mysql

    if settings.cleaned_data_file.is_file():
        report = load_to_mysql.load_file(settings.cleaned_data_file, url)
        return f"{settings.cleaned_data_file} ({report.inserted} rows)"
    raw = pd.read_csv(settings.raw_data_file).dropna().drop_duplicates("query")
    engine = db.connect(url)
    with engine.begin() as conn:
        conn.execute(db.messages.insert(), [
            {"text": t, "label": l, "text_hash": hashlib.sha256(t.encode()).hexdigest(), "source": "bench"}
            for t, l in zip(raw["query"], raw["intent"])
        ])
    engine.dispose()
    return f"{settings.raw_data_file} ({len(raw)} rows, NOT masked: run `python ingest_clean.py` for pipeline numbers)"


def macro_f1(classifier, frame: pd.DataFrame) -> tuple[float, float]:
    from sklearn.metrics import f1_score

    started = time.perf_counter()
    predicted = [p.top_intent for p in classifier.predict(frame["text"].tolist(), batch_size=128)]
    return float(f1_score(frame["label"], predicted, average="macro")), time.perf_counter() - started


def time_grouping(rows: int) -> float:
    from intent_pipeline.grouping import near_duplicate_groups

    rng = random.Random(0)
    vocab = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(20000)]
    texts = [" ".join(rng.choices(vocab, k=rng.randint(3, 12))) + f" {rng.randint(0, 99999)}" for _ in range(rows)]
    started = time.perf_counter()
    near_duplicate_groups(texts)
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    settings = config.get_settings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="",
                        help="read an already loaded `messages` table here (default: CLEANED_DATA_FILE, or the raw "
                             "seed if it does not exist, loaded into a temp SQLite)")
    parser.add_argument("--work-dir", type=Path, default=None, help="artifacts and model go here (default: a temp dir)")
    parser.add_argument("--max-train-rows", type=int, default=0, help="passed to finetune_bert.py (0 = all)")
    parser.add_argument("--grouping-rows", type=int, default=1_000_000, help="synthetic rows for the grouping timing, 0 = skip")
    args = parser.parse_args(argv)
    setup_logging("WARNING")
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench_train_"))
    url = args.database_url
    if not url:
        url = f"sqlite:///{work / 'bench.db'}"
        print(f"loaded into {url}: {seed_database(settings, url)}")
    artifacts, model_dir = work / "artifacts", work / "model"

    started = time.perf_counter()
    prepare_data.main(["--database-url", url, "--artifacts-dir", str(artifacts)])
    prepare_s = time.perf_counter() - started
    started = time.perf_counter()
    finetune_bert.main(["--artifacts-dir", str(artifacts), "--output-dir", str(model_dir),
                        "--max-train-rows", str(args.max_train_rows)])
    train_s = time.perf_counter() - started

    from intent_pipeline.predict import IntentClassifier

    classifier = IntentClassifier.load(model_dir)
    clean, clean_s = macro_f1(classifier, pd.read_csv(Artifacts(artifacts).split("test"), keep_default_na=False))
    noisy, _ = macro_f1(classifier, pd.read_csv(Artifacts(artifacts).split("test_noisy"), keep_default_na=False))
    cfg = classifier.info
    print(f"prepare_data wall time:      {prepare_s:8.1f} s")
    print(f"finetune_bert wall time:     {train_s:8.1f} s (target < 600 s; Trainer train_runtime "
          f"{cfg.get('train_runtime_s')} s, {cfg.get('train_samples_per_second')} samples/s, {cfg.get('train_rows')} rows)")
    print(f"validation macro-F1:         {cfg.get('val_metrics', {}).get('macro_f1', float('nan')):8.4f}")
    print(f"test macro-F1 clean:         {clean:8.4f} (target >= 0.99)")
    print(f"test macro-F1 noisy:         {noisy:8.4f} (target >= 0.97)")
    print(f"test prediction time:        {clean_s:8.1f} s")
    if args.grouping_rows:
        print(f"grouping {args.grouping_rows} rows: {time_grouping(args.grouping_rows):8.1f} s")
    print(f"outputs in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
