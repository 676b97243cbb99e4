"""Report sections for model internals: patching heatmaps, logit-lens tables, direct logit
attribution.

Three section builders and one page builder:

- :func:`patching_section`: the grid of an activation / attribution / path patching
  :class:`~whybox.Explanation` (layer x position, layer x head, layer x position x head, or
  one axis) as a heatmap figure and as an HTML table whose cells are shaded by the patched
  metric's distance from the unpatched run's;
- :func:`lens_section`: a :class:`~whybox.internals.lens.LogitLens` as a table of lens
  entries (layers) x positions, each cell the top tokens and their probabilities (and the
  target's rank and probability when there is one);
- :func:`dla_section`: a direct logit attribution as a layer x head heatmap and a table of
  the largest components;
- :func:`internals_report`: a page of any of these (``wb.report(obj)`` calls it for them).

Every token is model output or user text: it reaches the page only through the template's
autoescaping (HTML tables) or as tick labels of an SVG figure whose text is drawn as paths
(no text nodes) and embedded as a base64 ``data:`` URI. Tokens are shown in a visible form
(:func:`show_token`: a leading or trailing space as ``␣``, a newline as ``↵``, other
control characters as ``\\x07``), and matplotlib's mathtext is never triggered by a ``$``.

References
----------
.. [1] Heimersheim & Nanda (2024), "How to use and interpret activation patching",
       arXiv:2404.15255 (layer x position and layer x head grids).
.. [2] nostalgebraist (2020), "interpreting GPT: the logit lens", LessWrong (the table of
       top tokens per layer and position).
.. [3] Elhage et al. (2021), "A Mathematical Framework for Transformer Circuits" (direct
       logit attribution).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InvalidParameterError
from ..explanation import Explanation
from ._page import Report, _fmt, figure_data_uri

__all__ = [
    "PATCHING_METHODS",
    "dla_section",
    "internals_report",
    "is_internals",
    "lens_section",
    "patching_section",
    "position_labels",
    "show_token",
]

#: Explanation methods whose result is a patching grid (``meta["grid_shape"]``)
PATCHING_METHODS = ("activation_patching", "attribution_patching", "path_patching")
#: grids with more cells than this get the figure and a top-cells table, not a full table
MAX_TABLE_CELLS = 600
#: positive and negative shades (the report's --pos / --neg colours)
_POS, _NEG = (255, 0, 81), (0, 139, 251)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


# ---------------------------------------------------------------------- tokens
def show_token(token: Any) -> str:
    """A token in a visible form: edge spaces as ``␣``, newlines as ``↵``, tabs as ``⇥``.

    Other control characters become ``\\xNN``; an empty token is ``∅``. The result is
    plain text (the template escapes it).

    Examples
    --------
    >>> show_token(" the")
    '␣the'
    >>> show_token("a\\n")
    'a↵'
    """
    s = str(token)
    if s == "":
        return "∅"
    s = s.replace("\r\n", "↵").replace("\n", "↵").replace("\r", "↵").replace("\t", "⇥")
    s = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", s)
    core = s.strip(" ")
    if core == "":
        return "␣" * len(s)
    lead = len(s) - len(s.lstrip(" "))
    trail = len(s) - len(s.rstrip(" "))
    return "␣" * lead + core + "␣" * trail


def _figure_text(text: str) -> str:
    """A label for a matplotlib figure: visible form, and ``$`` never starts mathtext."""
    return show_token(text).replace("$", r"\$")


def _decode(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    return [str(tokenizer.decode([int(i)])) for i in ids]


# ---------------------------------------------------------------------- shading
def _shade(value: float, scale: float) -> str:
    """A CSS background for ``value`` on a symmetric scale (red positive, blue negative).

    Built from numbers only, so nothing from the data can reach the style attribute.
    """
    if not np.isfinite(value) or scale <= 0:
        return "transparent"
    alpha = min(1.0, abs(float(value)) / scale) * 0.65
    r, g, b = _POS if value > 0 else _NEG
    return f"rgba({r},{g},{b},{alpha:.3f})"


def _shade_prob(p: float) -> str:
    if not np.isfinite(p):
        return "transparent"
    return f"rgba({_NEG[0]},{_NEG[1]},{_NEG[2]},{0.6 * min(1.0, max(0.0, float(p))):.3f})"


def _heatmap(
    values: np.ndarray,
    rows: Sequence[str],
    cols: Sequence[str],
    *,
    center: float,
    label: str,
    xlabel: str,
    ylabel: str,
) -> str:
    """A diverging heatmap centred on ``center`` as an SVG data URI."""
    import matplotlib.pyplot as plt

    n_r, n_c = values.shape
    span = float(np.nanmax(np.abs(values - center))) if np.isfinite(values).any() else 0.0
    span = span if span > 0 else 1.0
    fig, ax = plt.subplots(figsize=(min(14.0, 1.6 + 0.42 * n_c), min(12.0, 1.3 + 0.36 * n_r)))
    im = ax.imshow(values, cmap="RdBu_r", vmin=center - span, vmax=center + span, aspect="auto")
    ax.set_xticks(range(n_c))
    ax.set_xticklabels([_figure_text(c) for c in cols], rotation=90, fontsize=8)
    ax.set_yticks(range(n_r))
    ax.set_yticklabels([_figure_text(r) for r in rows], fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.colorbar(im, ax=ax, label=_figure_text(label), shrink=0.85)
    return figure_data_uri(fig)


# ---------------------------------------------------------------------- patching
def is_internals(obj: Any) -> bool:
    """Whether :func:`internals_report` reads ``obj``: a LogitLens, a patching grid or a
    direct logit attribution."""
    if isinstance(obj, Explanation):
        return obj.method in PATCHING_METHODS or obj.method == "direct_logit_attribution"
    return _is_lens(obj)


def _is_lens(obj: Any) -> bool:
    from ..internals.lens import LogitLens

    return isinstance(obj, LogitLens)


def position_labels(
    exp: Explanation, tokenizer: Any = None, tokens: Any = None
) -> dict[int, str] | None:
    """Label of each position of a patching grid's patched run, or None without tokens.

    Its token (visible form), and ``clean / corrupted`` where the two runs differ; from
    ``tokens`` (the patched run's), ``meta["clean_tokens"]`` / ``["corrupted_tokens"]``, or
    ``tokenizer`` decoding ``meta["clean_ids"]`` / ``["corrupted_ids"]`` (first row).
    """
    meta = exp.meta
    if tokens is not None:
        return {i: show_token(t) for i, t in enumerate(tokens)}
    clean = meta.get("clean_tokens")
    corrupted = meta.get("corrupted_tokens")
    if (clean is None or corrupted is None) and tokenizer is not None:
        if meta.get("clean_ids") and meta.get("corrupted_ids"):
            clean = _decode(tokenizer, meta["clean_ids"][0])
            corrupted = _decode(tokenizer, meta["corrupted_ids"][0])
    if clean is None or corrupted is None:
        return None
    denoise = exp.params.get("direction", "denoise") == "denoise"
    target, source = (corrupted, clean) if denoise else (clean, corrupted)
    offset = int(meta.get("position_offset", 0) or 0)
    out = {}
    for p, tok in enumerate(target):
        other = source[p + offset] if 0 <= p + offset < len(source) else None
        c, k = (other, tok) if denoise else (tok, other)
        if other is None or c == k:
            out[p] = show_token(tok)
        else:
            out[p] = f"{show_token(c)} / {show_token(k)}"
    return out


def _grid_of(exp: Explanation) -> tuple[np.ndarray, list[str], list[str], list[list[int]]]:
    shape = exp.meta.get("grid_shape")
    axes = exp.meta.get("grid_axes")
    index = exp.meta.get("grid_index")
    if shape is None or axes is None or index is None:
        raise InvalidParameterError(
            f"this {exp.method} Explanation has no patching grid (meta['grid_shape'], "
            "'grid_axes', 'grid_index'); pass the result of activation_patching, "
            "attribution_patching or path_patching."
        )
    values = np.asarray(exp.values, dtype=float)[0].reshape(shape)
    return values, list(axes), list(exp.feature_names), [list(ix) for ix in index]


def _axis_labels(axis: str, index: Sequence[int], pos_tokens: dict[int, str] | None) -> list:
    if axis == "layer":
        return [f"L{i}" for i in index]
    if axis == "head":
        return [f"H{i}" for i in index]
    if axis == "position":
        return [
            f"{i}: {pos_tokens[i]}" if pos_tokens and i in pos_tokens else f"pos{i}" for i in index
        ]
    return [str(i) for i in index]


def patching_section(
    exp: Explanation,
    *,
    tokenizer: Any = None,
    tokens: Sequence[str] | None = None,
    title: str | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    """The grid of a patching Explanation: a heatmap and a shaded table.

    Parameters
    ----------
    exp : Explanation
        A result of :func:`~whybox.activation_patching`, :func:`~whybox.attribution_patching`
        or :func:`~whybox.path_patching` (``meta["grid_shape"]``: layer x position, layer x
        head, layer x position x head, or one axis).
    tokenizer : tokenizer, optional
        Decodes ``meta["clean_ids"]`` / ``["corrupted_ids"]`` (first row) to label the
        positions with their tokens (``clean / corrupted`` where they differ).
    tokens : sequence of str, optional
        Position labels of the patched run, instead (also read from
        ``meta["clean_tokens"]`` / ``["corrupted_tokens"]``).
    title, id : str, optional

    Returns
    -------
    dict
        A ``grid`` section for :meth:`Report.add`: the heatmap figure (colour centred on the
        unpatched run's metric, ``base_values[0]``) and the grid's values as a table
        (cells shaded by their distance from that centre); above ``MAX_TABLE_CELLS`` cells,
        the table lists the cells that move the metric most. Shapes: values
        ``(layers, positions)`` or ``(layers, heads)``; a three-axis grid is shown with
        rows ``L{l}@pos{p}`` and head columns.
    """
    values, axes, names, index = _grid_of(exp)
    base = float(np.asarray(exp.base_values, dtype=float).reshape(-1)[0])
    pos_tokens = position_labels(exp, tokenizer, tokens)
    metric = exp.output_names[0] if exp.output_names else "metric"
    normalize = bool(exp.params.get("normalize", False))
    label = f"{metric} (fraction of the gap)" if normalize else f"{metric} after the patch"
    if values.ndim == 1:
        row_labels = list(names)
        col_labels = [metric]
        grid = values[:, None]
        ylabel, xlabel = axes[0], ""
    elif values.ndim == 2:
        row_labels = _axis_labels(axes[0], index[0], pos_tokens)
        col_labels = _axis_labels(axes[1], index[1], pos_tokens)
        grid = values
        ylabel, xlabel = axes[0], axes[1]
    else:
        layers = _axis_labels(axes[0], index[0], pos_tokens)
        inner = _axis_labels(axes[1], index[1], pos_tokens)
        row_labels = [f"{a} @ {b}" for a in layers for b in inner]
        col_labels = _axis_labels(axes[2], index[2], pos_tokens)
        grid = values.reshape(-1, values.shape[-1])
        ylabel, xlabel = f"{axes[0]} @ {axes[1]}", axes[2]
    src = _heatmap(
        grid, row_labels, col_labels, center=base, label=label, xlabel=xlabel, ylabel=ylabel
    )
    effect = grid - base
    scale = float(np.nanmax(np.abs(effect))) if np.isfinite(effect).any() else 0.0
    meta = exp.meta
    how = {
        "activation_patching": "activation patching",
        "attribution_patching": "attribution patching (first-order estimate)",
        "path_patching": "path patching",
    }.get(exp.method, exp.method)
    direction = exp.params.get("direction", "denoise")
    lead = (
        f"{how.capitalize()} at site {exp.params.get('site', '?')!s}, direction {direction}: "
        f"each cell is the {metric} after patching that cell"
        + (
            " as a fraction of the gap between the two runs (0: the unpatched run, 1: the "
            "other run)."
            if normalize
            else f" (unpatched run: {_fmt(base)})."
        )
    )
    notes = []
    if meta.get("clean_metric") is not None:
        notes.append(
            f"Clean run: {metric} = {_fmt(float(meta['clean_metric']))}; corrupted run: "
            f"{_fmt(float(meta['corrupted_metric']))}."
        )
    if "spearman" in meta:
        notes.append(
            f"Against activation patching on the same grid: Spearman {_fmt(meta['spearman'])}"
            f", Pearson {_fmt(meta.get('pearson'))}."
        )
    if meta.get("receivers") is not None and exp.method == "path_patching":
        notes.append(f"Receivers: {meta['receivers']}.")
    grids = []
    if grid.size <= MAX_TABLE_CELLS:
        grids.append(
            {
                "title": "",
                "corner": ylabel,
                "columns": [{"lines": [c], "title": c} for c in col_labels],
                "rows": [
                    {
                        "label": row_labels[r],
                        "cells": [
                            {
                                "lines": [_fmt(float(grid[r, c]), 3)],
                                "shade": _shade(float(effect[r, c]), scale),
                                "title": f"{row_labels[r]}, {col_labels[c]}: "
                                f"{float(grid[r, c]):.7g}",
                                "num": True,
                            }
                            for c in range(grid.shape[1])
                        ],
                    }
                    for r in range(grid.shape[0])
                ],
            }
        )
    else:
        flat = np.argsort(-np.abs(effect).ravel(), kind="stable")[:20]
        grids.append(
            {
                "title": "The 20 cells that move the metric most",
                "corner": "cell",
                "columns": [{"lines": [label], "title": label}],
                "rows": [
                    {
                        "label": f"{row_labels[k // grid.shape[1]]}, "
                        f"{col_labels[k % grid.shape[1]]}",
                        "cells": [
                            {
                                "lines": [_fmt(float(grid.ravel()[k]), 3)],
                                "shade": _shade(float(effect.ravel()[k]), scale),
                                "title": f"{float(grid.ravel()[k]):.7g}",
                                "num": True,
                            }
                        ],
                    }
                    for k in flat
                ],
            }
        )
        notes.append(f"The grid has {grid.size:,} cells; the figure shows them all.")
    return {
        "kind": "grid",
        "id": id or f"patching-{exp.method}",
        "title": title or f"{how.capitalize()}: {ylabel} x {xlabel or metric}",
        "lead": lead,
        "figures": [{"src": src, "caption": label}],
        "grids": grids,
        "notes": notes,
    }


# ---------------------------------------------------------------------- logit lens
def lens_section(
    lens: Any,
    *,
    batch: int = 0,
    layers: Sequence[int] | None = None,
    positions: Sequence[int] | None = None,
    top_k: int | None = None,
    target: Any = None,
    title: str | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    """A logit lens as a table: lens entries (layers) x positions, each cell the top tokens.

    Parameters
    ----------
    lens : LogitLens
        From :func:`~whybox.logit_lens` (``.logits`` of shape (layers, batch, pos, vocab)).
    batch : int, default 0
        The batch row shown.
    layers, positions : sequence of int, optional
        Entries (indices into ``lens.labels``) and positions shown (default all; negative
        positions count from the end).
    top_k : int, optional
        Tokens per cell (default ``lens.top_k``, at most 10).
    target : int or str, optional
        A target token (default the lens's own): each cell also gives its rank (0 = top) and
        probability, and is shaded by that probability (else by the top token's).

    Returns
    -------
    dict
        A ``grid`` section for :meth:`Report.add`.
    """
    from .._validation import check_int

    n_entries, n_batch, n_pos, _ = lens.logits.shape
    batch = check_int("batch", batch, minimum=0, maximum=n_batch - 1)
    k = check_int("top_k", top_k if top_k is not None else min(lens.top_k, 10), minimum=1)
    k = min(k, 10, lens.logits.shape[-1])
    rows = _indices(layers, n_entries, "layers")
    cols = _indices(positions, n_pos, "positions")
    top = lens.top_tokens(k)
    probs = top.probs.detach().cpu().numpy()[:, batch]
    ids = top.ids.detach().cpu().numpy()[:, batch]
    names = top.tokens[:, batch] if top.tokens is not None else ids.astype(str)
    in_ids = lens.input_ids.detach().cpu().numpy()[batch]
    in_tokens = (
        _decode(lens.tokenizer, in_ids) if lens.tokenizer is not None else [str(i) for i in in_ids]
    )
    target = lens.target if target is None else target
    rank = prob = None
    target_name = None
    if target is not None:
        rank = lens.rank(target).detach().cpu().numpy()[:, batch]
        prob = lens.prob(target).detach().cpu().numpy()[:, batch]
        target_name = show_token(target) if isinstance(target, str) else str(target)
        if not isinstance(target, str) and lens.tokenizer is not None and np.ndim(target) == 0:
            target_name = f"{show_token(lens.tokenizer.decode([int(target)]))} (id {target})"
    grid_rows = []
    for e in rows:
        cells = []
        for p in cols:
            lines = [f"{show_token(names[e, p, j])} {probs[e, p, j]:.2f}" for j in range(k)]
            tip = f"{lens.labels[e]}, position {p}"
            if rank is not None:
                lines.insert(0, f"#{int(rank[e, p])} p={prob[e, p]:.3g}")
                shade = _shade_prob(float(prob[e, p]))
            else:
                shade = _shade_prob(float(probs[e, p, 0]))
            cells.append({"lines": lines, "shade": shade, "title": tip, "num": False})
        grid_rows.append({"label": lens.labels[e], "cells": cells})
    method = getattr(lens, "method", "logit_lens").replace("_", " ")
    lead = (
        f"The {method}: each layer's residual stream read through the model's own final norm "
        f"and unembedding. Each cell lists the {k} most probable next tokens at that layer "
        "and position, with their probabilities"
        + (
            f"; its first line is the rank (0 = top) and probability of the target "
            f"{target_name}, and the shade is that probability."
            if rank is not None
            else "; the shade is the top token's probability."
        )
    )
    notes = []
    if len(cols) < n_pos:
        notes.append(f"Positions shown: {len(cols)} of {n_pos}.")
    return {
        "kind": "grid",
        "id": id or "logit-lens",
        "title": title or ("Logit lens" if method == "logit lens" else method.capitalize()),
        "lead": lead,
        "figures": [],
        "grids": [
            {
                "title": "",
                "corner": "layer \\ position",
                "columns": [
                    {"lines": [str(p), show_token(in_tokens[p])], "title": f"position {p}"}
                    for p in cols
                ],
                "rows": grid_rows,
            }
        ],
        "notes": notes,
    }


def _indices(values: Sequence[int] | None, size: int, what: str) -> list[int]:
    if values is None:
        return list(range(size))
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise InvalidParameterError(f"{what} must be integers, got {v!r}.")
        i = int(v) + size if int(v) < 0 else int(v)
        if not 0 <= i < size:
            raise InvalidParameterError(
                f"{what} entry {int(v)} is out of range: there are {size} (0..{size - 1}, "
                "negative values count from the end)."
            )
        if i not in out:
            out.append(i)
    if not out:
        raise InvalidParameterError(f"{what} is empty: pass None for all, or some indices.")
    return out


# ---------------------------------------------------------------------- direct logit attribution
def dla_section(
    exp: Explanation, *, row: int = 0, top: int = 15, title: str | None = None
) -> dict[str, Any]:
    """Direct logit attribution of one row: a layer x head heatmap and the largest components.

    Parameters
    ----------
    exp : Explanation
        From :func:`~whybox.direct_logit_attribution` (players ``embed``, ``L{l}.H{h}`` or
        ``L{l}.attn``, ``L{l}.mlp``, ``bias``).
    row : int, default 0
        The batch row shown.
    top : int, default 15
        Components listed in the table, by absolute contribution.

    Returns
    -------
    dict
        A ``grid`` section for :meth:`Report.add`.
    """
    from .._validation import check_int

    row = check_int("row", row, minimum=0, maximum=exp.n_rows - 1)
    vals = np.asarray(exp.values, dtype=float)[row]
    names = list(exp.feature_names)
    heads = {}
    for name, v in zip(names, vals, strict=True):
        m = re.fullmatch(r"L(\d+)\.H(\d+)", name)
        if m:
            heads[(int(m.group(1)), int(m.group(2)))] = v
    figures = []
    output = str(exp.params.get("output", "logit"))
    if heads:
        n_l = 1 + max(lay for lay, _ in heads)
        n_h = 1 + max(h for _, h in heads)
        grid = np.full((n_l, n_h), np.nan)
        for (lay, h), v in heads.items():
            grid[lay, h] = v
        src = _heatmap(
            grid,
            [f"L{i}" for i in range(n_l)],
            [f"H{h}" for h in range(n_h)],
            center=0.0,
            label=f"direct contribution to {output}",
            xlabel="head",
            ylabel="layer",
        )
        figures.append({"src": src, "caption": "each head's direct contribution"})
    scale = float(np.abs(vals).max()) if vals.size else 0.0
    order = np.argsort(-np.abs(vals), kind="stable")[:top]
    pred = None if exp.predictions is None else float(np.asarray(exp.predictions)[row])
    return {
        "kind": "grid",
        "id": "dla",
        "title": title or "Direct logit attribution",
        "lead": (
            f"Each component's direct contribution to {output} (row {row}), through the final "
            "norm with its scale frozen at the real run; the contributions sum to the metric"
            + (f" ({_fmt(pred)})." if pred is not None else ".")
        ),
        "figures": figures,
        "grids": [
            {
                "title": f"The {len(order)} largest components",
                "corner": "component",
                "columns": [{"lines": ["contribution"], "title": "contribution"}],
                "rows": [
                    {
                        "label": names[j],
                        "cells": [
                            {
                                "lines": [_fmt(float(vals[j]))],
                                "shade": _shade(float(vals[j]), scale),
                                "title": f"{float(vals[j]):.7g}",
                                "num": True,
                            }
                        ],
                    }
                    for j in order
                ],
            }
        ],
        "notes": [],
    }


# ---------------------------------------------------------------------- the page
def internals_report(
    *objects: Any,
    tokenizer: Any = None,
    tokens: Sequence[str] | None = None,
    title: str = "whybox: model internals",
    subtitle: str | None = None,
) -> Report:
    """A report page of patching grids, logit lenses and direct logit attributions.

    Parameters
    ----------
    *objects : Explanation or LogitLens
        Each becomes one section, in order: a patching Explanation (:func:`patching_section`),
        a direct logit attribution (:func:`dla_section`) or a LogitLens
        (:func:`lens_section`). A list or tuple of them is unpacked.
    tokenizer : tokenizer, optional
        Labels the positions of patching grids with their tokens.
    tokens : sequence of str, optional
        Position labels of patching grids, instead of ``tokenizer``.
    title, subtitle : str

    Returns
    -------
    Report
        ``.save("page.html")`` writes it (atomically).

    Raises
    ------
    InvalidParameterError
        For an object that is none of these.
    """
    items: list[Any] = []
    for obj in objects:
        items.extend(obj if isinstance(obj, (list, tuple)) else [obj])
    if not items:
        raise InvalidParameterError(
            "internals_report needs at least one patching Explanation, direct logit "
            "attribution or LogitLens."
        )
    rep = Report(title=title, subtitle=subtitle or "")
    used: set[str] = set()
    for k, obj in enumerate(items):
        if not is_internals(obj):
            raise InvalidParameterError(
                f"item {k} is a {type(obj).__name__}"
                + (f" of method {obj.method!r}" if isinstance(obj, Explanation) else "")
                + "; the internals report shows results of activation_patching, "
                "attribution_patching, path_patching, direct_logit_attribution and logit_lens."
            )
        if isinstance(obj, Explanation) and obj.method == "direct_logit_attribution":
            section = dla_section(obj)
        elif isinstance(obj, Explanation):
            section = patching_section(obj, tokenizer=tokenizer, tokens=tokens)
        else:
            section = lens_section(obj)
        base = section["id"]
        n = 2
        while section["id"] in used:
            section["id"] = f"{base}-{n}"
            n += 1
        used.add(section["id"])
        rep.add(section)
    if not rep.subtitle:
        rep.subtitle = ", ".join(s["title"] for s in rep.sections)
    return rep
