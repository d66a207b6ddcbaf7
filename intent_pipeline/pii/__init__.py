"""PII masking for support chat: Presidio recognizers, one per module, and the engine that runs them.

- `recognizers/`: one recognizer per module, Presidio style (patterns and cue words declared on the
  class, overridable in the constructor);
- `registry.py`: the one list of recognizers and placeholders; the analyzer, the placeholder map and
  the requested entity list are derived from it;
- `engine.py`: `PiiMasker` (single and batch masking), `get_masker`, `mask_then_truncate`;
- `resolve.py`: overlapping finds -> the spans that are masked;
- `addresses.py`: the town and postcode around a street address, read as one address;
- `words.py`: the word lists that tell a name or a town from an ordinary word.

Importing the package is cheap; spaCy and Presidio load when a masker is built.
"""
