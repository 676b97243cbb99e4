"""Conformance helpers for explainers and games, reusable by plugins and by whybox's tests.

``check_explainer`` runs the contract every whybox explainer meets: the shape of the result,
efficiency (completeness), determinism for a fixed ``random_state``, independence of the
batch an input is explained in, and DataFrames in and out. ``check_game`` checks the Game
protocol and its cache. Both raise ``AssertionError`` with a message saying what failed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from .explainer import Explainer
from .explanation import Explanation

__all__ = ["check_explainer", "check_game"]


def _fail(msg: str) -> None:
    raise AssertionError(msg)


def check_explainer(
    make_explainer: Callable[[], Explainer],
    X: Any,
    *,
    explain_kwargs: dict[str, Any] | None = None,
    efficiency_atol: float = 1e-8,
    n_sigma: float = 4.0,
) -> Explanation:
    """Check an explainer against the whybox contract; return its Explanation of ``X``.

    Parameters
    ----------
    make_explainer : callable returning an Explainer
        Called more than once: each call must build a fresh explainer with the same
        settings (including ``random_state``).
    X : DataFrame or array of shape (n, p), n >= 2
        Rows to explain.
    explain_kwargs : dict, optional
        Passed to ``.explain``.
    efficiency_atol : float
        Largest completeness gap allowed for exact methods (no ``std``).
    n_sigma : float
        For sampled methods (``std`` filled): the gap must be within ``n_sigma`` times the
        standard error of the sum of the values (treating rows' errors as independent).

    Raises
    ------
    AssertionError
        Naming the first property that failed.
    """
    kw = dict(explain_kwargs or {})
    exp = make_explainer().explain(X, **kw)
    n = X.shape[0]
    if not isinstance(exp, Explanation):
        _fail(f"explain() returned {type(exp).__name__}, expected an Explanation.")
    # shape contract
    if exp.n_rows != n:
        _fail(f"explained {n} rows but the Explanation has {exp.n_rows}.")
    if exp.is_ragged:
        _fail("a tabular explainer returned a ragged Explanation.")
    expected_ndim = 3 if exp.multi_output else 2
    if exp.values.ndim != expected_ndim:
        _fail(f"values have shape {exp.values.shape}; expected {expected_ndim} dimensions.")
    if exp.std is not None and exp.std.shape != exp.values.shape:
        _fail("std does not have the shape of values.")
    if exp.predictions is None:
        _fail("the Explanation has no predictions, so completeness cannot be checked.")
    if "output" not in exp.params:
        _fail("params['output'] does not say which output was explained.")
    if isinstance(X, pd.DataFrame) and exp.data is not None:
        if not isinstance(exp.data, pd.DataFrame):
            _fail("a DataFrame was explained but exp.data is not a DataFrame.")
        if list(exp.data.columns) != list(X.columns):
            _fail("exp.data does not keep the columns of X.")
        if not exp.data.dtypes.equals(X.dtypes):
            _fail("exp.data does not keep the dtypes of X.")
    # efficiency / completeness
    gap = np.abs(exp.completeness_gap())
    if exp.std is None:
        if gap.max() > efficiency_atol:
            _fail(f"efficiency fails: largest completeness gap {gap.max():.3e} > {efficiency_atol}.")
    else:
        se = np.sqrt((exp.std**2).sum(axis=exp.feature_axes))
        bound = n_sigma * se + 1e-10
        if np.any(gap > bound):
            _fail(
                f"efficiency fails: completeness gap {gap.max():.3e} exceeds {n_sigma} standard "
                "errors of the sum of values."
            )
    # determinism
    again = make_explainer().explain(X, **kw)
    if not np.array_equal(again.values, exp.values):
        _fail("two explainers with the same settings gave different values (not deterministic).")
    # batch independence: each row alone gives the same values
    for i in (0, n - 1):
        row = X.iloc[[i]] if isinstance(X, pd.DataFrame) else np.asarray(X)[i : i + 1]
        alone = make_explainer().explain(row, **kw)
        if not np.allclose(alone.values[0], exp.values[i], rtol=1e-9, atol=1e-12):
            _fail(f"row {i} explained alone differs from row {i} explained in a batch.")
    return exp


def check_game(game: Any, *, n_coalitions: int = 16, random_state: int = 0) -> None:
    """Check the Game protocol: shapes, determinism and (for cached games) the cache."""
    n = int(game.n_players)
    if len(game.player_names) != n:
        _fail(f"{len(game.player_names)} player names for {n} players.")
    rng = np.random.default_rng(random_state)
    C = rng.random((n_coalitions, n)) < 0.5
    C[0] = False
    C[-1] = True
    v = np.asarray(game.value(C), dtype=float)
    if v.shape[0] != n_coalitions or v.ndim not in (1, 2):
        _fail(f"value() returned shape {v.shape} for {n_coalitions} coalitions.")
    before = getattr(game, "n_evaluated", None)
    v2 = np.asarray(game.value(C[::-1]), dtype=float)
    if not np.array_equal(v2, v[::-1]):
        _fail("value() is not a function of the coalition (order or repeat changed it).")
    if before is not None and game.n_evaluated != before:
        _fail("a cached game evaluated coalitions it had already evaluated.")
