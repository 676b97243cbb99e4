"""Row-level plots of tabular Explanations: ``heatmap`` (rows x features) and ``force``.

``heatmap`` shows every explained row at once, as shap's heatmap plot does: one column per
row, one line per feature, coloured by the attribution, with the model output above and the
global importance on the right. ``force`` is the additive push/pull bar of one row, from the
base value to the prediction (Lundberg et al. 2018).

Both take an Explanation first and return the matplotlib ``Axes`` they drew on; they are also
``exp.plot.heatmap()`` and ``exp.plot.force(i)``. All user strings are drawn literally
(mathtext and TeX off).

References
----------
Lundberg, S. M., Nair, B., Vavilala, M. S., et al. (2018). Explainable machine-learning
predictions for the prevention of hypoxaemia during surgery. *Nature Biomedical
Engineering* 2, 749-760.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.patches import Rectangle

from ..errors import InvalidParameterError
from .plots import (
    _TEXT,
    BLUE,
    RED,
    _check_max_display,
    _fmt_data,
    _new_axes,
    _other_label,
    _prepare,
    _sample_rows,
    _set_yticklabels,
    _split,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..explanation import Explanation

__all__ = ["DIVERGING", "HEATMAP_MAX_ROWS", "force", "heatmap", "row_order"]

#: the heatmap draws at most this many rows (columns) by default: hierarchical clustering
#: with optimal leaf ordering grows with the cube of the rows (500 rows 0.2 s, 1,000 1.6 s,
#: 2,000 12 s), so beyond it a seeded random sample of rows is clustered and drawn
HEATMAP_MAX_ROWS = 500

#: Negative attributions blue, zero white, positive red.
DIVERGING = LinearSegmentedColormap.from_list("whybox_diverging", [BLUE, "#ffffff", RED])

_ORDERS = ("hclust", "output", "none")


# ---------------------------------------------------------------------- heatmap
def row_order(values: np.ndarray, instance_order: Any = "hclust") -> np.ndarray:
    """The column order of the heatmap's rows.

    Parameters
    ----------
    values : ndarray of shape (n, p)
        Attributions.
    instance_order : {"hclust", "output", "none"} or array of shape (n,)
        ``"hclust"``: leaf order of an average-linkage hierarchical clustering of the rows'
        attributions (Euclidean distance, optimal leaf ordering), so rows explained alike sit
        together; ``"output"``: by ``values.sum(1)`` ascending (stable); ``"none"``: as given;
        or an explicit permutation of ``range(n)``.

    Returns
    -------
    ndarray of shape (n,)
        Row indices in plotting order.
    """
    n = values.shape[0]
    if isinstance(instance_order, str):
        if instance_order not in _ORDERS:
            raise InvalidParameterError(
                f"instance_order must be one of {list(_ORDERS)} or a permutation of the row "
                f"indices, got {instance_order!r}."
            )
        if instance_order == "none" or n < 3:
            return np.arange(n)
        if instance_order == "output":
            return np.argsort(values.sum(axis=1), kind="stable")
        from scipy.cluster.hierarchy import leaves_list, linkage

        return leaves_list(linkage(values, method="average", optimal_ordering=True))
    order = np.asarray(instance_order)
    if (
        order.ndim != 1
        or order.shape[0] != n
        or not np.issubdtype(order.dtype, np.integer)
        or not np.array_equal(np.sort(order), np.arange(n))
    ):
        raise InvalidParameterError(
            f"instance_order must be one of {list(_ORDERS)} or a permutation of the {n} row "
            f"indices 0..{n - 1} (each once), got an array of shape {order.shape}."
        )
    return order.astype(int)


def heatmap(
    exp: Explanation,
    *,
    max_display: int = 10,
    instance_order: Any = "hclust",
    ax: Axes | None = None,
    output: str | int | None = None,
    max_rows: int | None = HEATMAP_MAX_ROWS,
    random_state: int = 0,
) -> Axes:
    """Heatmap of attributions: one column per row, one line per feature.

    Features are ordered by mean ``|value|``, largest at the top; when there are more than
    ``max_display`` features, the last line, ``"Sum of N other features"``, holds each row's
    sum over the rest. Cells are coloured blue (negative) through white to red (positive) on
    a scale symmetric about zero whose limit is the 99.5th percentile of ``|value|`` over the
    drawn cells. Above the heatmap a line shows each row's output
    ``f(x) = base_value + sum(values)``; on the right, bars show the mean ``|value|`` of each
    line.

    Parameters
    ----------
    exp : Explanation
        A tabular Explanation.
    max_display : int, default 10
        Most feature lines (including the "other features" line).
    instance_order : {"hclust", "output", "none"} or array, default "hclust"
        Order of the rows (columns of the heatmap): ``"hclust"`` the leaf order of an
        average-linkage hierarchical clustering of the rows' attributions (rows explained
        alike sit together), ``"output"`` by output ascending, ``"none"`` as given, or an
        explicit permutation of ``range(n)``.
    ax : matplotlib Axes, optional
        Axes to draw on; a new figure is created when None.
    output : str or int, optional
        Output to plot when ``exp`` explains several outputs (required then).
    max_rows : int or None, default 500
        Most rows drawn: with more, a random sample of
        ``max_rows`` rows (seeded by ``random_state``) is ordered and drawn, and the x label
        says so; the feature order still comes from every row. None draws (and clusters)
        every row: ``"hclust"`` then costs O(n^3).
    random_state : int, default 0
        Seed of the row sample.

    Returns
    -------
    matplotlib.axes.Axes
        The heatmap is ``ax.images[0]`` (array of shape (lines, n), in plotting order); the
        output line and the importance bars are ``ax.child_axes[0]`` and ``[1]``, the colour
        bar ``ax.child_axes[2]``.

    Raises
    ------
    InvalidParameterError
        If ``exp`` is not a tabular Explanation, explains several outputs and ``output`` is
        not given, or for a bad ``max_display``.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> X, y = wb.zoo.diabetes()
    >>> model = LinearRegression().fit(X, y)
    >>> exp = wb.explain(model, X.iloc[:20], background=X.iloc[:50])
    >>> ax = wb.viz.heatmap(exp, max_display=5)
    >>> ax.images[0].get_array().shape  # 5 feature lines x 20 rows
    (5, 20)
    """
    exp = _prepare(exp, output, "heatmap")
    max_display = _check_max_display(max_display)
    names = list(exp.feature_names)
    importance = exp.mean_abs().to_numpy(dtype=float)  # from every row
    if not isinstance(instance_order, str) and max_rows is not None and exp.n_rows > max_rows:
        max_rows = None  # an explicit order of every row: draw them all
    exp, note = _sample_rows(exp, max_rows, random_state)
    values = np.asarray(exp.values, dtype=float)
    n = values.shape[0]
    cols = row_order(values, instance_order)
    feat = np.argsort(-importance, kind="stable")
    shown, rest = _split(feat, max_display)
    lines = [values[:, j] for j in shown]
    labels = [names[j] for j in shown]
    if len(rest):
        lines.append(values[:, rest].sum(axis=1))
        labels.append(_other_label(len(rest)))
    matrix = np.vstack(lines)[:, cols]
    finite = np.abs(matrix[np.isfinite(matrix)])
    vmax = float(np.percentile(finite, 99.5)) if finite.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    k = len(labels)

    ax = _new_axes(ax, height=0.4 * k + 2.0)
    image = ax.imshow(
        matrix,
        aspect="auto",
        cmap=DIVERGING,
        vmin=-vmax,
        vmax=vmax,
        interpolation="nearest",
        extent=(-0.5, n - 0.5, k - 0.5, -0.5),
    )
    _set_yticklabels(ax, np.arange(k, dtype=float), labels)
    ax.set_xlabel(
        ("rows" if not note else note)
        + (
            f" (ordered by {instance_order})"
            if isinstance(instance_order, str) and instance_order != "none"
            else ""
        )
    )
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)

    fx = np.asarray(exp.base_values, dtype=float).reshape(-1)[cols] + matrix.sum(axis=0)
    top = ax.inset_axes((0.0, 1.03, 1.0, 0.22))
    top.plot(np.arange(n), fx, color="#333333", linewidth=1.2)
    top.set_xlim(-0.5, n - 0.5)
    top.set_xticks([])
    top.set_ylabel("f(x)", rotation=0, ha="right", va="center")
    for side in ("top", "right", "bottom"):
        top.spines[side].set_visible(False)

    side_ax = ax.inset_axes((1.02, 0.0, 0.14, 1.0))
    side_ax.barh(np.arange(k), np.abs(np.vstack(lines)).mean(axis=1), height=0.6, color="#333333")
    side_ax.set_ylim(k - 0.5, -0.5)
    side_ax.set_yticks([])
    side_ax.tick_params(axis="x", labelsize=7)
    side_ax.set_xlabel("mean |value|", fontsize=8)
    for side in ("top", "right", "left"):
        side_ax.spines[side].set_visible(False)

    cax = ax.inset_axes((1.2, 0.0, 0.025, 1.0))
    cb = ax.figure.colorbar(image, cax=cax)
    cb.set_label("attribution")
    cb.outline.set_visible(False)
    return ax


# ---------------------------------------------------------------------- force
def force(
    exp: Explanation,
    i: int = 0,
    *,
    max_display: int = 6,
    ax: Axes | None = None,
    output: str | int | None = None,
    show_data: bool = True,
) -> Axes:
    """Force plot of one row: the additive push and pull from the base value to f(x).

    One horizontal bar of segments, one per feature with a non-zero attribution. Positive
    attributions (red) are laid end to end to the left of ``f(x) = base + sum(values)``, the
    largest next to f(x); negative ones (blue) to its right, the largest next to f(x). The red
    segments therefore span ``[base + sum(neg), f(x)]`` and the blue ones
    ``[f(x), base + sum(pos)]``, and the base value lies where the two pushes balance. The
    ``max_display`` largest segments are labelled (``name = value`` when data is available)
    below the bar.

    Parameters
    ----------
    exp : Explanation
        A tabular Explanation.
    i : int, default 0
        Row to plot (negative indices count from the end).
    max_display : int, default 6
        Most segments labelled with their feature name.
    ax : matplotlib Axes, optional
        Axes to draw on; a new figure is created when None.
    output : str or int, optional
        Output to plot when ``exp`` explains several outputs (required then).
    show_data : bool, default True
        Label features as ``"name = value"`` when ``exp.data`` is available.

    Returns
    -------
    matplotlib.axes.Axes
        The segments are ``ax.patches`` (red first, from f(x) leftwards, then blue).

    Raises
    ------
    InvalidParameterError
        If ``exp`` is not a tabular Explanation, explains several outputs and ``output`` is
        not given, for a bad ``max_display`` or a row ``i`` out of range.

    References
    ----------
    Lundberg et al. (2018), Nature Biomedical Engineering 2, 749-760 (figure 2).

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> X, y = wb.zoo.diabetes()
    >>> model = LinearRegression().fit(X, y)
    >>> exp = wb.explain(model, X.iloc[:20], background=X.iloc[:50])
    >>> ax = wb.viz.force(exp, 0)
    >>> n_nonzero = int((exp.values[0] != 0).sum())
    >>> len(ax.patches) == n_nonzero  # one segment per feature with a non-zero value
    True
    """
    exp = _prepare(exp, output, "force")
    max_display = _check_max_display(max_display)
    n = exp.n_rows
    if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not -n <= i < n:
        raise InvalidParameterError(
            f"i must be a row index in [{-n}, {n}) for this Explanation of {n} rows, got {i!r}."
        )
    i = int(i) % n
    names = list(exp.feature_names)
    vals = exp.row_values(i).astype(float)
    base = float(np.asarray(exp.base_values, dtype=float).reshape(-1)[i])
    fx = base + float(vals.sum())
    row = exp.row_data(i) if show_data else None

    pos = [int(j) for j in np.argsort(-vals, kind="stable") if vals[j] > 0]
    neg = [int(j) for j in np.argsort(vals, kind="stable") if vals[j] < 0]
    segments: list[tuple[int, float, float]] = []  # (feature, left, width)
    cursor = fx
    for j in pos:
        cursor -= vals[j]
        segments.append((j, cursor, float(vals[j])))
    cursor = fx
    for j in neg:
        segments.append((j, cursor, float(-vals[j])))
        cursor -= vals[j]
    lo = min([fx, base] + [s[1] for s in segments])
    hi = max([fx, base] + [s[1] + s[2] for s in segments])
    span = (hi - lo) or max(abs(fx), 1.0)

    ax = _new_axes(ax, height=2.6, width=10.0)
    for j, left, width in segments:
        ax.add_patch(
            Rectangle(
                (left, 0.0),
                width,
                1.0,
                facecolor=RED if vals[j] > 0 else BLUE,
                edgecolor="#ffffff",
                linewidth=1.0,
            )
        )
    labelled = sorted(segments, key=lambda s: -s[2])[:max_display]
    labelled = sorted(labelled, key=lambda s: s[1])
    for rank, (j, left, width) in enumerate(labelled):
        text = names[j] if row is None else f"{names[j]} = {_fmt_data(row[j])}"
        ax.text(
            left + width / 2,
            -0.25 - 0.45 * (rank % 2),
            text,
            ha="center",
            va="top",
            fontsize=8,
            color=RED if vals[j] > 0 else BLUE,
            **_TEXT,
        )
    ax.plot([fx, fx], [-0.1, 1.35], color="#333333", linewidth=1.2)
    ax.text(fx, 1.4, f"f(x) = {fx:.4g}", ha="center", va="bottom", fontsize=10, weight="bold")
    ax.plot([base, base], [1.0, 1.35], color="#999999", linewidth=1.0, linestyle="--")
    ax.text(base, 1.4, f"base value = {base:.4g}", ha="center", va="bottom", fontsize=8)
    ax.text(lo, 2.05, "higher \u2192", color=RED, ha="left", va="bottom", fontsize=8)
    ax.text(hi, 2.05, "\u2190 lower", color=BLUE, ha="right", va="bottom", fontsize=8)
    ax.set_xlim(lo - 0.04 * span, hi + 0.04 * span)
    ax.set_ylim(-1.3, 2.4)
    ax.set_yticks([])
    ax.set_xlabel("model output")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    return ax
