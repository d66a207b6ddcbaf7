"""A fresh PII masker -> printed load time and the latency of its first messages, one at a time.

What a server's first users wait for: spaCy + Presidio load once, then each message is masked on its
own, as the API masks a lone request. The slowest of the first messages shows any work left for
first use (before the masker compiled its recognizers' regexes at load, 142-255 ms; after, 12-17 ms).

    python benchmarks/bench_mask_cold_start.py --messages 300
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import config  # noqa: E402
from benchmarks.loadtest_api import distinct_messages  # noqa: E402
from intent_pipeline.serving.service import load_masker, mask_texts  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300, help="distinct seed messages to mask (default 300)")
    args = parser.parse_args()
    messages = distinct_messages(args.messages)
    started = time.perf_counter()
    masker = load_masker(config.get_settings().spacy_model)
    load_s = time.perf_counter() - started
    latencies = []
    for message in messages:
        started = time.perf_counter()
        mask_texts(masker, [message])
        latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    n = len(latencies)
    print(f"masker load {load_s:.2f} s; first {n} messages: total {sum(latencies):.0f} ms, "
          f"median {latencies[n // 2]:.2f} ms, p99 {latencies[int(n * 0.99) - 1]:.1f} ms, max {latencies[-1]:.1f} ms")


if __name__ == "__main__":
    main()
