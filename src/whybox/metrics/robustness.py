"""Robustness: do explanations stay put when the input, or the seed, barely changes?

* :func:`max_sensitivity` — the largest change of the explanation under small input
  perturbations, ``max_{||d||_inf <= r} ||a(x + d) - a(x)|| / ||a(x)||``, estimated by
  sampling ``d`` uniformly in the box (Yeh et al. 2019; the relative form Quantus and Captum
  report).
* :func:`stability` — how much a sampled method's explanation of the same rows varies across
  seeds: per-row standard deviation and mean pairwise rank correlation.

References
----------
Yeh, C.-K., Hsieh, C.-Y., Suggala, A. S., Inouye, D. I. and Ravikumar, P. (2019). On the
(in)fidelity and sensitivity of explanations. NeurIPS.

Alvarez-Melis, D. and Jaakkola, T. S. (2018). On the robustness of interpretability methods.
ICML Workshop on Human Interpretability in Machine Learning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._validation import as_2d_input, check_finite, check_int, check_nonempty
from ..errors import InvalidParameterError
from ..parallel import row_generator
from ._inputs import call_explain_fn, noise_scale, numeric_matrix, output_values, rebuild_like
from .agreement import spearman_rows

__all__ = ["max_sensitivity", "stability"]


def max_sensitivity(
    explain_fn: Callable[[Any], Any],
    X: Any,
    *,
    radius: float = 0.1,
    n_samples: int = 10,
    scale: Any = None,
    relative: bool = True,
    random_state: int | None = 0,
    perturbations: Any = None,
) -> np.ndarray:
    """Max-sensitivity of Yeh et al. (2019), one number per row (lower is better).

    Parameters
    ----------
    explain_fn : callable
        ``explain_fn(X) -> Explanation or array (n, p)``: the explanation method under test,
        e.g. ``lambda X: wb.ExactShap(model, background=bg).explain(X)``.
    X : DataFrame or array of shape (n, p), or a batch of images
        Rows to explain; only numeric features are perturbed (categorical, string and bool
        columns keep their values). Images (array or torch tensor of 3 or more axes) have
        every pixel and channel perturbed, and ``explain_fn`` gets perturbed images of the
        same type, shape and dtype.
    radius : float
        Half-width of the box ``[-radius, radius]^p`` the perturbations are drawn from, in
        units of ``scale``.
    n_samples : int
        Perturbations per row.
    scale : None, "std" or array of shape (p,)
        Unit of ``radius`` per feature (see :func:`whybox.metrics.infidelity`).
    relative : bool
        Divide by ``||a(x)||`` (Quantus and Captum do; a row with zero attributions is divided
        by 1, as in Captum). False gives Yeh et al.'s unnormalised form.
    random_state : int or None
        Seed; each row's perturbations are drawn from a generator seeded by it and the row's
        content.
    perturbations : array of shape (n_samples, n, p), optional
        The perturbations ``d`` to use instead of random ones.

    Returns
    -------
    ndarray of shape (n,)

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> X, y = wb.zoo.diabetes()
    >>> model = LinearRegression().fit(X, y)
    >>> bg = X.iloc[:50]
    >>> explain_fn = lambda Z: wb.explain(model, Z, background=bg)
    >>> sens = wb.metrics.max_sensitivity(explain_fn, X.iloc[:3], radius=0.01, scale="std")
    >>> sens.shape, bool((sens < 0.05).all())  # at most 5% change for 1% of a std
    ((3,), True)
    """
    images = _image_batch(X)
    if images is not None:  # every pixel and channel a feature
        Xf = images.reshape(images.shape[0], -1).astype(float)
        numeric = np.ones(Xf.shape[1], dtype=bool)

        def rebuild(Z: np.ndarray) -> Any:
            return _like_input(X, Z.reshape(images.shape).astype(images.dtype))

    else:
        X = as_2d_input(X)
        check_nonempty(X)
        check_finite(X)
        Xf, numeric = numeric_matrix(X, "max_sensitivity")

        def rebuild(Z: np.ndarray) -> Any:
            return rebuild_like(X, Z)

    n, p = Xf.shape
    if perturbations is None:
        n_samples = check_int("n_samples", n_samples, minimum=1)
        if not (np.isfinite(radius) and radius > 0):
            raise InvalidParameterError(f"radius must be a positive number, got {radius!r}.")
        half = float(radius) * noise_scale(scale, Xf)
        D = np.stack(
            [
                row_generator(random_state, Xf[i]).uniform(-1.0, 1.0, size=(n_samples, p))
                for i in range(n)
            ],
            axis=1,
        )
        D = D * (half * numeric)
    else:
        D = np.asarray(perturbations, dtype=float)
        if D.ndim != 3 or D.shape[1:] != (n, p):
            raise InvalidParameterError(
                f"perturbations must have shape (n_samples, {n}, {p}); got {D.shape}."
            )
        if np.any(D[:, :, ~numeric] != 0):
            raise InvalidParameterError(
                "perturbations are non-zero on non-numeric features; perturb numeric features only."
            )
    a0 = output_values(call_explain_fn(explain_fn, "explain_fn", X), n, "explain_fn")
    norm0 = np.linalg.norm(a0, axis=1)
    denom = np.where(norm0 > 0, norm0, 1.0) if relative else np.ones(n)
    worst = np.zeros(n)
    for d in D:
        a = output_values(
            call_explain_fn(explain_fn, "explain_fn", rebuild(Xf + d)), n, "explain_fn"
        )
        if a.shape != a0.shape:
            raise InvalidParameterError(
                f"explain_fn returned attributions of shape {a.shape} for perturbed inputs but "
                f"{a0.shape} for the originals."
            )
        worst = np.maximum(worst, np.linalg.norm(a - a0, axis=1) / denom)
    return worst


def _image_batch(X: Any) -> np.ndarray | None:
    """X as a float numpy batch of images when it has 3 or more axes, else None."""
    if isinstance(X, pd.DataFrame) or len(np.shape(X)) < 3:
        return None
    from ..games.image import as_image_batch

    images, _ = as_image_batch(X, "auto", name="X")
    return images


def _like_input(X: Any, arr: np.ndarray) -> Any:
    """``arr`` as the type of ``X`` (a torch tensor on X's device and dtype, or an array)."""
    if hasattr(X, "detach") and hasattr(X, "device"):
        import torch

        return torch.as_tensor(arr, dtype=X.dtype, device=X.device)
    return arr


def stability(
    explain_fn: Callable[..., Any],
    X: Any,
    *,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
) -> pd.DataFrame:
    """Stability of a sampled explanation method across seeds, per row.

    Parameters
    ----------
    explain_fn : callable
        ``explain_fn(X, random_state) -> Explanation or array (n, p)``, e.g.
        ``lambda X, random_state: wb.KernelShap(model, bg, random_state=random_state)
        .explain(X, budget=256)``.
    X : DataFrame or array of shape (n, p)
    seeds : sequence of int
        At least two seeds.

    Returns
    -------
    DataFrame with one row per explained row and columns
        ``std``: the attributions' standard deviation across seeds (ddof=1), averaged over
        features (lower is better); ``relative_std``: ``std`` divided by the mean ``|attribution|``
        of the row; ``rank_correlation``: mean Spearman correlation of the attributions over
        all pairs of seeds (higher is better; NaN where a row's attributions are constant).

    Examples
    --------
    KernelSHAP is exact for a linear model whatever the seed:

    >>> from sklearn.linear_model import LinearRegression
    >>> X, y = wb.zoo.diabetes()
    >>> model = LinearRegression().fit(X, y)
    >>> bg = X.iloc[:50]
    >>> def explain_fn(Z, random_state):
    ...     return wb.KernelShap(model, bg, random_state=random_state).explain(Z, budget=64)
    >>> table = wb.metrics.stability(explain_fn, X.iloc[:3], seeds=(0, 1))
    >>> table.columns.tolist(), table["std"].round(6).tolist()
    (['std', 'relative_std', 'rank_correlation'], [0.0, 0.0, 0.0])
    """
    X = as_2d_input(X)
    check_nonempty(X)
    seeds = list(seeds)
    if len(seeds) < 2:
        raise InvalidParameterError(
            f"stability needs at least two seeds to compare; got {len(seeds)}."
        )
    n = X.shape[0]
    runs = np.stack(
        [
            output_values(
                call_explain_fn(explain_fn, "explain_fn", X, random_state=seed), n, "explain_fn"
            )
            for seed in seeds
        ]
    )  # (S, n, p)
    std = runs.std(axis=0, ddof=1).mean(axis=1)
    level = np.abs(runs).mean(axis=(0, 2))
    rel = np.divide(std, level, out=np.full(n, np.nan), where=level > 0)
    pairs = [(a, b) for a in range(len(seeds)) for b in range(a + 1, len(seeds))]
    corr = np.stack([spearman_rows(runs[a], runs[b]) for a, b in pairs])
    finite = np.isfinite(corr)
    count = finite.sum(axis=0)
    total = np.where(finite, corr, 0.0).sum(axis=0)
    rank = np.divide(total, count, out=np.full(n, np.nan), where=count > 0)
    index = list(X.index) if isinstance(X, pd.DataFrame) else list(range(n))
    return pd.DataFrame(
        {"std": std, "relative_std": rel, "rank_correlation": rank}, index=pd.Index(index)
    )
