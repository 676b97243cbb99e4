"""Matplotlib plots of global effects: partial dependence / ICE, ALE and feature importance.

Each function takes a result object (:class:`~whybox.inspection.partial_dependence.PartialDependence`,
:class:`~whybox.inspection.ale.AccumulatedLocalEffects`,
:class:`~whybox.inspection.importance.FeatureImportance`) and returns the Axes it drew on; pass
``ax=`` to draw into an existing one. With several outputs pick one with ``output=``.

Lines carry labels so that their data can be found again: ``"average"`` (the PDP),
``"_ice"`` (ICE curves, hidden from legends), ``"ale"``, ``"_rug"``. Feature names are drawn
with mathtext and TeX disabled, so they are shown literally.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np

from ..errors import InvalidParameterError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_ale", "plot_importance", "plot_partial_dependence"]

BLUE = "#008bfb"
RED = "#ff0051"
GREY = "#777777"
_TEXT: dict[str, Any] = {"parse_math": False, "usetex": False}


def _axes(ax: Axes | None, size: tuple[float, float] = (6.0, 4.0)) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=size)
    return ax


def _pick(arr: np.ndarray | None, multi: bool, names: list[str], output: Any) -> Any:
    """The slice of ``arr`` (trailing output axis when ``multi``) for ``output``."""
    if arr is None or not multi:
        if output is not None and not multi and output not in (0, -1, *names):
            raise InvalidParameterError(
                f"output={output!r} does not match this result, which has a single output "
                f"({names[0] if names else ''!r}). Leave output=None."
            )
        return arr
    if output is None:
        raise InvalidParameterError(
            f"this result has {len(names)} outputs {names}; the plot shows one. Pass "
            f"output=<name or index>, e.g. output={names[0]!r}."
        )
    if isinstance(output, str) and output in names:
        k = names.index(output)
    elif isinstance(output, numbers.Integral) and not isinstance(output, bool):
        if not -len(names) <= output < len(names):
            raise InvalidParameterError(f"output={output} is out of range for the outputs {names}.")
        k = int(output) % len(names)
    else:
        raise InvalidParameterError(f"output={output!r} is not one of the outputs {names}.")
    return arr[..., k]


def _ylabel(obj: Any, output: Any) -> str:
    label = str(obj.output)
    if output is not None and getattr(obj, "multi_output", False):
        label += f" [{output}]"
    return label


def _rug(ax: Axes, values: Any) -> None:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size:
        ax.plot(v, np.zeros_like(v), "|", color="k", alpha=0.3, markersize=8, label="_rug",
                transform=ax.get_xaxis_transform())  # fmt: skip


def _surface(ax: Axes, g1: Any, g2: Any, Z: np.ndarray, cat: tuple, names: tuple) -> None:
    if not any(cat):
        x, y = np.asarray(g1, float), np.asarray(g2, float)
        cs = ax.contourf(x, y, Z.T, levels=12, cmap="RdBu_r")
        ax.contour(x, y, Z.T, levels=12, colors="k", linewidths=0.4, alpha=0.5)
    else:
        cs = ax.imshow(Z.T, origin="lower", aspect="auto", cmap="RdBu_r")
        ax.set_xticks(range(len(g1)), labels=[str(v) for v in g1], **_TEXT)
        ax.set_yticks(range(len(g2)), labels=[str(v) for v in g2], **_TEXT)
    ax.figure.colorbar(cs, ax=ax)
    ax.set_xlabel(str(names[0]), **_TEXT)
    ax.set_ylabel(str(names[1]), **_TEXT)


# ------------------------------------------------------------------ partial dependence
def plot_partial_dependence(
    pd_: Any,
    ax: Axes | None = None,
    *,
    output: Any = None,
    ice: bool = True,
    max_ice: int = 200,
    rug: bool = True,
) -> Axes:
    """PDP line with ICE curves and a rug (1-D), or a contour / heatmap (pair).

    Parameters
    ----------
    pd_ : PartialDependence
    ax : Axes, optional
    output : str or int, optional
        Needed when the result has several outputs.
    ice : bool, default True
        Draw the ICE curves when the result has them.
    max_ice : int, default 200
        Draw at most this many ICE curves (the first rows).
    rug : bool, default True
        Tick marks at the data values (numeric features).

    Returns
    -------
    Axes
    """
    ax = _axes(ax)
    avg = _pick(pd_.average, pd_.multi_output, pd_.output_names, output)
    if pd_.is_pair:
        _surface(ax, *pd_.grid, avg, pd_.categorical, pd_.feature)
        ax.set_title(_ylabel(pd_, output), **_TEXT)
        return ax
    ind = _pick(pd_.individual, pd_.multi_output, pd_.output_names, output)
    cat = bool(pd_.categorical)
    x = np.arange(len(pd_.grid)) if cat else np.asarray(pd_.grid, dtype=float)
    if ice and ind is not None:
        for row in ind[:max_ice]:
            ax.plot(x, row, color=GREY, alpha=0.25, linewidth=0.6, label="_ice")
    marker = "o" if cat else None
    ax.plot(x, avg, color=BLUE, linewidth=2.5, marker=marker, label="average")
    if cat:
        ax.set_xticks(x, labels=[str(v) for v in pd_.grid], **_TEXT)
    elif rug and pd_.feature_values is not None:
        _rug(ax, pd_.feature_values)
    ax.set_xlabel(str(pd_.feature), **_TEXT)
    ax.set_ylabel(("centred " if pd_.centered else "") + _ylabel(pd_, output), **_TEXT)
    return ax


# ------------------------------------------------------------------ ALE
def plot_ale(a: Any, ax: Axes | None = None, *, output: Any = None, rug: bool = True) -> Axes:
    """ALE curve (numeric), points with error bars (categorical) or a contour (pair), with
    the bootstrap band when there is one.

    Returns
    -------
    Axes
    """
    ax = _axes(ax)
    eff = _pick(a.effect, a.multi_output, a.output_names, output)
    lo = _pick(a.lower, a.multi_output, a.output_names, output)
    hi = _pick(a.upper, a.multi_output, a.output_names, output)
    if a.is_pair:
        _surface(ax, *a.grid, eff, (False, False), a.feature)
        ax.set_title("second-order ALE of " + _ylabel(a, output), **_TEXT)
        return ax
    if a.categorical:
        x = np.arange(len(a.grid))
        ax.bar(x, eff, color=BLUE, alpha=0.8, label="ale")
        if lo is not None:
            ax.errorbar(x, eff, yerr=[eff - lo, hi - eff], fmt="none", ecolor="k", capsize=3)
        ax.set_xticks(x, labels=[str(v) for v in a.grid], **_TEXT)
    else:
        x = np.asarray(a.grid, dtype=float)
        if lo is not None:
            ax.fill_between(x, lo, hi, color=BLUE, alpha=0.2, label=f"{a.confidence:.0%} band")
        ax.plot(x, eff, color=BLUE, linewidth=2.0, marker=".", label="ale")
        if rug and a.feature_values is not None:
            _rug(ax, a.feature_values)
    ax.axhline(0.0, color=GREY, linewidth=0.6)
    ax.set_xlabel(str(a.feature), **_TEXT)
    ax.set_ylabel("ALE of " + _ylabel(a, output), **_TEXT)
    return ax


# ------------------------------------------------------------------ importance
def plot_importance(
    imp: Any, ax: Axes | None = None, *, max_display: int = 10, output: Any = None
) -> Axes:
    """Horizontal bars of the largest importances, largest on top, with error bars
    (``lower``/``upper`` when known, else ``importances_std``).

    Returns
    -------
    Axes
    """
    if isinstance(max_display, bool) or not isinstance(max_display, numbers.Integral):
        raise InvalidParameterError(f"max_display must be a positive int, got {max_display!r}.")
    if max_display < 1:
        raise InvalidParameterError(f"max_display must be at least 1, got {max_display}.")
    names = list(imp.output_names or [])
    mean = _pick(imp.importances_mean, imp.multi_output, names, output)
    std = _pick(imp.importances_std, imp.multi_output, names, output)
    lo = _pick(imp.lower, imp.multi_output, names, output)
    hi = _pick(imp.upper, imp.multi_output, names, output)
    order = np.argsort(-mean, kind="stable")[: int(max_display)]
    ax = _axes(ax, (6.0, 0.4 * len(order) + 1.2))
    y = np.arange(len(order))[::-1]
    if lo is not None:
        err = np.vstack([mean[order] - lo[order], hi[order] - mean[order]])
    else:
        err = std[order]
    ax.barh(y, mean[order], xerr=err, color=BLUE, ecolor="k", capsize=3)
    ax.set_yticks(y, labels=[str(imp.feature_names[i]) for i in order], **_TEXT)
    what = "permutation importance" if imp.method == "permutation" else "mean |attribution|"
    if imp.scoring:
        what += f" ({imp.scoring})"
    ax.set_xlabel(what, **_TEXT)
    ax.axvline(0.0, color=GREY, linewidth=0.6)
    return ax
