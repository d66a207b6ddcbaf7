"""spaCy on numpy's BLAS: the same products as thinc's BLIS gemm, and the NER built on it."""

from __future__ import annotations

import numpy
import pytest
from thinc.api import NumpyOps

from intent_pipeline.pii.matmul_ops import MatmulOps


@pytest.mark.parametrize("trans1", [False, True])
@pytest.mark.parametrize("trans2", [False, True])
def test_gemm_matches_blis(trans1: bool, trans2: bool) -> None:
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((7, 5) if not trans1 else (5, 7)).astype("float32")
    y = rng.standard_normal((5, 3) if not trans2 else (3, 5)).astype("float32")
    expected = NumpyOps().gemm(x, y, trans1=trans1, trans2=trans2)
    got = MatmulOps().gemm(x, y, trans1=trans1, trans2=trans2)
    assert got.shape == (7, 3) and numpy.allclose(got, expected, atol=1e-5)
    out = numpy.zeros((7, 3), dtype="float32")
    assert MatmulOps().gemm(x, y, out=out, trans1=trans1, trans2=trans2) is out
    assert numpy.allclose(out, expected, atol=1e-5)


def test_the_masker_s_ner_runs_on_numpy_blas_and_still_finds_names() -> None:
    from threadpoolctl import threadpool_info

    from intent_pipeline.masking import get_masker
    from intent_pipeline.pii.analyzer import LANGUAGE

    import config

    masker = get_masker(config.get_settings().spacy_model)
    nlp = masker.analyzer.nlp_engine.nlp[LANGUAGE]
    assert isinstance(nlp.get_pipe("ner").model.ops, MatmulOps)
    assert all(pool["num_threads"] == 1 for pool in threadpool_info() if pool["user_api"] == "blas")
    masked = masker.mask("hi, I'm Sarah Johnson and I moved to Leeds last week").text
    assert "Sarah" not in masked and "Johnson" not in masked and "Leeds" not in masked
