"""A model release -> printed timings of the dashboard: load once, then single predictions.

Reports model and PII-masker load times, the latency of one message through the app's own path
(truncate, clean, mask, classify: `dashboard.answer_message`), and the wall time of a full Predict
rerun of app.py in Streamlit's AppTest (script run + page elements, i.e. server-side render), and a
Batch upload of seed messages: the first run (mask, classify, log) and the reruns after it (a slider
move), which reuse the cached results and log nothing again.
Target: a single prediction renders in well under a second on this CPU (p95 < 1000 ms).
Predictions of the render run are logged into a throw-away SQLite database, never the real one.

    python benchmarks/bench_app.py --model-source registry/intent-classifier/v1 --messages 30
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import app  # noqa: E402  (defines the cached loaders only; importing renders nothing)
from config import PROJECT_ROOT, get_settings  # noqa: E402
from intent_pipeline.cli import run_cli  # noqa: E402
from intent_pipeline.logging_setup import setup_logging  # noqa: E402
from intent_pipeline.registry import resolve_model_source  # noqa: E402
from intent_pipeline.serving.service import PredictionService, load_masker, load_model  # noqa: E402

MESSAGES = (
    "Where is my order? It was supposed to arrive yesterday",
    "I want a refund, my name is John Smith and my email is john@example.com",
    "can u change my delivery address to 12 Baker Street pls",
    "How do I reset my password",
    "The item arrived broken, what now? call me on +1 415 555 0100",
    "cancel my subscription",
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-source", default=None,
                        help="release folder or Hub repo id (default: MODEL_SOURCE, else the latest local release)")
    parser.add_argument("--messages", type=int, default=30, help="single predictions to time (default 30)")
    parser.add_argument("--no-render", action="store_true", help="skip the AppTest render timings")
    parser.add_argument("--batch-rows", type=int, default=500, help="rows of the Batch upload to time (default 500)")
    return parser.parse_args(argv)


def summary(name: str, times_ms: list[float]) -> None:
    ordered = sorted(times_ms)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    print(f"{name:<34} n={len(ordered):<4} median {statistics.median(ordered):7.1f} ms   "
          f"p95 {p95:7.1f} ms   max {ordered[-1]:7.1f} ms", flush=True)


def time_answers(folder: Path, n: int) -> None:
    settings = get_settings()
    started = time.perf_counter()
    model = load_model(settings, source=str(folder), num_threads=app.MODEL_THREADS)
    label = f"model load ({model.backend})"
    print(f"{label:<35}{time.perf_counter() - started:7.2f} s")
    started = time.perf_counter()
    service = PredictionService(settings, model, load_masker(settings.spacy_model), app.MODEL_THREADS)
    print(f"PII masker load                    {time.perf_counter() - started:7.2f} s")
    service.answer(MESSAGES[0])  # warm-up
    times = [service.answer(MESSAGES[i % len(MESSAGES)]).latency_ms for i in range(n)]
    summary("answer (mask + classify)", times)


def time_render(folder: Path, n: int) -> None:
    from streamlit import config as st_config
    from streamlit.testing.v1 import AppTest

    # AppTest opens no socket; the app's bind check reads this (config.toml only applies from the project root).
    st_config.set_option("server.address", "127.0.0.1")
    with tempfile.TemporaryDirectory() as tmp:
        at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=300)
        # Through st.secrets, as on Streamlit Cloud: this process's settings stay untouched.
        at.secrets.update({"MODEL_SOURCE": str(folder), "DATABASE_URL": f"sqlite:///{tmp}/bench.db"})
        started = time.perf_counter()
        at.run()
        print(f"first page load (cold caches)      {time.perf_counter() - started:7.2f} s")
        times = []
        for i in range(n + 1):
            at.text_area[0].input(MESSAGES[i % len(MESSAGES)] + f" #{i}")
            started = time.perf_counter()
            at.button[0].click().run()
            times.append((time.perf_counter() - started) * 1000)
            if at.exception:
                raise RuntimeError(at.exception[0].message)
        summary("Predict rerun (server-side render)", times[1:])


def time_batch(folder: Path, rows: int) -> None:
    import pandas as pd
    import sqlalchemy as sa
    from streamlit.testing.v1 import AppTest

    seed = pd.read_csv(get_settings().raw_data_file).sample(rows, random_state=1, replace=rows > 20_000)
    csv = pd.DataFrame({"text": seed[dash.find_text_column(seed.columns)].astype(str)}).to_csv(index=False).encode("utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=1200)
        at.secrets.update({"MODEL_SOURCE": str(folder), "DATABASE_URL": f"sqlite:///{tmp}/bench.db"})
        at.run()
        at.sidebar.radio(key="view").set_value("Batch").run()
        started = time.perf_counter()
        at.file_uploader(key="batch_upload").set_value(("batch.csv", csv, "text/csv")).run()
        print(f"batch of {rows} rows, first run        {time.perf_counter() - started:7.2f} s")
        times = []
        for threshold in (0.3, 0.5, 0.7):
            started = time.perf_counter()
            at.sidebar.slider(key="threshold").set_value(threshold).run()
            times.append((time.perf_counter() - started) * 1000)
        summary("batch rerun (slider move, cached)", times)
        engine = sa.create_engine(f"sqlite:///{tmp}/bench.db")
        with engine.connect() as conn:
            logged = conn.execute(sa.text("SELECT COUNT(*) FROM predictions")).scalar()
        engine.dispose()
        print(f"rows logged for the batch            {logged} (logged once: {logged == rows})")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging("WARNING")
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)  # per-message NER label notices drown the table
    settings = get_settings()
    folder = resolve_model_source(settings, args.model_source)
    print(f"release {folder}")
    time_answers(folder, args.messages)
    if not args.no_render:
        time_render(folder, args.messages)
        time_batch(folder, args.batch_rows)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
