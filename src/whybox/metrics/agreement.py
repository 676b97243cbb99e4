"""Agreement between two explanations of the same rows: the disagreement problem.

Per row, with features ranked by the magnitude of their attribution (Krishna et al. 2022):

* ``spearman``, ``kendall`` — rank correlation of the two rankings over all features
  (Spearman's rho with average ranks for ties; Kendall's tau-b);
* ``feature_agreement`` — the share of the top-``k`` features the two have in common;
* ``rank_agreement`` — the share of the top-``k`` positions holding the same feature;
* ``sign_agreement`` — the share of top-``k`` features common to both with the same sign;
* ``signed_rank_agreement`` — same feature in the same position with the same sign;
* ``pairwise_rank_agreement`` — the share of feature pairs the two order the same way.

References
----------
Krishna, S., Han, T., Gu, A., Pombra, J., Jabbari, S., Wu, S. and Lakkaraju, H. (2022). The
disagreement problem in explainable machine learning: a practitioner's perspective.
arXiv:2202.01602 (TMLR 2024).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from .._validation import check_int
from ..errors import InvalidInputError
from ..explanation import Explanation
from ._inputs import attribution_matrix

__all__ = ["agreement", "kendall_rows", "spearman_rows"]


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    num = (a * b).sum(axis=1)
    return np.divide(num, den, out=np.full(a.shape[0], np.nan), where=den > 1e-300)


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair (average ranks for ties), shape (n,); NaN if constant."""
    return _pearson_rows(rankdata(a, axis=1), rankdata(b, axis=1))


def _pair_signs(a: np.ndarray) -> np.ndarray:
    """sign(a_i - a_j) for every pair i < j of each row: shape (n, p(p-1)/2)."""
    i, j = np.triu_indices(a.shape[1], k=1)
    return np.sign(a[:, i] - a[:, j])


def kendall_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each row pair, shape (n,); NaN if a row is constant."""
    sa, sb = _pair_signs(a), _pair_signs(b)
    num = (sa * sb).sum(axis=1)
    den = np.sqrt((sa != 0).sum(axis=1) * (sb != 0).sum(axis=1))
    return np.divide(num, den, out=np.full(a.shape[0], np.nan), where=den > 0)


def _top(mag: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest magnitudes per row, largest first (ties: lower index)."""
    return np.argsort(-mag, axis=1, kind="stable")[:, :k]


def agreement(exp_a: Any, exp_b: Any, *, k: int = 5, target: Any = None) -> pd.DataFrame:
    """How much two explanations of the same rows agree, per row (Krishna et al. 2022).

    Parameters
    ----------
    exp_a, exp_b : Explanation or array of shape (n, p)
        Attributions of the same rows and features (Explanations with the same feature
        names in another order are aligned by name).
    k : int
        Size of the top-k sets (at most p).
    target : optional
        Output to compare when the Explanations explain several.

    Returns
    -------
    DataFrame with one row per explained row and columns ``spearman``, ``kendall``,
    ``feature_agreement``, ``rank_agreement``, ``sign_agreement``, ``signed_rank_agreement``
    and ``pairwise_rank_agreement``: all in [-1, 1] or [0, 1], higher meaning more agreement.

    Examples
    --------
    Two exact methods agree perfectly:

    >>> from sklearn.linear_model import LinearRegression
    >>> X, y = wb.zoo.diabetes()
    >>> model = LinearRegression().fit(X, y)
    >>> bg = X.iloc[:50]
    >>> a = wb.explain(model, X.iloc[:5], background=bg)  # LinearShap
    >>> b = wb.explain(model, X.iloc[:5], method="exact", background=bg)  # ExactShap
    >>> table = wb.metrics.agreement(a, b, k=3)
    >>> table.shape, table["feature_agreement"].tolist()
    ((5, 7), [1.0, 1.0, 1.0, 1.0, 1.0])
    """
    a = attribution_matrix(exp_a, "exp_a", target=target)
    b = attribution_matrix(exp_b, "exp_b", target=target)
    if isinstance(exp_a, Explanation) and isinstance(exp_b, Explanation):
        na, nb = list(exp_a.feature_names), list(exp_b.feature_names)
        if na != nb:
            if sorted(na) != sorted(nb) or len(set(na)) != len(na):
                only_a = [f for f in na if f not in nb]
                only_b = [f for f in nb if f not in na]
                raise InvalidInputError(
                    "the two explanations have different features (only in exp_a: "
                    f"{only_a}; only in exp_b: {only_b}). Compare explanations of the same "
                    "features."
                )
            b = b[:, [nb.index(f) for f in na]]
    if a.shape != b.shape:
        raise InvalidInputError(
            f"the explanations have shapes {a.shape} and {b.shape}; compare explanations of "
            "the same rows (in the same order) and the same features."
        )
    n, p = a.shape
    k = check_int("k", k, minimum=1, maximum=p)
    ma, mb = np.abs(a), np.abs(b)
    ta, tb = _top(ma, k), _top(mb, k)
    common = np.array([np.isin(ta[i], tb[i]) for i in range(n)])  # (n, k) over a's top-k
    sign_a = np.sign(np.take_along_axis(a, ta, axis=1))
    sign_b_same = np.sign(np.take_along_axis(b, ta, axis=1))
    same_pos = ta == tb
    same_sign_pos = same_pos & (np.sign(np.take_along_axis(b, tb, axis=1)) == sign_a)
    sa, sb = _pair_signs(ma), _pair_signs(mb)
    out = {
        "spearman": spearman_rows(ma, mb),
        "kendall": kendall_rows(ma, mb),
        "feature_agreement": common.sum(axis=1) / k,
        "rank_agreement": same_pos.sum(axis=1) / k,
        "sign_agreement": (common & (sign_a == sign_b_same)).sum(axis=1) / k,
        "signed_rank_agreement": same_sign_pos.sum(axis=1) / k,
        "pairwise_rank_agreement": (sa == sb).mean(axis=1) if p > 1 else np.ones(n),
    }
    index = exp_a.row_labels if isinstance(exp_a, Explanation) else list(range(n))
    return pd.DataFrame(out, index=pd.Index(index))
