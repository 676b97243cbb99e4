"""Text explanations on screen: coloured tokens (HTML and image) and token x token heatmaps.

:func:`text` returns a :class:`TextPlot`: the tokens (or words) of one explained text, each
on a background whose colour is its value on a scale centred at 0 (red positive, blue
negative, white for 0; the scale's end is the row's largest absolute value unless ``vmax``
is given). It is HTML in notebooks (``_repr_html_``) and as ``str()``, and an image through
matplotlib (``to_image()``, ``save_png(path)``).

Safety: every token is user text or model output. It reaches the HTML only through
:func:`html.escape` (a token ``<script>`` stays text), and style attributes are built from
numbers only. In images the text is drawn with mathtext off (a ``$`` stays a ``$``).

Whitespace is kept visible: spaces inside tokens are preserved (``white-space: pre-wrap``),
a token made only of spaces is shown as ``␣``, a newline as ``↵`` followed by a line break,
a tab as ``⇥``, other control characters as ``\\xNN``.

:func:`text_heatmap` draws the generated x source matrix of
:func:`whybox.explain_generation` (or any ragged explanation, rows padded with blanks).

References
----------
.. [1] Arras et al. (2017), "What is relevant in a text document? An interpretable machine
       learning approach", PLOS ONE (relevance heatmaps over words, centred at 0).
.. [2] Sarti et al. (2023), "Inseq: An Interpretability Toolkit for Sequence Generation
       Models", ACL demo (generated x source attribution matrices).
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidParameterError
from ..explanation import Explanation

__all__ = ["TextPlot", "colour", "text", "text_heatmap", "visible"]

#: the report's positive and negative colours (red, blue); 0 is white
POS, NEG = (255, 0, 81), (0, 139, 251)
#: the strongest mix of the colour with white (so black text stays readable)
MAX_MIX = 0.85
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(token: Any) -> str:
    """A token in a visible form: only-space tokens as ``␣``, ``\\n`` as ``↵``, ``\\t`` as ``⇥``.

    Spaces inside or at the edge of a token with other text are kept as spaces (the HTML
    keeps them with ``pre-wrap``); other control characters become ``\\xNN``; an empty
    token is ``∅``.
    """
    s = str(token)
    if s == "":
        return "∅"
    if s.strip(" ") == "":
        return "␣" * len(s)
    s = s.replace("\r\n", "↵").replace("\n", "↵").replace("\r", "↵").replace("\t", "⇥")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", s)


def colour(value: float, vmax: float) -> tuple[int, int, int]:
    """RGB of ``value`` on the scale [-vmax, vmax]: white at 0, red positive, blue negative.

    Linear mix of white with :data:`POS` / :data:`NEG` by ``|value| / vmax`` (clipped to 1,
    at most :data:`MAX_MIX`). Non-finite values and ``vmax <= 0`` give white.
    """
    if not np.isfinite(value) or not np.isfinite(vmax) or vmax <= 0:
        return (255, 255, 255)
    a = min(1.0, abs(float(value)) / float(vmax)) * MAX_MIX
    end = POS if value > 0 else NEG
    return tuple(round(255 * (1 - a) + c * a) for c in end)  # type: ignore[return-value]


class TextPlot:
    """Coloured tokens of one explained text: HTML (``str``, ``_repr_html_``) and an image.

    Attributes
    ----------
    tokens : list of str
        The units shown (tokens, words or sentences), as given.
    values : ndarray of shape (n_tokens,)
    vmax : float
        End of the colour scale (the scale is [-vmax, vmax], centred at 0).
    title : str
    target : str or None
        The explained token of a generation row (shown after the sources, framed).
    gaps : list of str or None
        Uncoloured text shown before each token (the spaces between words of the original
        text when the units are words or sentences).
    """

    def __init__(
        self,
        tokens: list[str],
        values: np.ndarray,
        *,
        vmax: float | None = None,
        title: str = "",
        target: str | None = None,
        gaps: list[str] | None = None,
    ) -> None:
        self.tokens = [str(t) for t in tokens]
        self.values = np.asarray(values, dtype=float).reshape(-1)
        if len(self.tokens) != self.values.shape[0]:
            raise InvalidParameterError(
                f"{len(self.tokens)} tokens but {self.values.shape[0]} values; give one value "
                "per token."
            )
        finite = self.values[np.isfinite(self.values)]
        auto = float(np.max(np.abs(finite))) if finite.size else 0.0
        self.vmax = float(vmax) if vmax is not None else auto
        if not self.vmax > 0:
            self.vmax = 1.0
        self.title = str(title)
        self.target = None if target is None else str(target)
        if gaps is not None and len(gaps) != len(self.tokens):
            raise InvalidParameterError("gaps must give one string (maybe empty) per token.")
        self.gaps = None if gaps is None else [str(g) for g in gaps]

    # ------------------------------------------------------------------ HTML
    def colours(self) -> list[tuple[int, int, int]]:
        """The RGB background of each token."""
        return [colour(v, self.vmax) for v in self.values]

    def to_html(self) -> str:
        """An HTML fragment: one ``<span>`` per token, escaped, coloured by value."""
        parts = []
        gaps = self.gaps or [""] * len(self.tokens)
        for tok, v, (r, g, b), gap in zip(
            self.tokens, self.values, self.colours(), gaps, strict=True
        ):
            if gap:
                shown_gap = html.escape(gap.replace("\r\n", "\n"), quote=True)
                shown_gap = shown_gap.replace("\n", "↵<br>").replace("\r", "↵<br>")
                parts.append(f'<span class="wb-gap">{shown_gap}</span>')
            shown = html.escape(visible(tok), quote=True)
            if "↵" in shown:
                shown = shown.replace("↵", "↵<br>")
            tip = html.escape(f"{tok!r}: {v:.6g}", quote=True)
            parts.append(
                f'<span class="wb-tok" style="background-color:rgb({r},{g},{b})" '
                f'data-value="{v:.9g}" title="{tip}">{shown}</span>'
            )
        target = ""
        if self.target is not None:
            target = (
                ' <span class="wb-target" style="border:1px solid #1d2330;padding:0 2px">'
                + html.escape(visible(self.target), quote=True)
                + "</span>"
            )
        head = (
            f'<div class="wb-title" style="font-weight:600">{html.escape(self.title)}</div>'
            if self.title
            else ""
        )
        pos, neg = "rgb({},{},{})".format(*colour(1, 1)), "rgb({},{},{})".format(*colour(-1, 1))
        legend = (
            '<div class="wb-legend" style="font-size:11px;color:#5b6576">'
            f'<span style="background-color:{neg}">&nbsp;-{self.vmax:.4g}&nbsp;</span> '
            '<span style="background-color:rgb(255,255,255);border:1px solid #e3e7ee">'
            "&nbsp;0&nbsp;</span> "
            f'<span style="background-color:{pos}">&nbsp;+{self.vmax:.4g}&nbsp;</span></div>'
        )
        body = (
            '<div class="wb-text" style="white-space:pre-wrap;font-family:ui-monospace,'
            'Menlo,Consolas,monospace;line-height:1.9;color:#1d2330">'
            + "".join(parts)
            + target
            + "</div>"
        )
        return f'<div class="wb-textplot">{head}{body}{legend}</div>'

    def _repr_html_(self) -> str:
        return self.to_html()

    def __str__(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return f"TextPlot({len(self.tokens)} tokens, vmax={self.vmax:.4g})"

    def save_html(self, path: str | os.PathLike[str]) -> Path:
        """Write a standalone HTML page with the tokens; returns the path."""
        path = Path(path)
        page = (
            '<!doctype html><html><head><meta charset="utf-8"><title>'
            + html.escape(self.title or "whybox text")
            + "</title></head><body>"
            + self.to_html()
            + "</body></html>"
        )
        path.write_text(page, encoding="utf-8")
        return path

    # ------------------------------------------------------------------ image
    def to_image(self, *, width: int = 80, ax: Any = None) -> Any:
        """The tokens drawn by matplotlib (monospace, wrapped at ``width`` characters).

        Returns the matplotlib Figure. Text is drawn with mathtext off.
        """
        import matplotlib.pyplot as plt
        from matplotlib.patches import Rectangle

        cells: list[tuple[int, int, str, tuple[int, int, int] | None]] = []
        line, col = 0, 0
        items = []
        for j, (t, c) in enumerate(zip(self.tokens, self.colours(), strict=True)):
            gap = self.gaps[j] if self.gaps else ""
            if gap.strip(" ") == "" and gap:
                items.append((" " * len(gap), (255, 255, 255)))
            elif gap:
                items.append((visible(gap), (255, 255, 255)))
            items.append((visible(t), c))
        if self.target is not None:
            items.append(("→ " + visible(self.target), None))
        for shown, rgb in items:
            n = max(1, len(shown))
            if col > 0 and col + n > width:
                line, col = line + 1, 0
            cells.append((line, col, shown, rgb))
            col += n
            if shown.endswith("↵"):
                line, col = line + 1, 0
        n_lines = line + 1
        if ax is None:
            fig, ax = plt.subplots(figsize=(0.11 * width + 0.4, 0.32 * n_lines + 0.6))
        fig = ax.figure
        for ln, c0, shown, rgb in cells:
            n = max(1, len(shown))
            face = "none" if rgb is None else tuple(x / 255 for x in rgb)
            edge = "#1d2330" if rgb is None else "none"
            ax.add_patch(Rectangle((c0, ln), n, 0.9, facecolor=face, edgecolor=edge, lw=0.8))
            t = ax.text(c0 + n / 2, ln + 0.45, shown, ha="center", va="center",
                        family="monospace", fontsize=9)  # fmt: skip
            t.set_parse_math(False)
        ax.set_xlim(0, width)
        ax.set_ylim(n_lines, 0)
        ax.axis("off")
        if self.title:
            ax.set_title(self.title, fontsize=10).set_parse_math(False)
        return fig

    def save_png(self, path: str | os.PathLike[str], *, dpi: int = 150, **kwargs: Any) -> Path:
        """Write the image version as PNG; returns the path."""
        import matplotlib.pyplot as plt

        fig = self.to_image(**kwargs)
        path = Path(path)
        fig.savefig(path, dpi=dpi, bbox_inches="tight", format="png")
        plt.close(fig)
        return path


def _row(exp: Explanation, i: int, output: int | None) -> tuple[list[str], np.ndarray]:
    if not isinstance(i, (int, np.integer)) or not -exp.n_rows <= int(i) < exp.n_rows:
        raise InvalidParameterError(f"row {i!r} is not a row of this {exp.n_rows}-row explanation.")
    i = int(i) % exp.n_rows
    vals = np.asarray(exp.values[i], dtype=float)
    names = exp.feature_names[i] if exp.is_ragged else exp.feature_names
    if vals.ndim == 2 or (not exp.is_ragged and vals.ndim > 1):
        k = 0 if output is None else int(output)
        vals = vals[..., k]
    vals = vals.reshape(-1)
    names = [str(n) for n in names]
    if len(names) != vals.shape[0]:
        raise InvalidParameterError(
            f"row {i} has {vals.shape[0]} values but {len(names)} names; text() draws "
            "explanations with one name per value (tokens, words)."
        )
    return names, vals


def text(
    exp: Explanation,
    i: int = 0,
    *,
    output: int | None = None,
    vmax: float | None = None,
    title: str | None = None,
) -> TextPlot:
    """The tokens of row ``i`` coloured by value (HTML object with an image version).

    Parameters
    ----------
    exp : Explanation
        A text explanation (ragged rows of tokens / words), a generation explanation
        (:func:`whybox.explain_generation`: the sources of generated token ``i``, with the
        token framed after them), or any explanation with one name per value.
    i : int, default 0
        The row.
    output : int, optional
        The output shown when each row explains several (default the first).
    vmax : float, optional
        End of the colour scale (default the row's largest absolute value), e.g. the same
        for several rows to compare them.
    title : str, optional
        Default: the method and the explained output (and token).

    Returns
    -------
    TextPlot
        ``str(plot)`` / ``plot._repr_html_()`` the HTML; ``plot.save_png(path)``.
    """
    names, vals = _row(exp, i, output)
    target = None
    if exp.meta.get("kind") == "generation":
        target = str(exp.meta["targets"][int(i) % exp.n_rows])
    if title is None:
        output_name = str(exp.params.get("output", "value"))
        title = f"{exp.method}: {output_name}" if exp.method else output_name
        if target is not None:
            title += f" of {visible(target)}"
    return TextPlot(names, vals, vmax=vmax, title=title, target=target, gaps=_gaps(exp, i))


def _gaps(exp: Explanation, i: int) -> list[str] | None:
    """The original text between players (meta ``texts``/``offsets``/``players``), if any."""
    meta = exp.meta
    try:
        text_, offsets, players = meta["texts"][i], meta["offsets"][i], meta["players"][i]
        spans = []
        for idx in players:
            inner = [offsets[k] for k in idx if offsets[k][1] > offsets[k][0]]
            if not inner:
                return None
            spans.append((min(a for a, _ in inner), max(b for _, b in inner)))
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    gaps, prev = [], 0
    for (a, b), name in zip(spans, exp.feature_names[i], strict=False):
        if a < prev:
            return None  # overlapping or out of order: show the names alone
        gap = str(text_)[prev:a]
        # a name that already carries its leading space (a token) needs no gap
        gaps.append("" if str(name)[: len(gap)] == gap else gap)
        prev = b
    return gaps if len(gaps) == len(exp.feature_names[i]) else None


def _short(label: str, n: int = 24) -> str:
    """A tick label cut to ``n`` characters (``…`` marks the cut)."""
    return label if len(label) <= n else label[: n - 1] + "…"


def text_heatmap(
    exp: Explanation,
    *,
    output: int | None = None,
    ax: Any = None,
    vmax: float | None = None,
) -> Any:
    """Rows x tokens heatmap: for a generation explanation, generated x source tokens.

    Row ``t`` is padded with blanks (grey) beyond its values (a generated token's later
    tokens are not its sources). The colour scale is centred at 0 (symmetric max-abs).

    Returns
    -------
    matplotlib Axes
    """
    import matplotlib.pyplot as plt

    rows = [_row(exp, r, output) for r in range(exp.n_rows)]
    width = max((v.shape[0] for _, v in rows), default=0)
    if width == 0:
        raise InvalidParameterError("the explanation has no values to draw.")
    grid = np.full((len(rows), width), np.nan)
    for r, (_, v) in enumerate(rows):
        grid[r, : v.shape[0]] = v
    cols = max(rows, key=lambda nv: nv[1].shape[0])[0]
    if exp.meta.get("kind") == "generation":
        ylabels = [visible(t) for t in exp.meta["targets"]]
        xlabels = [visible(t) for t in exp.meta.get("source_tokens", cols)[:width]]
        xlabel, ylabel = "source token (prompt, then generated)", "generated token"
    else:
        ylabels = [f"row {r}" for r in range(len(rows))]
        xlabels = [visible(t) for t in cols]
        xlabel, ylabel = "token", "row"
    xlabels, ylabels = [_short(t) for t in xlabels], [_short(t) for t in ylabels]
    span = vmax if vmax is not None else float(np.nanmax(np.abs(grid)))
    span = span if span > 0 else 1.0
    if ax is None:
        _, ax = plt.subplots(
            figsize=(min(16.0, 1.8 + 0.38 * width), min(12.0, 1.4 + 0.34 * len(rows))),
            layout="constrained",
        )
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="#eeeeee")
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-span, vmax=span, aspect="auto")
    ax.set_xticks(range(width))
    ax.set_xticklabels(xlabels, rotation=90, fontsize=8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(ylabels, fontsize=8)
    for lab in [*ax.get_xticklabels(), *ax.get_yticklabels()]:
        lab.set_parse_math(False)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    label = str(exp.params.get("output", "value"))
    ax.figure.colorbar(im, ax=ax, shrink=0.85).set_label(label.replace("$", r"\$"))
    ax.set_title(str(exp.method)).set_parse_math(False)
    return ax
