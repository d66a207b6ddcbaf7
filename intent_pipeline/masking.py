"""Stage 1's text API: the CSV columns a message file may use, text cleaning, and the PII masker.

The masker itself lives in `intent_pipeline.pii` (one Presidio recognizer per module, the registry of
entity types and placeholders, the batch engine); its public names are re-exported here, so stage 1,
the app, the API and `preprocess.py` import one module.
"""

from __future__ import annotations

from collections.abc import Sequence

from intent_pipeline.errors import PipelineError
from intent_pipeline.pii.engine import MaskResult, PiiMasker, get_masker, mask_then_truncate
from intent_pipeline.pii.recognizers.email_address import offline_tld_extractor
from intent_pipeline.pii.registry import PLACEHOLDERS
from intent_pipeline.pii.resolve import NOT_PII_WORDS, PiiEntity
from intent_pipeline.text import clean_text

__all__ = [
    "LABEL_COLUMNS", "NOT_PII_WORDS", "PLACEHOLDERS", "TEXT_COLUMNS", "MaskResult", "PiiEntity", "PiiMasker",
    "clean_text", "find_column", "get_masker", "mask_then_truncate", "offline_tld_extractor",
]

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
