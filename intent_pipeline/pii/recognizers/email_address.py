"""OfflineEmailRecognizer: Presidio's EmailRecognizer with the domain check kept offline.

tldextract's default extractor fetches the public suffix list over the network on first use; an
empty URL list makes it use the snapshot bundled with the package.
"""

from __future__ import annotations

import functools

from presidio_analyzer.predefined_recognizers import EmailRecognizer


@functools.lru_cache(maxsize=1)
def offline_tld_extractor():
    import tldextract

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


class OfflineEmailRecognizer(EmailRecognizer):
    def validate_result(self, pattern_text: str) -> bool:
        return offline_tld_extractor()(pattern_text).fqdn != ""

    @staticmethod
    def could_match(text: str) -> bool:
        return "@" in text
