"""The Presidio AnalyzerEngine behind the masker, built from the registry, fully offline."""

from __future__ import annotations

import logging

from intent_pipeline.errors import PipelineError
from intent_pipeline.pii.registry import NER_LABELS, Registered

LANGUAGE = "en"
NER_SCORE = 0.85  # spaCy gives no per-entity score; Presidio's SpacyRecognizer default strength


def load_ner_only(spacy_model: str):
    """The spaCy pipeline with NER and what it needs, nothing else (NER is most of stage 1's time).

    In the en_core_web_* models the NER has its own embedding layer, so the shared `tok2vec` (used
    only by the tagger and parser) is dropped too: about 1.5x faster. Models whose NER listens to a
    shared embedding component fail without it and are loaded with it. Its matrix products run on
    numpy's BLAS (matmul_ops.py).
    """
    import spacy

    from intent_pipeline.pii.matmul_ops import use_numpy_blas

    use_numpy_blas()
    unneeded = ["tagger", "parser", "attribute_ruler", "lemmatizer", "senter", "morphologizer"]
    try:
        try:
            nlp = spacy.load(spacy_model, exclude=["tok2vec", *unneeded])
            nlp("Check that Anna Smith in Paris is found.")
            return nlp
        except (ValueError, KeyError):
            return spacy.load(spacy_model, exclude=unneeded)
    except OSError:
        raise PipelineError(f"spaCy model {spacy_model!r} is not installed (set SPACY_MODEL or pip install it)") from None


def artifacts_for(doc, nlp_engine):
    """Presidio's NlpArtifacts for a spaCy doc, built with its public constructor.

    The masker pipes every message through spaCy itself and builds artifacts only for the messages
    that some recognizer must look at (most need none); the NER labels are mapped as the engine's
    NerModelConfiguration would (GPE/LOC/FAC -> LOCATION), the other labels dropped.
    """
    from presidio_analyzer.nlp_engine import NlpArtifacts
    from spacy.tokens import Span

    entities = [Span(doc, e.start, e.end, label=NER_LABELS[e.label_]) for e in doc.ents if e.label_ in NER_LABELS]
    return NlpArtifacts(entities=entities, tokens=doc, tokens_indices=[t.idx for t in doc],
                        lemmas=[t.lemma_ for t in doc], nlp_engine=nlp_engine, language=LANGUAGE,
                        scores=[NER_SCORE] * len(entities))


def build_analyzer(spacy_model: str, entries: list[Registered]):
    """(AnalyzerEngine, the recognizer built for each registry entry, in order)."""
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine

    logging.getLogger("presidio-analyzer").setLevel(logging.WARNING)  # one INFO line per recognizer otherwise
    nlp = load_ner_only(spacy_model)
    # Every other NER label (ORG, PRODUCT, CARDINAL, ...) is dropped: product and plan names are not PII.
    ignored = sorted(set(nlp.get_pipe("ner").labels) - set(NER_LABELS))
    ner_config = NerModelConfiguration(model_to_presidio_entity_mapping=NER_LABELS, labels_to_ignore=ignored)
    nlp_engine = SpacyNlpEngine(models=[{"lang_code": LANGUAGE, "model_name": spacy_model}],
                                ner_model_configuration=ner_config)
    nlp_engine.nlp = {LANGUAGE: nlp}  # loaded above with only NER: no load() and its download fallback
    recognizers = [entry.build() for entry in entries]
    compile_patterns(recognizers)
    registry = RecognizerRegistry(recognizers=recognizers, supported_languages=[LANGUAGE])
    return AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=[LANGUAGE]), recognizers


def compile_patterns(recognizers: list) -> None:
    """Compile every pattern recognizer's regexes now, as Presidio would on the recognizer's first run.

    The masker's gates run most recognizers only on messages with a cue, so Presidio's lazy compile
    fell on a server's first messages with a date, an address or a reference: 5-50 ms per fuzzy cue
    pattern, 48 of them over the first 300 load-test messages. Forked stage-1 workers inherit them.
    """
    import regex

    for recognizer in recognizers:
        for pattern in getattr(recognizer, "patterns", None) or []:  # spaCy's recognizer has none
            # Presidio compiles again where the regex is missing or was compiled with other flags.
            pattern.compiled_with_flags = recognizer.global_regex_flags
            pattern.compiled_regex = regex.compile(pattern.regex, flags=recognizer.global_regex_flags)
