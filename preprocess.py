"""Clean and PII-mask messages from the command line: text (arguments or stdin lines) -> masked text.

The logic lives in `intent_pipeline.masking` (used by stage 1, the app and the API); this script is
its thin entry point and keeps the public names importable as `preprocess.clean_text` etc.

    python preprocess.py "My name is Ashley Smith, order 12345678"
    python preprocess.py < messages.txt
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from config import get_settings
from intent_pipeline.cli import run_cli
from intent_pipeline.logging_setup import setup_logging
from intent_pipeline.masking import (
    LABEL_COLUMNS,
    PLACEHOLDERS,
    TEXT_COLUMNS,
    MaskResult,
    PiiEntity,
    PiiMasker,
    clean_text,
    find_column,
    get_masker,
    offline_tld_extractor,
)

# Re-exported for code that imported them from here before the logic moved into the package.
__all__ = [
    "LABEL_COLUMNS", "PLACEHOLDERS", "TEXT_COLUMNS", "MaskResult", "PiiEntity", "PiiMasker", "clean_text", "find_column",
    "get_masker", "main", "offline_tld_extractor",
]


def main(argv: Sequence[str] | None = None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("texts", nargs="*", help="messages to mask (default: one per line on stdin)")
    parser.add_argument("--spacy-model", default=settings.spacy_model, help="spaCy model for names/places (SPACY_MODEL)")
    args = parser.parse_args(argv)
    setup_logging(settings.log_level)
    texts = args.texts or [line.rstrip("\n") for line in sys.stdin]
    masker = get_masker(args.spacy_model)
    for result in masker.mask_batch([clean_text(t) for t in texts], n_process=1):
        print(result.text)
    logging.getLogger("preprocess").info("masked %d message(s)", len(texts))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
