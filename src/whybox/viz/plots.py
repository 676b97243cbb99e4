"""Matplotlib plots of tabular :class:`~whybox.explanation.Explanation` objects.

Every function takes an Explanation first and returns the matplotlib ``Axes`` it drew on.
Pass ``ax=`` to draw into an existing Axes; otherwise a new figure is created. The backend
is never changed here.

With several explained outputs (``exp.multi_output``) pick one with ``output=`` (a name from
``exp.output_names`` or an index); the plots show one output at a time.

Feature names are arbitrary user strings: all text is drawn with mathtext and TeX disabled,
so a ``$`` or ``<script>`` in a name is shown literally.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LinearSegmentedColormap, Normalize, to_rgba

from ..errors import InvalidInputError, InvalidParameterError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..explanation import Explanation

__all__ = ["bar", "beeswarm", "scatter", "waterfall"]

#: shap's colours for positive (pushes the output up) and negative contributions.
RED = "#ff0051"
BLUE = "#008bfb"
GREY = "#777777"
#: Low feature values blue, high values red.
CMAP = LinearSegmentedColormap.from_list("whybox_blue_red", [BLUE, RED]).with_extremes(bad=GREY)

# Text properties for every label built from user strings: show them literally.
_TEXT: dict[str, Any] = {"parse_math": False, "usetex": False}


# ---------------------------------------------------------------------- helpers
def _prepare(exp: Explanation, output: str | int | None, what: str) -> Explanation:
    """Check that ``exp`` is tabular and reduce it to a single output."""
    if not exp.is_tabular:
        shape = "ragged" if exp.is_ragged else f"of feature shape {exp.feature_shape}"
        raise InvalidParameterError(
            f"{what}() needs a tabular Explanation (values of shape (n, p) or (n, p, k): one "
            f"flat feature axis, the same features in every row); this one is {shape}. "
            "Explain tabular inputs, or reshape values to one column per feature first."
        )
    if exp.multi_output:
        names = list(exp.output_names or [])
        if output is None:
            if exp.n_outputs == 1:
                return exp[:, :, 0]
            raise InvalidParameterError(
                f"this Explanation explains {exp.n_outputs} outputs {names}, and {what}() "
                "plots one output at a time. Pass output=<name or index>, e.g. "
                f"output={names[0]!r}."
            )
        return exp[:, :, output]
    if output is not None:
        names = list(exp.output_names or [])
        ok = (isinstance(output, str) and output in names) or (
            isinstance(output, numbers.Integral)
            and not isinstance(output, bool)
            and int(output) in (0, -1)
        )
        if not ok:
            raise InvalidParameterError(
                f"output={output!r} does not match this Explanation, which explains a single "
                f"output{f' ({names[0]!r})' if names else ''}. Leave output=None."
            )
    return exp


#: plots of one dot (or column) per row draw at most this many rows by default: beyond it a
#: seeded random sample of rows is drawn and the axis label says so (cost O(n) in the rows)
MAX_ROWS = 5000


def _sample_rows(exp: Explanation, max_rows: Any, random_state: Any = 0) -> tuple[Any, str]:
    """``exp`` itself, or a seeded random sample of ``max_rows`` of its rows (in row order),
    with the note the plot shows (empty when every row is drawn)."""
    if max_rows is None:
        return exp, ""
    if isinstance(max_rows, bool) or not isinstance(max_rows, numbers.Integral) or max_rows < 1:
        raise InvalidParameterError(
            f"max_rows must be a positive integer (rows drawn) or None (every row), got "
            f"{max_rows!r}."
        )
    n = exp.n_rows
    if n <= max_rows:
        return exp, ""
    rng = np.random.default_rng(random_state)
    keep = np.sort(rng.choice(n, size=int(max_rows), replace=False))
    return exp[keep], f"a random sample of {int(max_rows):,} of {n:,} rows"


def _check_max_display(max_display: Any) -> int:
    if (
        isinstance(max_display, bool)
        or not isinstance(max_display, numbers.Integral)
        or max_display < 1
    ):
        raise InvalidParameterError(f"max_display must be a positive integer, got {max_display!r}.")
    return int(max_display)


def _split(order: np.ndarray, max_display: int) -> tuple[np.ndarray, np.ndarray]:
    """Shown features and the remainder, shap-style.

    All features are shown when there are at most ``max_display``; otherwise the first
    ``max_display - 1`` are shown and the rest are summed into one extra entry.
    """
    if len(order) <= max_display:
        return order, order[:0]
    return order[: max_display - 1], order[max_display - 1 :]


def _new_axes(ax: Axes | None, height: float, width: float = 8.0) -> Axes:
    if ax is not None:
        return ax
    _, new_ax = plt.subplots(figsize=(width, height))
    return new_ax


def _set_yticklabels(ax: Axes, positions: np.ndarray, labels: list[str]) -> None:
    ax.set_yticks(positions, labels=labels, **_TEXT)


def _resolve_feature(exp: Explanation, feature: Any, param: str) -> int:
    names = list(exp.feature_names)
    p = len(names)
    if isinstance(feature, str):
        if feature not in names:
            raise InvalidParameterError(
                f"{param}={feature!r} is not a feature of this Explanation. Known features: "
                f"{names}."
            )
        return names.index(feature)
    if isinstance(feature, numbers.Integral) and not isinstance(feature, bool):
        if not -p <= feature < p:
            raise InvalidParameterError(
                f"{param}={feature} is out of range for {p} features; pass a name or an "
                f"index in [{-p}, {p})."
            )
        return int(feature) % p
    raise InvalidParameterError(
        f"{param} must be a feature name (str) or index (int), got {feature!r}."
    )


def _column(exp: Explanation, j: int) -> pd.Series:
    """Data column ``j`` of ``exp`` as a Series (data must not be None)."""
    data = exp.data
    p = len(exp.feature_names)
    if isinstance(data, pd.DataFrame):
        if data.shape != (exp.n_rows, p):
            raise InvalidInputError(
                f"exp.data has shape {data.shape} but the values have {exp.n_rows} rows and "
                f"{p} features; data must be row- and column-aligned with the values."
            )
        return data.iloc[:, j].reset_index(drop=True)
    arr = np.asarray(data)
    if arr.ndim != 2 or arr.shape != (exp.n_rows, p):
        raise InvalidInputError(
            f"exp.data has shape {arr.shape} but the values have {exp.n_rows} rows and "
            f"{p} features; data must be an array of shape ({exp.n_rows}, {p})."
        )
    return pd.Series(arr[:, j])


def _encode(col: pd.Series) -> tuple[np.ndarray, list[str] | None]:
    """Numbers for a data column: ``(floats with NaN for missing, category labels or None)``.

    Numeric columns are returned as floats with ``None`` categories. Categorical, boolean and
    string columns become category codes ``0..c-1`` (pandas categories keep their order,
    strings are sorted) with the category labels.
    """
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        codes = col.cat.codes.to_numpy().astype(float)
        codes[codes < 0] = np.nan
        return codes, [str(c) for c in col.cat.categories]
    if pd.api.types.is_bool_dtype(dtype):
        isna = col.isna().to_numpy()
        vals = np.where(isna, np.nan, col.fillna(False).to_numpy(dtype=bool).astype(float))
        return vals.astype(float), ["False", "True"]
    if pd.api.types.is_numeric_dtype(dtype):
        return col.to_numpy(dtype=float, na_value=np.nan), None
    if pd.api.types.is_object_dtype(dtype):
        nonnull = col.dropna()
        if all(
            isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in nonnull
        ):
            return pd.to_numeric(col).to_numpy(dtype=float, na_value=np.nan), None
    try:
        codes, uniques = pd.factorize(col, sort=True)
    except TypeError:  # mixed types that cannot be sorted
        codes, uniques = pd.factorize(col, sort=False)
    out = codes.astype(float)
    out[codes < 0] = np.nan
    return out, [str(u) for u in uniques]


def _normalise(vals: np.ndarray, categories: list[str] | None) -> np.ndarray:
    """Map an encoded column to [0, 1] for colouring (NaN stays NaN).

    Categories: ``code / (c - 1)``. Numbers: clipped between the 5th and 95th percentiles
    (shap's choice, so that a few outliers do not wash out the colours), falling back to
    min/max when those coincide; a constant column maps to 0.5.
    """
    out = np.full(vals.shape, np.nan)
    ok = ~np.isnan(vals)
    if not ok.any():
        return out
    if categories is not None:
        c = len(categories)
        out[ok] = vals[ok] / (c - 1) if c > 1 else 0.5
        return out
    lo, hi = np.nanpercentile(vals, [5, 95])
    if hi <= lo:
        lo, hi = np.nanmin(vals), np.nanmax(vals)
    if hi <= lo:
        out[ok] = 0.5
        return out
    out[ok] = np.clip((vals[ok] - lo) / (hi - lo), 0.0, 1.0)
    return out


def _fmt_data(v: Any) -> str:
    """A data value for a label: floats with 4 significant digits, missing values (None,
    NaN, NA) as ``"NA"``, others as ``str``."""
    if v is None:
        return "NA"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, numbers.Real):
        return "NA" if np.isnan(float(v)) else f"{float(v):.4g}"
    try:
        if pd.isna(v):
            return "NA"
    except (TypeError, ValueError):
        pass
    return str(v)


def _fmt_signed(v: float) -> str:
    return f"{v:+.4g}"


def _other_label(n: int) -> str:
    return f"Sum of {n} other feature{'s' if n != 1 else ''}"


# ---------------------------------------------------------------------- bar
def bar(
    exp: Explanation,
    *,
    max_display: int = 10,
    ax: Axes | None = None,
    output: str | int | None = None,
    title: str | None = None,
) -> Axes:
    """Bar plot of feature importance.

    With several rows: horizontal bars of the mean absolute attribution
    (``exp.mean_abs()``) of the most important features, largest at the top. With a single
    row: that row's signed attributions, sorted by magnitude, red for positive and blue for
    negative. When there are more than ``max_display`` features, the ``max_display - 1``
    most important are shown and the last bar, ``"Sum of N other features"``, holds the sum
    of the rest (as in shap).

    Error bars are drawn when ``exp.std`` is set: ``1.96 * se``, a 95% interval. For a
    single row ``se = std`` of each attribution. For several rows ``se`` is the standard
    error of the mean absolute value approximated from the estimation errors only,
    ``se_j = sqrt(mean_i(std_ij ** 2)) / sqrt(n_rows)`` (``|.|`` changes no standard
    error by more than the std itself, and rows are treated as independent). For the
    "other features" bar the errors of the summed features are added in quadrature.

    Parameters
    ----------
    exp : Explanation
        A tabular Explanation.
    max_display : int, default 10
        Most bars to draw (including the "other features" bar).
    ax : matplotlib Axes, optional
        Axes to draw on; a new figure is created when None.
    output : str or int, optional
        Output to plot when ``exp`` explains several outputs (required then).
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.axes.Axes

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
    >>> ax = wb.viz.bar(exp, max_display=5)
    >>> [label.get_text() for label in ax.get_yticklabels()]  # largest mean |value| first
    ['s5', 's1', 's2', 'bmi', 'Sum of 6 other features']
    """
    exp = _prepare(exp, output, "bar")
    max_display = _check_max_display(max_display)
    names = list(exp.feature_names)
    values = np.asarray(exp.values, dtype=float)
    std = None if exp.std is None else np.asarray(exp.std, dtype=float)
    single = exp.n_rows == 1

    if single:
        heights = values[0]
        errs = None if std is None else std[0]
        order = np.argsort(-np.abs(heights), kind="stable")
    else:
        heights = exp.mean_abs().to_numpy(dtype=float)
        errs = None if std is None else np.sqrt(np.mean(std**2, axis=0)) / math.sqrt(exp.n_rows)
        order = np.argsort(-heights, kind="stable")
    shown, rest = _split(order, max_display)
    bar_vals = [float(heights[j]) for j in shown]
    labels = [names[j] for j in shown]
    bar_errs = None if errs is None else [1.96 * float(errs[j]) for j in shown]
    if len(rest):
        bar_vals.append(float(heights[rest].sum()))
        labels.append(_other_label(len(rest)))
        if bar_errs is not None and errs is not None:
            bar_errs.append(1.96 * float(np.sqrt(np.sum(errs[rest] ** 2))))

    k = len(bar_vals)
    ax = _new_axes(ax, height=0.5 * k + 1.5)
    y = np.arange(k)[::-1].astype(float)  # first bar at the top
    colors = [RED if v >= 0 else BLUE for v in bar_vals] if single else [RED] * k
    ax.barh(
        y,
        bar_vals,
        height=0.7,
        color=colors,
        xerr=bar_errs,
        error_kw={"ecolor": "#333333", "capsize": 3, "linewidth": 1},
    )
    span = max((abs(v) for v in bar_vals), default=1.0) or 1.0
    offsets = bar_errs if bar_errs is not None else [0.0] * k
    for yy, v, e in zip(y, bar_vals, offsets, strict=True):
        gap = e + 0.01 * span  # put the number past the error bar
        ax.text(
            v + (gap if v >= 0 else -gap),
            yy,
            _fmt_signed(v) if single else f"{v:.4g}",
            ha="left" if v >= 0 else "right",
            va="center",
            fontsize=9,
            color=RED if (not single or v >= 0) else BLUE,
            **_TEXT,
        )
    lo = min([0.0] + [v - e for v, e in zip(bar_vals, offsets, strict=True)])
    hi = max([0.0] + [v + e for v, e in zip(bar_vals, offsets, strict=True)])
    pad = 0.15 * ((hi - lo) or 1.0)
    ax.set_xlim(lo - (pad if lo < 0 else 0.0), hi + (pad if hi > 0 else 0.0))
    _set_yticklabels(ax, y, labels)
    ax.axvline(0.0, color="#999999", linewidth=0.8)
    ax.set_ylim(-0.6, k - 0.4)
    ax.set_xlabel("attribution" if single else "mean(|attribution|)")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if title is not None:
        ax.set_title(str(title), **_TEXT)
    return ax


# ---------------------------------------------------------------------- waterfall
def waterfall(
    exp: Explanation,
    i: int = 0,
    *,
    max_display: int = 10,
    ax: Axes | None = None,
    output: str | int | None = None,
    show_data: bool = True,
) -> Axes:
    """Waterfall plot of one row: how each feature moves the output from E[f(X)] to f(x).

    The bottom of the plot starts at ``base_values[i]`` (E[f(X)]); each bar adds one
    feature's attribution, with the features sorted by ``|value|`` so the largest is at the
    top; the top bar ends at ``f(x) = base_values[i] + values[i].sum()``. When there are more
    than ``max_display`` features, the smallest are summed into one ``"N other features"``
    bar at the bottom. Positive contributions are red, negative ones blue (shap's colours).

    Parameters
    ----------
    exp : Explanation
        A tabular Explanation.
    i : int, default 0
        Row to plot (negative indices count from the end).
    max_display : int, default 10
        Most bars to draw (including the "other features" bar).
    ax : matplotlib Axes, optional
        Axes to draw on; a new figure is created when None.
    output : str or int, optional
        Output to plot when ``exp`` explains several outputs (required then).
    show_data : bool, default True
        Label features as ``"name = value"`` with the row's data (floats to 4 significant
        digits) when ``exp.data`` is available.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    InvalidParameterError
        If ``exp`` is not a tabular Explanation, explains several outputs and ``output`` is
        not given, for a bad ``max_display`` or a row ``i`` out of range.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> X, y = wb.zoo.diabetes()
    >>> model = LinearRegression().fit(X, y)
    >>> exp = wb.explain(model, X.iloc[:20], background=X.iloc[:50])
    >>> ax = wb.viz.waterfall(exp, 0, max_display=5)
    >>> len(ax.patches)  # the 4 largest features and one bar for the 6 others
    5
    """
    exp = _prepare(exp, output, "waterfall")
    max_display = _check_max_display(max_display)
    n = exp.n_rows
    if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not -n <= i < n:
        raise InvalidParameterError(
            f"i must be a row index in [{-n}, {n}) for this Explanation of {n} rows, got {i!r}."
        )
    i = int(i) % n
    names = list(exp.feature_names)
    vals = exp.row_values(i).astype(float)
    base = float(exp.base_values[i])
    fx = base + float(vals.sum())
    row = exp.row_data(i) if show_data else None

    order = np.argsort(-np.abs(vals), kind="stable")
    shown, rest = _split(order, max_display)
    # bottom-up: the "other features" bar first, then shown features smallest to largest.
    bar_vals: list[float] = []
    labels: list[str] = []
    if len(rest):
        bar_vals.append(float(vals[rest].sum()))
        labels.append(f"{len(rest)} other feature{'s' if len(rest) != 1 else ''}")
    for j in shown[::-1]:
        bar_vals.append(float(vals[j]))
        labels.append(names[j] if row is None else f"{names[j]} = {_fmt_data(row[j])}")

    k = len(bar_vals)
    ax = _new_axes(ax, height=0.5 * k + 2.0)
    starts = base + np.concatenate([[0.0], np.cumsum(bar_vals)[:-1]])
    y = np.arange(k, dtype=float)
    colors = [RED if v >= 0 else BLUE for v in bar_vals]
    ax.barh(y, bar_vals, left=starts, height=0.6, color=colors)
    ends = starts + np.asarray(bar_vals)
    lo = float(min(base, fx, starts.min(), ends.min()))
    hi = float(max(base, fx, starts.max(), ends.max()))
    span = (hi - lo) or max(abs(hi), 1.0)
    for yy, s, v in zip(y, starts, bar_vals, strict=True):
        end = s + v
        right = v >= 0
        ax.text(
            end + (0.01 * span if right else -0.01 * span),
            yy,
            _fmt_signed(v),
            ha="left" if right else "right",
            va="center",
            fontsize=9,
            color=RED if right else BLUE,
            **_TEXT,
        )
    # thin connectors between consecutive bars
    for yy, end in zip(y[:-1], ends[:-1], strict=True):
        ax.plot([end, end], [yy + 0.3, yy + 0.7], color="#bbbbbb", linewidth=0.8)
    ax.axvline(base, color="#999999", linestyle="--", linewidth=0.8)
    ax.axvline(fx, color="#999999", linestyle="--", linewidth=0.8)
    ax.text(base, -0.75, f"E[f(X)] = {base:.4g}", ha="center", va="top", fontsize=9, **_TEXT)
    ax.text(fx, k - 0.25, f"f(x) = {fx:.4g}", ha="center", va="bottom", fontsize=9, **_TEXT)
    ax.set_xlim(lo - 0.2 * span, hi + 0.2 * span)
    ax.set_ylim(-1.3, k + 0.35)
    _set_yticklabels(ax, y, labels)
    ax.set_xlabel("model output")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return ax


# ---------------------------------------------------------------------- beeswarm
def _swarm_offsets(x: np.ndarray, nbins: int = 100, half_height: float = 0.4) -> np.ndarray:
    """Deterministic vertical offsets that spread points with similar ``x`` like a beeswarm.

    Points are binned by value into ``nbins`` bins; within a bin they are stacked
    alternately above and below the centre line (0, +1, -1, +2, ...), in order of value.
    Offsets are scaled so the densest bin fills at most 90% of ``half_height``.
    """
    n = len(x)
    if n == 0:
        return np.zeros(0)
    xs = np.nan_to_num(x, nan=0.0)
    lo, hi = float(xs.min()), float(xs.max())
    quant = np.round(nbins * (xs - lo) / (hi - lo + 1e-8)).astype(int)
    order = np.lexsort((xs, quant))
    ys = np.zeros(n)
    layer = 0
    last = None
    for idx in order:
        if quant[idx] != last:
            layer = 0
            last = quant[idx]
        ys[idx] = math.ceil(layer / 2) * (1 if layer % 2 else -1)
        layer += 1
    biggest = float(np.abs(ys).max())
    return ys * (0.9 * half_height / (biggest + 1.0))


def beeswarm(
    exp: Explanation,
    *,
    max_display: int = 10,
    ax: Axes | None = None,
    output: str | int | None = None,
    color_bar: bool = True,
    max_rows: int | None = MAX_ROWS,
    random_state: int = 0,
) -> Axes:
    """Beeswarm summary plot: every row's attribution for every important feature.

    Each feature gets a horizontal line of dots, one per row, at ``x = value``; features are
    ordered by mean ``|value|``, largest at the top. Dots with similar values are spread
    vertically (deterministically, no randomness) so their density shows. Dots are coloured
    by the feature's data value normalised to [0, 1] per feature (low blue, high red):
    numbers are clipped to their 5th-95th percentile range, categorical, boolean and string
    columns are coloured by category code, missing values are grey. Without ``exp.data``
    all dots are grey and no colour bar is drawn. When there are more than ``max_display``
    features, the last line, ``"Sum of N other features"``, shows each row's sum over the
    remaining features (grey).

    Parameters
    ----------
    exp : Explanation
        A tabular Explanation.
    max_display : int, default 10
        Most feature lines to draw (including the "other features" line).
    ax : matplotlib Axes, optional
        Axes to draw on; a new figure is created when None.
    output : str or int, optional
        Output to plot when ``exp`` explains several outputs (required then).
    color_bar : bool, default True
        Draw a "Feature value" colour bar (only when data is available).
    max_rows : int or None, default 5000
        Most rows drawn: with more, a random sample of ``max_rows`` rows (seeded by
        ``random_state``) is drawn and the x label says so; the feature order still comes
        from every row. None draws every row.
    random_state : int, default 0
        Seed of the row sample.

    Returns
    -------
    matplotlib.axes.Axes
        One scatter collection per feature line, top line first, labelled with the feature
        name.

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
    >>> ax = wb.viz.beeswarm(exp, max_display=5)
    >>> [label.get_text() for label in ax.get_yticklabels()]
    ['s5', 's1', 's2', 'bmi', 'Sum of 6 other features']
    """
    exp = _prepare(exp, output, "beeswarm")
    max_display = _check_max_display(max_display)
    names = list(exp.feature_names)
    importance = exp.mean_abs().to_numpy(dtype=float)  # from every row
    exp, note = _sample_rows(exp, max_rows, random_state)
    values = np.asarray(exp.values, dtype=float)
    order = np.argsort(-importance, kind="stable")
    shown, rest = _split(order, max_display)
    has_data = exp.data is not None

    lines: list[tuple[str, np.ndarray, np.ndarray | None]] = []
    for j in shown:
        colour = _normalise(*_encode(_column(exp, int(j)))) if has_data else None
        lines.append((names[j], values[:, j], colour))
    if len(rest):
        lines.append((_other_label(len(rest)), values[:, rest].sum(axis=1), None))

    k = len(lines)
    ax = _new_axes(ax, height=0.4 * k + 1.5)
    grey = np.asarray(to_rgba(GREY))
    for rank, (name, x, colour) in enumerate(lines):
        y0 = k - 1 - rank
        if colour is None:
            rgba = np.tile(grey, (len(x), 1))
        else:
            rgba = CMAP(np.where(np.isnan(colour), 0.0, colour))
            rgba[np.isnan(colour)] = grey
        ax.scatter(
            x,
            y0 + _swarm_offsets(x),
            c=rgba,
            s=16,
            linewidths=0,
            alpha=0.9,
            zorder=3,
            label=name,
        )
    ax.axvline(0.0, color="#999999", linewidth=0.8, zorder=1)
    positions = np.arange(k, dtype=float)[::-1]
    _set_yticklabels(ax, positions, [name for name, _, _ in lines])
    ax.set_ylim(-0.6, k - 0.4)
    ax.set_xlabel("attribution (impact on model output)" + (f"; {note}" if note else ""))
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if color_bar and has_data:
        mappable = ScalarMappable(norm=Normalize(0.0, 1.0), cmap=CMAP)
        cb = ax.figure.colorbar(mappable, ax=ax, ticks=[0.0, 1.0], aspect=40, pad=0.02)
        cb.set_ticklabels(["Low", "High"])
        cb.set_label("Feature value")
        cb.outline.set_visible(False)
    return ax


# ---------------------------------------------------------------------- scatter
def scatter(
    exp: Explanation,
    feature: str | int,
    *,
    ax: Axes | None = None,
    output: str | int | None = None,
    color: str | int | None = None,
    max_rows: int | None = MAX_ROWS,
    random_state: int = 0,
) -> Axes:
    """Dependence plot: a feature's attribution against its value, one dot per row.

    ``x`` is the data value of ``feature`` and ``y`` its attribution. Categorical, boolean
    and string columns are drawn at integer positions ``0..c-1`` (pandas categories in their
    order, strings sorted) with the category labels as tick labels; rows with a missing
    value are not drawn.

    Parameters
    ----------
    exp : Explanation
        A tabular Explanation with data.
    feature : str or int
        Feature name or index.
    ax : matplotlib Axes, optional
        Axes to draw on; a new figure is created when None.
    output : str or int, optional
        Output to plot when ``exp`` explains several outputs (required then).
    color : str or int, optional
        Another feature whose data value colours the dots (low blue, high red; categories by
        code; missing grey), with a colour bar.
    max_rows : int or None, default 5000
        Most rows drawn: with more, a random sample of ``max_rows`` rows (seeded by
        ``random_state``) and the title says so. None draws every row.
    random_state : int, default 0
        Seed of the row sample.

    Returns
    -------
    matplotlib.axes.Axes
        The dots are ``ax.collections[0]``.

    Raises
    ------
    InvalidParameterError
        If ``exp`` is not a tabular Explanation, explains several outputs and ``output`` is
        not given, or ``feature`` (or ``color``) is not one of its features.
    InvalidInputError
        If ``exp`` has no data to plot the values against.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> X, y = wb.zoo.diabetes()
    >>> model = LinearRegression().fit(X, y)
    >>> exp = wb.explain(model, X.iloc[:20], background=X.iloc[:50])
    >>> ax = wb.viz.scatter(exp, "bmi")
    >>> ax.collections[0].get_offsets().shape, ax.get_xlabel()  # one dot per row
    ((20, 2), 'bmi')
    """
    exp = _prepare(exp, output, "scatter")
    if exp.data is None:
        raise InvalidParameterError(
            "scatter() plots attributions against the feature's values, but this "
            "Explanation has no data (exp.data is None). Pass data= when building the "
            "Explanation, or use bar() / beeswarm() instead."
        )
    j = _resolve_feature(exp, feature, "feature")
    name = exp.feature_names[j]
    exp, note = _sample_rows(exp, max_rows, random_state)
    x, cats = _encode(_column(exp, j))
    y = np.asarray(exp.values, dtype=float)[:, j]

    ax = _new_axes(ax, height=4.5, width=6.0)
    if color is None:
        ax.scatter(x, y, s=16, color=BLUE, linewidths=0, alpha=0.9)
    else:
        jc = _resolve_feature(exp, color, "color")
        cname = exp.feature_names[jc]
        cvals, ccats = _encode(_column(exp, jc))
        if ccats is not None:
            vmin, vmax = 0.0, float(max(len(ccats) - 1, 1))
        else:
            finite = cvals[~np.isnan(cvals)]
            if finite.size:
                vmin, vmax = (float(v) for v in np.percentile(finite, [5, 95]))
                if vmax <= vmin:
                    vmin, vmax = float(finite.min()), float(finite.max())
                if vmax <= vmin:
                    vmin, vmax = vmin - 0.5, vmax + 0.5
            else:
                vmin, vmax = 0.0, 1.0
        coll = ax.scatter(
            x, y, c=cvals, cmap=CMAP, vmin=vmin, vmax=vmax, s=16, linewidths=0, alpha=0.9
        )
        cb = ax.figure.colorbar(coll, ax=ax, aspect=40, pad=0.02)
        if ccats is not None and len(ccats) <= 12:
            cb.set_ticks(np.arange(len(ccats), dtype=float))
            cb.set_ticklabels(ccats, **_TEXT)
        cb.set_label(cname, **_TEXT)
        cb.outline.set_visible(False)
    if cats is not None:
        ax.set_xticks(
            np.arange(len(cats), dtype=float),
            labels=cats,
            rotation=45 if len(cats) > 6 or any(len(c) > 10 for c in cats) else 0,
            ha="right" if len(cats) > 6 or any(len(c) > 10 for c in cats) else "center",
            **_TEXT,
        )
        ax.set_xlim(-0.5, len(cats) - 0.5)
    ax.axhline(0.0, color="#999999", linewidth=0.8, zorder=0)
    ax.set_xlabel(name, **_TEXT)
    ax.set_ylabel(f"attribution of {name}", **_TEXT)
    if note:
        ax.set_title(note, fontsize=8, loc="left")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return ax
