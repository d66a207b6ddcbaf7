"""Builds intent_pipeline/pii/data/common_words.txt: common English words, most frequent first.

The PII recognizers read this list to tell a name from a word in lower-case chat ("im sarah" vs
"im trying"): a word after a name cue is a name candidate only if it is NOT on this list. It is a
development tool, run by hand when the list should change (the list is committed):

    pip install wordfreq==3.1.1 english-words==2.0.2
    python tools/build_common_words.py

A word is kept when it is among wordfreq's 40,000 most frequent English words and it (or its stem:
plural, -ed, -ing, -ly, -er, -est) is a lower-case entry of Webster's 2nd (english-words' `web2`), a
dictionary without inflections whose proper nouns are capitalised. Words that web2 also lists
capitalised (given names such as "grace", "ray", "dawn") are kept only when very frequent (Zipf
frequency >= 4.8: "will", "mark", "bill"), because a support message uses those as words far more
often than as names.
"""

from __future__ import annotations

from pathlib import Path

from english_words import get_english_words_set
from wordfreq import top_n_list, zipf_frequency

OUT = Path(__file__).resolve().parent.parent / "intent_pipeline" / "pii" / "data" / "common_words.txt"
TOP_N = 40000
AMBIGUOUS_MIN_ZIPF = 4.8
SUFFIXES = (("ies", "y"), ("s", ""), ("ed", ""), ("ed", "e"), ("ing", ""), ("ing", "e"), ("ly", ""), ("er", ""),
            ("est", ""))


def main() -> None:
    web2 = get_english_words_set(["web2"], lower=False, alpha=True)
    lower_only = {w for w in web2 if w.islower()}
    capitalised = {w.lower() for w in web2 if w[:1].isupper()}

    def in_dictionary(word: str) -> bool:
        if word in lower_only:
            return True
        for suffix, replacement in SUFFIXES:
            stem = word[: -len(suffix)] + replacement
            if word.endswith(suffix) and len(word) - len(suffix) >= 3 and stem in lower_only:
                return True
        if word.endswith("es") and len(word) > 3 and word[-3] in "sxzho" and word[:-2] in lower_only:
            return True
        # doubled consonant: stopped -> stop, shipping -> ship
        return len(word) > 5 and word[-3:] in ("ing", "ed") and word[-4] == word[-5] and word[:-4] in lower_only

    words = [
        w for w in top_n_list("en", TOP_N)
        if w.isalpha() and in_dictionary(w)
        and (w not in capitalised or zipf_frequency(w, "en") >= AMBIGUOUS_MIN_ZIPF)
    ]
    OUT.write_text("\n".join(dict.fromkeys(words)) + "\n", encoding="utf-8")
    print(f"{len(words)} words -> {OUT}")


if __name__ == "__main__":
    main()
