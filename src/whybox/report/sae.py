"""Report sections for sparse autoencoders: the evaluation table, feature density, feature cards.

- :func:`evaluation_section`: an :class:`~whybox.sae.evaluation.SAEEvaluation` as one table
  (SAELens' metric groups: sparsity, reconstruction, downstream loss);
- :func:`density_section`: the histogram of ``log10`` feature densities (dead latents
  counted apart), from the evaluation or from a FeatureData;
- :func:`feature_cards_section`: a few latents of a :class:`~whybox.sae.features.FeatureData`
  as cards: their top-activating contexts with each token shaded by the latent's activation
  on it (the activating token in bold red, on the latent's own scale), their logit effects
  (promoted / suppressed tokens) and their explanation when one is set;
- :func:`sae_report`: a page of these (``wb.report(evaluation)``, ``wb.report(feature_data)``
  or ``wb.report([evaluation, feature_data])`` call it, :func:`is_sae`).

Every token is model output or user text: it reaches the page only as table text through the
template's autoescaping (a token ``<script>`` stays text); cell colours are built from numbers
only; the density figure is an SVG whose text is drawn as paths.

References
----------
.. [1] Bricken, T. et al. (2023), "Towards Monosemanticity: Decomposing Language Models With
       Dictionary Learning", Transformer Circuits Thread (feature density histograms, feature
       cards with top activations and logit effects).
.. [2] McDougall, C. (2024), SAE-Vis / SAEDashboard (feature-centric dashboards).
.. [3] Bloom, J. et al. (2024), SAELens (``run_evals`` metric groups).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import check_int
from ..errors import InvalidParameterError
from ._page import Report, _fmt, figure_data_uri

__all__ = [
    "density_section",
    "evaluation_section",
    "feature_cards_section",
    "is_sae",
    "sae_report",
]

#: tokens shown before / after the activating token in a card's context lines
CARD_WINDOW = (8, 4)
#: longer tokens are cut in the cards' cells (hover shows them whole)
MAX_TOKEN_CHARS = 14


def _kind(obj: Any) -> str | None:
    name = type(obj).__name__
    module = type(obj).__module__ or ""
    if not module.startswith("whybox.sae"):
        return None
    if name == "SAEEvaluation":
        return "evaluation"
    if name == "FeatureData":
        return "features"
    return None


def is_sae(obj: Any) -> bool:
    """Whether ``obj`` is an SAE evaluation or a FeatureData (checked by type, so this never
    imports torch)."""
    return _kind(obj) is not None


def _shade(value: float, vmax: float) -> str:
    from ..viz.text import colour

    return "rgb({},{},{})".format(*colour(value, vmax))


def _token(token: Any) -> str:
    from .internals import show_token

    return "?" if token is None else show_token(token)


def _short(shown: str) -> str:
    """A token cut to ``MAX_TOKEN_CHARS`` characters (the cell's title keeps it whole)."""
    return shown if len(shown) <= MAX_TOKEN_CHARS else shown[: MAX_TOKEN_CHARS - 1] + "…"


# ---------------------------------------------------------------------- evaluation
def evaluation_section(evaluation: Any, *, id: str = "sae-evaluation") -> dict[str, Any]:
    """The evaluation as a ``table`` section: group, metric, value (``-`` where None)."""
    if _kind(evaluation) != "evaluation":
        raise InvalidParameterError(
            f"evaluation_section needs an SAEEvaluation (wb.sae.evaluate), got "
            f"{type(evaluation).__name__}."
        )
    rows, last = [], None
    for group, metrics in evaluation.metrics().items():
        for name, value in metrics.items():
            shown = "-" if value is None else _fmt(value, 5)
            rows.append([group if group != last else "", name, shown])
            last = group
    out = f" -> {evaluation.site_out}" if evaluation.site_out != evaluation.site else ""
    return {
        "kind": "table",
        "id": id,
        "title": "SAE evaluation",
        "lead": (
            f"{evaluation.d_sae:,} latents at {evaluation.site}{out}, on "
            f"{evaluation.n_tokens:,} tokens. fvu: unexplained fraction of the variance; "
            "ce_loss_score: fraction of the next-token loss recovered when the reconstruction "
            "replaces the activation (1 = as the model, 0 = as zero-ablation); l0: latents "
            "active per token; dead_fraction: latents never active here."
        ),
        "header": ["group", "metric", "value"],
        "rows": rows,
        "notes": [str(n) for n in evaluation.notes],
    }


def _densities(obj: Any) -> tuple[np.ndarray, int]:
    if _kind(obj) == "evaluation":
        d = np.asarray(obj.feature_density, dtype=np.float64)
        return d, int(obj.n_tokens)
    d = np.asarray(obj.array("density"), dtype=np.float64)
    return d, int(obj.meta["n_tokens"])


def density_section(obj: Any, *, id: str = "sae-density") -> dict[str, Any]:
    """The histogram of ``log10(density)`` over the latents that fired (a ``figures``
    section); dead latents are counted in the caption."""
    import matplotlib.pyplot as plt

    if not is_sae(obj):
        raise InvalidParameterError(
            f"density_section needs an SAEEvaluation or a FeatureData, got {type(obj).__name__}."
        )
    density, n_tokens = _densities(obj)
    live = density[density > 0]
    n_dead = int(density.size - live.size)
    fig, ax = plt.subplots(figsize=(6, 3))
    if live.size:
        ax.hist(np.log10(live), bins=40, color="#3b6fb6")
    ax.set_xlabel("log10 feature density (fraction of tokens where the latent fires)")
    ax.set_ylabel("latents")
    caption = (
        f"{live.size:,} latents fired on {n_tokens:,} tokens; {n_dead:,} "
        f"({n_dead / max(density.size, 1):.1%}) never fired (dead, not drawn)"
    )
    rows = [
        ["latents", _fmt(int(density.size))],
        ["dead (never fired)", _fmt(n_dead)],
        ["median density of live latents", _fmt(float(np.median(live))) if live.size else "-"],
        ["densest latent", _fmt(float(density.max())) if density.size else "-"],
    ]
    return {
        "kind": "figures",
        "id": id,
        "title": "Feature density",
        "text": (
            "How often each latent fires. Very rare latents are often not yet learned; very "
            "dense ones (above 10% of tokens) are rarely interpretable (Bricken et al. 2023)."
        ),
        "figures": [{"src": figure_data_uri(fig), "caption": caption}],
        "columns": 2,
        "table": {"columns": ["", ""], "rows": rows},
        "notes": [],
    }


# ---------------------------------------------------------------------- feature cards
def _context_row(ctx: dict[str, Any], vmax: float, rank: int) -> dict[str, Any]:
    centre = int(ctx["center"])
    left, right = CARD_WINDOW
    lo, hi = max(0, centre - left), min(len(ctx["token_ids"]), centre + right + 1)
    tokens = ctx["tokens"] or [str(i) for i in ctx["token_ids"]]
    blank = {"lines": [""], "shade": "rgb(255,255,255)", "title": "", "num": False}
    cells = [dict(blank) for _ in range(left - (centre - lo))]  # the peak in one column
    for i in range(lo, hi):
        a = float(ctx["activations"][i])
        shown = _token(tokens[i])
        cells.append({
            "lines": [_short(shown)],
            "shade": _shade(a, vmax),
            "title": f"{shown}: {a:.4g}" + (" (activating token)" if i == centre else ""),
            "num": False,
        })  # fmt: skip
    return {"label": f"#{rank} {ctx['activation']:.3g}", "cells": cells}


def _logit_row(label: str, entries: list[dict[str, Any]], sign: float, n: int) -> dict:
    vals = [abs(float(e["value"])) for e in entries[:n]]
    vmax = max(vals, default=0.0) or 1.0
    return {
        "label": label,
        "cells": [
            {
                "lines": [_short(_token(e["token"] if e["token"] is not None else e["token_id"]))],
                "shade": _shade(sign * abs(float(e["value"])), vmax),
                "title": f"{_token(e['token'])}: {float(e['value']):+.4g}",
                "num": False,
            }
            for e in entries[:n]
        ],
    }


def feature_cards_section(
    data: Any,
    latents: Sequence[int] | None = None,
    *,
    n: int = 6,
    n_contexts: int = 5,
    n_logits: int = 6,
    id: str = "sae-features",
) -> dict[str, Any]:
    """Cards of a few latents (a ``grid`` section): top contexts, logit effects, explanation.

    Parameters
    ----------
    data : FeatureData
    latents : sequence of int, optional
        Latents shown (default: those with an explanation, else the ``n`` whose top contexts
        peak most often on one token, :func:`whybox.sae.demo.concept_features`).
    n : int, default 6
    n_contexts : int, default 5
        Top contexts per card.
    n_logits : int, default 6
        Promoted and suppressed tokens per card (when the model has logits).
    id : str

    Returns
    -------
    dict
        One grid per latent: a line per top context (its activation as the label; each token
        shaded by the latent's activation on it, scale ``[0, max activation]``, hover for
        the value; the activating tokens aligned in one column, tokens longer than
        ``MAX_TOKEN_CHARS`` cut) and, when the model has an unembedding, a line of promoted tokens (red)
        and one of suppressed tokens (blue), each on its own scale.
    """
    if _kind(data) != "features":
        raise InvalidParameterError(
            f"feature_cards_section needs a FeatureData (wb.sae.feature_data), got "
            f"{type(data).__name__}."
        )
    n = check_int("n", n, minimum=1)
    n_contexts = check_int("n_contexts", n_contexts, minimum=1)
    n_logits = check_int("n_logits", n_logits, minimum=0)
    notes: list[str] = []
    if latents is None:
        explained = sorted(int(j) for j in data.explanations)
        if explained:
            latents = explained[:n]
        elif data.vocab is not None:
            from ..sae.demo import concept_features

            latents = [p["latent"] for p in concept_features(data, n=n, min_contexts=1)]
            notes.append(
                "Latents chosen as those whose top contexts most often activate on one token."
            )
        else:
            latents = [int(j) for j in np.argsort(-np.asarray(data.array("n_firing")))[:n]]
    grids = []
    for j in latents:
        page = data.feature(int(j))
        vmax = float(page["max_activation"]) or 1.0
        rows = [
            _context_row(ctx, vmax, r + 1)
            for r, ctx in enumerate(page["top_contexts"][:n_contexts])
        ]
        if page["logits"] and n_logits:
            rows.append(_logit_row("promotes", page["logits"]["promoted"], 1.0, n_logits))
            rows.append(_logit_row("suppresses", page["logits"]["suppressed"], -1.0, n_logits))
        expl = page["explanation"]
        head = f"latent {page['index']}"
        if expl:
            head += f": {expl['text']}"
        head += (
            f" (density {_fmt(page['density'], 3)}, fires on {page['n_firing']:,} of "
            f"{page['n_tokens']:,} tokens, max {_fmt(page['max_activation'], 3)})"
        )
        if not rows:
            head += "; never fired on these tokens"
        grids.append({"title": head, "corner": "top contexts", "columns": [], "rows": rows})
    if not data.meta.get("has_logits"):
        notes.extend(str(x) for x in data.meta.get("notes", []) if "logit" in str(x).lower())
    return {
        "kind": "grid",
        "id": id,
        "title": "Features",
        "lead": (
            f"Latents of the SAE at {data.meta['site']}: each line a top-activating context, "
            "each token shaded by the latent's activation on it (white 0, red the latent's "
            "maximum; hover for the value); then the tokens whose logits its decoder direction "
            "raises most (red) and lowers most (blue) through the final norm and unembedding."
        ),
        "figures": [],
        "grids": grids,
        "notes": notes,
    }


# ---------------------------------------------------------------------- page
def sae_report(
    *items: Any,
    latents: Sequence[int] | None = None,
    n_features: int = 6,
    title: str | None = None,
    subtitle: str | None = None,
) -> Report:
    """A page of an SAE's evaluation and / or feature data.

    Parameters
    ----------
    *items : SAEEvaluation or FeatureData (or lists of them)
        The evaluation gives the table and the density histogram; the feature data the
        feature cards (and the density histogram when there is no evaluation).
    latents : sequence of int, optional
        Latents shown as cards (see :func:`feature_cards_section`).
    n_features : int, default 6
    title, subtitle : str, optional

    Returns
    -------
    Report
    """
    flat: list[Any] = []
    for it in items:
        flat.extend(it if isinstance(it, (list, tuple)) else [it])
    bad = [type(o).__name__ for o in flat if not is_sae(o)]
    if not flat or bad:
        raise InvalidParameterError(
            "sae_report takes SAEEvaluation (wb.sae.evaluate) and FeatureData "
            f"(wb.sae.feature_data) objects, got {bad or 'nothing'}."
        )
    evals = [o for o in flat if _kind(o) == "evaluation"]
    datas = [o for o in flat if _kind(o) == "features"]
    site = (evals or datas)[0]
    site = site.site if evals else site.meta["site"]
    rep = Report(
        title=title or "whybox: sparse autoencoder",
        subtitle=subtitle or f"SAE at {site}",
    )
    for k, ev in enumerate(evals):
        suffix = f"-{k}" if k else ""
        rep.add(evaluation_section(ev, id=f"sae-evaluation{suffix}"))
        rep.add(density_section(ev, id=f"sae-density{suffix}"))
    for k, fd in enumerate(datas):
        suffix = f"-{k}" if k else ""
        if not evals:
            rep.add(density_section(fd, id=f"sae-density{suffix}"))
        rep.add(feature_cards_section(fd, latents, n=n_features, id=f"sae-features{suffix}"))
    return rep
