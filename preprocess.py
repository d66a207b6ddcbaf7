"""Stage-1 text cleaning and PII masking, entry point: raw message(s) -> cleaned, masked message(s).

`clean_text()` (intent_pipeline/text.py) normalises a message; the masker (intent_pipeline/pii/)
replaces personal data with typed placeholders: spaCy NER plus one Presidio recognizer per kind of
value (street addresses, postcodes, names after cue phrases, spelled-out e-mails, phones of US, UK,
DE, FR, IN, AU, dates of birth, bank details, security codes, passport/licence/national/tax ids,
tracking numbers, usernames, order ids, URLs, and the [ID] default rule). The placeholder of every
entity type is listed in intent_pipeline/pii/registry.py.

Stage 1, the app and the API import the masker from here or from the package; run as a script it
masks its arguments (or stdin lines):

    python preprocess.py "hi im sarah connolly, call me on 07911 123456"
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from intent_pipeline.io import PipelineError, run_cli
from intent_pipeline.pii.engine import MaskResult, PiiMasker, get_masker  # noqa: F401  (public names of stage 1)
from intent_pipeline.pii.recognizers.email import offline_tld_extractor  # noqa: F401
from intent_pipeline.pii.registry import PLACEHOLDERS  # noqa: F401
from intent_pipeline.pii.resolve import NOT_PII_WORDS, PiiEntity  # noqa: F401
from intent_pipeline.text import clean_text

# Column names accepted for message text and intent label in uploaded or raw CSV files.
TEXT_COLUMNS = ("text", "query", "message", "utterance")
LABEL_COLUMNS = ("label", "intent")


def find_column(columns: Sequence[object], candidates: Sequence[str], what: str, where: str = "the CSV") -> str:
    """The first column whose trimmed, lower-cased name is one of `candidates` (in their order)."""
    by_name = {str(c).strip().lower(): c for c in columns}
    for name in candidates:
        if name in by_name:
            return by_name[name]
    raise PipelineError(
        f"{where} has no {what} column: found {', '.join(map(str, columns)) or 'none'}; "
        f"expected one of {', '.join(candidates)}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    from config import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(description="Clean and PII-mask messages: arguments or stdin lines -> masked text.")
    parser.add_argument("texts", nargs="*", help="messages to mask (default: one per line on stdin)")
    parser.add_argument("--spacy-model", default=settings.spacy_model, help="spaCy model for names/places (SPACY_MODEL)")
    args = parser.parse_args(argv)
    texts = args.texts or [line.rstrip("\n") for line in sys.stdin]
    masker = get_masker(args.spacy_model, settings.mask_unknown_ids)
    for result in masker.mask_batch([clean_text(t) for t in texts], n_process=1):
        print(result.text)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
