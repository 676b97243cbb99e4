"""``sample_weight`` of the explainable boosting machines: checked, then zero rows dropped.

A row of weight ``w`` counts ``w`` times: its gradient, hessian, count (towards
``min_samples_leaf``) and validation loss are scaled by ``w``, and so are the intercept, the
centring of the terms and ``bin_weights_``. Unit weights give the unweighted model to the bit;
integer weights approximate repeating the rows (the bags' train / validation splits and the
quantile bins still see each row once); rows of weight zero are dropped before binning, so
they change nothing.

References
----------
Nori, H., Jenkins, S., Koch, P. and Caruana, R. (2019). InterpretML: A Unified Framework for
Machine Learning Interpretability. arXiv:1909.09223.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import InvalidInputError

__all__ = ["check_sample_weight"]


def check_sample_weight(sample_weight: Any, n: int) -> np.ndarray | None:
    """Validated weights as float64 of shape (n,), or None for unit weights.

    Raises
    ------
    InvalidInputError
        Weights that are not 1-D numbers, of another length than ``n``, negative, NaN or
        infinite, or all zero.
    """
    if sample_weight is None:
        return None
    raw = sample_weight.to_numpy() if isinstance(sample_weight, (pd.Series, pd.DataFrame)) else sample_weight  # fmt: skip
    try:
        w = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"sample_weight could not be read as numbers ({exc}). Pass one non-negative "
            "number per row of X, or sample_weight=None for equal weights."
        ) from exc
    if w.ndim == 0:
        w = np.full(n, float(w))
    if w.ndim != 1 or w.shape[0] != n:
        raise InvalidInputError(
            f"sample_weight has shape {w.shape} but X has {n} rows; pass a 1-D array with one "
            "weight per row of X (or sample_weight=None for equal weights)."
        )
    bad = ~np.isfinite(w)
    if bad.any():
        raise InvalidInputError(
            f"sample_weight has {int(bad.sum())} NaN or infinite entries (first at row "
            f"{int(np.flatnonzero(bad)[0])}); weights must be finite. Impute them, or give "
            "those rows weight 0 to leave them out."
        )
    neg = w < 0
    if neg.any():
        raise InvalidInputError(
            f"sample_weight has {int(neg.sum())} negative entries (first at row "
            f"{int(np.flatnonzero(neg)[0])}: {w[neg][0]!r}); weights must be >= 0. Use 0 to "
            "leave a row out."
        )
    if not (w > 0).any():
        raise InvalidInputError(
            "sample_weight is zero for every row, so there is nothing to learn from; give "
            "at least one row a positive weight."
        )
    return w
