"""Image attributions drawn over their images (matplotlib).

* :func:`image` (also ``exp.plot.image(i)``): the heatmap of one explained image over the
  image itself, alpha-blended, with a colorbar and optional segment outlines.
* :func:`compare`: several explanations of the same images side by side, one column per
  method and one row per image.

The heatmap of an image is its attribution summed over the channel axis, shape (h, w). Signed
heatmaps use a diverging colormap centred at 0 (limits ``-m, m`` with ``m`` the largest
``|value|``); non-negative ones (Grad-CAM, absolute saliency) a sequential colormap from 0 to
``m``. The layout of the values is ``exp.params["channels"]`` when the explainer recorded it,
else inferred from the feature shape as for image batches: (c, h, w) when the first axis
alone has 1, 3 or 4 entries, (h, w, c) when the last one does, (h, w) for 2-D features.

Titles and labels are drawn with mathtext and TeX disabled, so user strings are shown
literally.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import LinearSegmentedColormap

from ..errors import InvalidParameterError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..explanation import Explanation

__all__ = ["DIVERGING", "SEQUENTIAL", "compare", "heatmap_of", "image", "segment_boundaries"]

#: signed attributions: blue (lowers the output) - white - red (raises it), as shap's colours
DIVERGING = LinearSegmentedColormap.from_list("whybox_signed", ["#008bfb", "#ffffff", "#ff0051"])
#: non-negative attributions
SEQUENTIAL = "inferno"
_TEXT: dict[str, Any] = {"parse_math": False, "usetex": False}
_COUNTS = (1, 3, 4)


# ---------------------------------------------------------------------- helpers
def _check_image_exp(exp: Explanation, what: str) -> tuple[int, ...]:
    shape = None if exp.is_ragged else exp.feature_shape
    if shape is None or len(shape) not in (2, 3):
        got = "ragged" if shape is None else f"of feature shape {shape}"
        raise InvalidParameterError(
            f"{what}() needs an explanation of images, values of shape (n, c, h, w), "
            f"(n, h, w, c) or (n, h, w); this one is {got}. Use exp.plot.bar() or "
            "exp.plot.heatmap() for tabular explanations."
        )
    return shape


def _layout(exp: Explanation, shape: tuple[int, ...]) -> str:
    recorded = exp.params.get("channels")
    if recorded in ("first", "last", "none"):
        return str(recorded)
    if len(shape) == 2:
        return "none"
    if shape[2] in _COUNTS and shape[0] not in _COUNTS:
        return "last"
    return "first"


def _row(exp: Explanation, i: Any) -> int:
    if isinstance(i, bool) or not isinstance(i, numbers.Integral):
        raise InvalidParameterError(f"i must be a row index (int), got {i!r}.")
    n = exp.n_rows
    if not -n <= int(i) < n:
        raise InvalidParameterError(
            f"row {i} is out of range: this explanation has {n} image(s) (0..{n - 1})."
        )
    return int(i) % n


def _output_index(exp: Explanation, output: Any, what: str) -> int | None:
    names = list(exp.output_names or [])
    if not exp.multi_output:
        if output is not None and output not in (0, -1) and output not in names:
            raise InvalidParameterError(
                f"output={output!r} does not match this explanation, which explains a single "
                "output. Leave output=None."
            )
        return None
    if output is None:
        if exp.n_outputs == 1:
            return 0
        raise InvalidParameterError(
            f"this explanation explains {exp.n_outputs} outputs {names}, and {what}() draws "
            f"one at a time. Pass output=<name or index>, e.g. output={names[0]!r}."
        )
    if isinstance(output, str):
        if output not in names:
            raise InvalidParameterError(f"unknown output {output!r}. Known outputs: {names}.")
        return names.index(output)
    if isinstance(output, numbers.Integral) and -len(names) <= int(output) < len(names):
        return int(output) % len(names)
    raise InvalidParameterError(
        f"output={output!r} is neither an output name nor an index; outputs are {names}."
    )


def heatmap_of(exp: Explanation, i: int = 0, *, output: Any = None) -> np.ndarray:
    """The (h, w) heatmap of image ``i``: its attribution summed over channels."""
    shape = _check_image_exp(exp, "heatmap_of")
    i = _row(exp, i)
    o = _output_index(exp, output, "heatmap_of")
    v = np.asarray(exp.values[i], dtype=float)
    if o is not None:
        v = v[..., o]
    layout = _layout(exp, shape)
    if layout == "first":
        return v.sum(axis=0)
    if layout == "last":
        return v.sum(axis=-1)
    return v


def _display_image(exp: Explanation, i: int, shape: tuple[int, ...]) -> np.ndarray | None:
    """Image ``i`` of ``exp.data`` as (h, w) gray or (h, w, 3) RGB in [0, 1], or None."""
    if exp.data is None:
        return None
    try:
        x = np.asarray(exp.data[i], dtype=float)
    except (TypeError, ValueError):
        return None
    if x.shape != shape:
        return None
    layout = _layout(exp, shape)
    if layout == "first":
        x = np.moveaxis(x, 0, -1)
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[:, :, 0]
    elif x.ndim == 3 and x.shape[2] not in (3, 4):
        x = x.mean(axis=2)  # other channel counts: their mean intensity
    elif x.ndim == 3 and x.shape[2] == 4:
        x = x[:, :, :3]
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:  # normalised inputs (e.g. ImageNet z-scores): rescale to [0, 1]
        x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    return x


def segment_boundaries(segments: np.ndarray) -> np.ndarray:
    """Line segments between pixels of different segments, shape (n_lines, 2, 2).

    Pixel ``(y, x)`` covers ``[x - 0.5, x + 0.5] x [y - 0.5, y + 0.5]`` (imshow's extent);
    each line is ``[[x0, y0], [x1, y1]]`` along one pixel edge.
    """
    seg = np.asarray(segments)
    ys, xs = np.nonzero(seg[:, 1:] != seg[:, :-1])  # vertical edges right of (y, x)
    vert = np.stack(
        [np.stack([xs + 0.5, ys - 0.5], axis=1), np.stack([xs + 0.5, ys + 0.5], axis=1)], axis=1
    )
    ys, xs = np.nonzero(seg[1:, :] != seg[:-1, :])  # horizontal edges below (y, x)
    horiz = np.stack(
        [np.stack([xs - 0.5, ys + 0.5], axis=1), np.stack([xs + 0.5, ys + 0.5], axis=1)], axis=1
    )
    return np.concatenate([vert, horiz]).astype(float)


def _segments_of(exp: Explanation, i: int) -> np.ndarray | None:
    seg = exp.meta.get("segments")
    if seg is None:
        return None
    seg = np.asarray(seg)
    if seg.ndim != 3 or seg.shape[0] != exp.n_rows:  # e.g. a row slice of the explanation
        return None
    return seg[i]


# ---------------------------------------------------------------------- plots
def image(
    exp: Explanation,
    i: int = 0,
    *,
    output: Any = None,
    ax: Axes | None = None,
    alpha: float = 0.6,
    cmap: Any = None,
    signed: bool | None = None,
    outline: bool | None = None,
    colorbar: bool = True,
    show_image: bool = True,
    title: str | None = None,
) -> Axes:
    """Overlay the attribution heatmap of image ``i`` on the image.

    Parameters
    ----------
    exp : Explanation
        Values of shape (n, c, h, w), (n, h, w, c) or (n, h, w) (plus an output axis).
    i : int
        The image.
    output : str or int, optional
        Which output, when several are explained.
    ax : matplotlib Axes, optional
    alpha : float
        Opacity of the heatmap over the image (1: the heatmap alone).
    cmap : colormap, optional
        Default: :data:`DIVERGING` for signed heatmaps, :data:`SEQUENTIAL` otherwise.
    signed : bool, optional
        Force the diverging (True) or sequential (False) scale; default: signed when the
        heatmap has negative entries.
    outline : bool, optional
        Draw the segment boundaries of ``exp.meta["segments"]`` (default: when present).
    colorbar : bool
        Add a colorbar labelled with the explained output.
    show_image : bool
        Draw the image (``exp.data``) under the heatmap.
    title : str, optional
        Default: the method and the prediction.

    Returns
    -------
    matplotlib Axes
        ``ax.images[-1]`` is the heatmap (its array the (h, w) heatmap, its colour limits
        ``(-m, m)`` or ``(0, m)``).
    """
    shape = _check_image_exp(exp, "image")
    i = _row(exp, i)
    if not (isinstance(alpha, numbers.Real) and 0.0 <= float(alpha) <= 1.0):
        raise InvalidParameterError(f"alpha must be a number in [0, 1], got {alpha!r}.")
    heat = heatmap_of(exp, i, output=output)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 3.6))
    is_signed = bool(heat.min() < 0) if signed is None else bool(signed)
    m = float(np.abs(heat).max())
    m = m if m > 0 else 1.0
    vmin, vmax = (-m, m) if is_signed else (0.0, m)
    background = _display_image(exp, i, shape) if show_image else None
    if background is not None:
        ax.imshow(background, cmap="gray" if background.ndim == 2 else None, vmin=0, vmax=1)
    overlay = ax.imshow(
        heat,
        cmap=cmap or (DIVERGING if is_signed else SEQUENTIAL),
        vmin=vmin,
        vmax=vmax,
        alpha=float(alpha) if background is not None else 1.0,
        interpolation="nearest",
    )
    seg = _segments_of(exp, i)
    if outline is None:
        outline = seg is not None
    if outline:
        if seg is None:
            raise InvalidParameterError(
                "outline=True needs the segment maps of exp.meta['segments'] (written by "
                "segment-based explainers for every row); this explanation has none. Explain "
                "with an ImageMasker background to get them, or pass outline=False."
            )
        ax.add_collection(LineCollection(segment_boundaries(seg), colors="k", linewidths=0.8))
    if colorbar:
        cb = ax.figure.colorbar(overlay, ax=ax, fraction=0.046, pad=0.04)
        cb.set_label(str(exp.params.get("output", "attribution")), **_TEXT)
    if title is None:
        title = exp.method or "attribution"
        if exp.predictions is not None:
            pred = np.asarray(exp.predictions[i], dtype=float)
            o = _output_index(exp, output, "image")
            title += f" (output {float(pred if o is None else pred[o]):.3g})"
    ax.set_title(str(title), fontsize=10, **_TEXT)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def compare(
    explanations: Sequence[Explanation] | Mapping[str, Explanation],
    i: int | Sequence[int] = 0,
    *,
    titles: Sequence[str] | None = None,
    output: Any = None,
    alpha: float = 0.6,
    outline: bool = False,
    colorbar: bool = False,
    show_input: bool = True,
    panel_size: float = 2.4,
) -> Figure:
    """Several explanations of the same images side by side.

    Parameters
    ----------
    explanations : list of Explanation, or dict name -> Explanation
        Explanations of the same images (the same rows, the same spatial size).
    i : int or list of int
        The image(s): one row of panels per image.
    titles : list of str, optional
        Column titles (default: the dict keys, else each method's name).
    output : str or int, optional
        Output to draw from multi-output explanations (see :func:`image`).
    alpha, outline, colorbar
        As :func:`image`; each panel is scaled to its own largest ``|value|``.
    show_input : bool
        A first column with the image alone.
    panel_size : float
        Inches per panel.

    Returns
    -------
    matplotlib Figure
        ``fig.axes`` row-major; the heatmap of each method panel is its ``images[-1]``.
    """
    if isinstance(explanations, Mapping):
        names = [str(k) for k in explanations]
        exps = list(explanations.values())
    else:
        exps = list(explanations)
        names = [e.method or f"explanation {k}" for k, e in enumerate(exps)]
    if not exps:
        raise InvalidParameterError("compare() needs at least one explanation.")
    if titles is not None:
        if len(titles) != len(exps):
            raise InvalidParameterError(
                f"got {len(titles)} titles for {len(exps)} explanations; give one per explanation."
            )
        names = [str(t) for t in titles]
    rows = [i] if isinstance(i, numbers.Integral) else list(i)
    if not rows:
        raise InvalidParameterError("i is empty; pass at least one image index.")
    spatial = []
    for k, e in enumerate(exps):
        shape = _check_image_exp(e, "compare")
        layout = _layout(e, shape)
        spatial.append(shape[1:] if layout == "first" else shape[:2])
        for r in rows:
            _row(e, r)
        if spatial[k] != spatial[0]:
            raise InvalidParameterError(
                f"explanation {names[k]!r} has images of size {spatial[k]} but "
                f"{names[0]!r} has {spatial[0]}; compare explanations of the same images."
            )
    n_cols = len(exps) + (1 if show_input else 0)
    fig, axes = plt.subplots(
        len(rows),
        n_cols,
        figsize=(panel_size * n_cols, panel_size * len(rows)),
        squeeze=False,
    )
    with_data = next((e for e in exps if e.data is not None), exps[0])
    for r, row in enumerate(rows):
        col = 0
        if show_input:
            ax = axes[r, 0]
            shape = with_data.feature_shape
            img = _display_image(with_data, _row(with_data, row), shape)
            if img is not None:
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title("input" if r == 0 else "", fontsize=10)
            ax.set_ylabel(f"image {row}", **_TEXT)
            col = 1
        for k, e in enumerate(exps):
            image(
                e,
                row,
                output=output,
                ax=axes[r, col + k],
                alpha=alpha,
                outline=outline and _segments_of(e, _row(e, row)) is not None,
                colorbar=colorbar,
                title=names[k] if r == 0 else "",
            )
    fig.tight_layout()
    return fig
