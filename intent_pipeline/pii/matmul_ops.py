"""spaCy's matrix products on numpy's BLAS (OpenBLAS) instead of the BLIS build thinc bundles.

NER is most of stage 1's time, and most of NER is thinc's `gemm`. The BLIS wheel picks its kernels
from what it knows of the CPU at run time; on the 2-core AMD EPYC (AVX-512) machines of this project
it ran spaCy's products 3-4x slower than numpy's OpenBLAS (3,000 x 288 by 288 x 864: 66 against 15 ms),
and stage 1 masked 2,000 seed messages in about 1.5 CPU ms each against 1.2 with OpenBLAS, with
identical output. `use_numpy_blas()` makes every thinc layer built afterwards multiply with
`numpy.matmul`; the parser's own per-step products (Cython) stay on BLIS.

OpenBLAS is held to one thread per process: stage 1 already runs one masking process per core, and in
the API the model's threads have the other core. Only numpy's BLAS is limited (torch has its own).
"""

from __future__ import annotations

import numpy
from thinc.api import NumpyOps, set_current_ops


class MatmulOps(NumpyOps):
    """NumpyOps whose gemm is numpy.matmul (numpy's BLAS) rather than BLIS; everything else as is."""

    def gemm(self, x, y, *, out=None, trans1: bool = False, trans2: bool = False):
        if trans1:
            x = x.T
        if trans2:
            y = y.T
        if out is None:
            return numpy.matmul(x, y)
        numpy.matmul(x, y, out=out)
        return out


def use_numpy_blas() -> None:
    """Build thinc models (spaCy pipelines loaded after this call) on `MatmulOps`, one BLAS thread."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    set_current_ops(MatmulOps())
