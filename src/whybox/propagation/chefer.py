"""Gradient-weighted relevance rollout of Chefer, Gur & Wolf (ICCV 2021).

For self-attention, relevance starts as the identity and each layer adds the
gradient-weighted attention, positive part, averaged over heads::

    R <- I
    for each layer l:  Abar_l = mean_h ( (grad A_l ⊙ A_l)^+ ),   R <- R + Abar_l R

where ``A_l`` (heads, n, n) are layer l's attention patterns and ``grad A_l`` the gradient
of the explained logit with respect to them. The relevance of input j for the output token
at ``position`` is ``R[position, j]``.

The patterns are read, and their gradients taken, at the ``blocks.{i}.attn.pattern`` hook
points (:func:`whybox.internals.cache.run_with_cache` with ``with_grad=True``): the tensor a
transformers eager attention returns is the very tensor it multiplies with the values, so
the gradient is the one through the model's own computation. Needs
``attn_implementation="eager"``.

The LRP-based variant of Chefer et al. (CVPR 2021), which replaces ``A_l`` by its LRP
relevance, is :class:`whybox.propagation.chefer_lrp.CheferLRP` (its relevance comes from an
AttnLRP pass through the model).

Import torch lazily.

References
----------
.. [1] Chefer, Gur & Wolf (2021), "Generic Attention-model Explainability for Interpreting
   Bi-Modal and Encoder-Decoder Transformers", ICCV, eq. (6)-(7), (11).
.. [2] Chefer, Gur & Wolf (2021), "Transformer Interpretability Beyond Attention
   Visualization", CVPR.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from whybox._validation import check_int
from whybox.errors import InvalidParameterError, UnsupportedModelError
from whybox.explanation import Explanation
from whybox.propagation.rollout import _capture, _split, _TokenExplainer

__all__ = ["CheferRelevance", "chefer_relevance", "explain_chefer"]


def chefer_relevance(maps: Any, grads: Any, *, start_layer: int = 0) -> np.ndarray:
    """The relevance matrix of Chefer et al. (ICCV 2021) for one example.

    Parameters
    ----------
    maps : array (layers, heads, n, n)
        Attention patterns.
    grads : array (layers, heads, n, n)
        Gradients of the explained output with respect to ``maps``.
    start_layer : int, default 0
        First layer that updates the relevance.

    Returns
    -------
    ndarray (n, n), float64
        ``R``; row i is the relevance of each input token for output token i.

    References
    ----------
    .. [1] Chefer, Gur & Wolf (2021), ICCV, eq. (6)-(7) (self-attention rule).
    .. [2] Chefer, Gur & Wolf (2021), CVPR, eq. (13)-(14): the same update with the LRP
       relevance of each attention map in place of ``maps`` (``Abar = I + E_h((grad A ⊙
       R_A)^+)``, multiplied over the blocks); ``chefer_relevance(R_A, grads)`` computes it
       from relevances obtained elsewhere.
    """
    a = np.asarray(maps, dtype=np.float64)
    g = np.asarray(grads, dtype=np.float64)
    if a.ndim != 4 or a.shape != g.shape or a.shape[-1] != a.shape[-2]:
        raise InvalidParameterError(
            f"maps and grads must both have shape (layers, heads, n, n), got {a.shape} and "
            f"{g.shape}."
        )
    start_layer = check_int("start_layer", start_layer, minimum=0, maximum=a.shape[0] - 1)
    n = a.shape[-1]
    r = np.eye(n)
    for layer in range(start_layer, a.shape[0]):
        cam = np.clip(g[layer] * a[layer], 0.0, None).mean(axis=0)
        r = r + cam @ r
    return r


def relevance_rows(
    maps: Any, grads: Any, valid: list, positions: Any, *, start_layer: int = 0
) -> list[np.ndarray]:
    """:func:`chefer_relevance` of each row over its real tokens, read at its position.

    ``maps`` and ``grads`` are tensors (layers, batch, heads, q, k) (the attention maps, or
    their LRP relevance for the CVPR variant); ``valid[b]`` the real token indices of row b.
    """
    m = maps.detach().to("cpu").double().numpy()
    g = grads.detach().to("cpu").double().numpy()
    rows = []
    for b, v in enumerate(valid):
        a1 = m[:, b][:, :, v][:, :, :, v]
        g1 = g[:, b][:, :, v][:, :, :, v]
        rows.append(chefer_relevance(a1, g1, start_layer=start_layer)[positions[b]])
    return rows


def _targets(
    logits: Any, target: Any, flat_pos: list[int], tokenizer: Any, vocab: int | None
) -> list[int]:
    """One class / token id per row; argmax at the position when ``target`` is None."""
    from whybox.internals._lens_base import _token_id

    n_rows = logits.shape[0]
    if logits.ndim == 2:
        width = logits.shape[1]
        at = logits
    elif logits.ndim == 3:
        width = logits.shape[2]
        at = logits[range(n_rows), flat_pos]
    else:
        raise UnsupportedModelError(
            f"the model's output has shape {tuple(logits.shape)}; Chefer relevance needs "
            "logits (batch, classes) or (batch, pos, vocab). Use a model with a head "
            "(…ForSequenceClassification, …ForCausalLM, …ForMaskedLM)."
        )
    if target is None:
        return [int(i) for i in at.detach().argmax(-1).tolist()]
    items = (
        [target] * n_rows
        if isinstance(target, str | numbers.Integral) and not isinstance(target, bool)
        else list(target)
    )
    if len(items) != n_rows:
        raise InvalidParameterError(
            f"target has {len(items)} entries for {n_rows} rows: pass one or one per row."
        )
    out = []
    for t in items:
        if isinstance(t, str):
            t = _token_id(tokenizer, t, vocab)
        if not isinstance(t, numbers.Integral) or isinstance(t, bool) or not 0 <= t < width:
            raise InvalidParameterError(
                f"target {t!r} is not a class / token index of the model's {width} outputs."
            )
        out.append(int(t))
    return out


class CheferRelevance(_TokenExplainer):
    """Gradient-weighted attention relevance (Chefer, Gur & Wolf, ICCV 2021).

    Parameters
    ----------
    model : transformers model with a head
        Sequence classifier (target = class), causal LM or masked LM (target = token id at
        ``position``), loaded with ``attn_implementation="eager"``.
    start_layer : int, default 0
        First layer that updates the relevance.
    anatomy : Anatomy, optional
        Built with ``Anatomy.of(model)`` when None.

    Raises
    ------
    UnsupportedModelError
        A base model without a head (its output is hidden states, not logits), or a model
        whose attention weights cannot be read (load it with ``attn_implementation="eager"``).
    InvalidParameterError
        ``start_layer`` outside ``0 .. n_layers - 1``; from ``explain``, an unknown target.

    Notes
    -----
    ``explain(inputs, target=None, tokenizer=None, position=None)`` returns an
    :class:`~whybox.Explanation` whose ``values`` hold one array of shape (n_tokens,) per row;
    the default target is the predicted class (or token). One forward and one backward pass
    per batch (the explained logits are summed over rows, whose gradients do not mix).
    Parameters' ``.grad`` are left untouched.

    Examples
    --------
    >>> clf = wb.zoo.sentiment_classifier()              # MiniLM with a sentiment head
    >>> exp = wb.CheferRelevance(clf.model).explain(
    ...     "a wonderful film", tokenizer=clf.tokenizer, target=1)   # 1: "positive"
    >>> exp.feature_names[0]
    ['a', 'wonderful', 'film']
    >>> exp.feature_names[0][int(np.argmax(exp.values[0]))]
    'wonderful'

    References
    ----------
    .. [1] Chefer, Gur & Wolf (2021), "Generic Attention-model Explainability for
       Interpreting Bi-Modal and Encoder-Decoder Transformers", ICCV.
    """

    method = "chefer"

    def __init__(self, model: Any, *, start_layer: int = 0, anatomy: Any = None) -> None:
        if getattr(model, "base_model", None) is model:
            raise UnsupportedModelError(
                f"{type(model).__name__} is a base model without a head: its output is hidden "
                "states, not logits to explain. Load the model with its head (e.g. "
                "AutoModelForSequenceClassification, AutoModelForCausalLM), or use "
                "AttentionRollout, which needs no target."
            )
        super().__init__(model, anatomy=anatomy)
        self.start_layer = check_int(
            "start_layer", start_layer, minimum=0, maximum=self.anatomy.n_layers - 1
        )

    def _params(self) -> dict[str, Any]:
        return {"start_layer": self.start_layer}

    def _relevance(
        self,
        kwargs: dict,
        ids: Any,
        valid: list,
        positions: Any,
        *,
        tokenizer: Any = None,
        target: Any = None,
    ) -> Any:
        flat = [int(v[p]) for v, p in zip(valid, positions, strict=True)]
        chosen: dict[str, Any] = {}

        def metric(logits: Any) -> Any:
            t = _targets(logits, target, flat, tokenizer, self.anatomy.vocab_size)
            chosen["t"] = t
            rows = range(logits.shape[0])
            picked = logits[rows, t] if logits.ndim == 2 else logits[rows, flat, t]
            chosen["logit"] = picked.detach()
            return picked.sum()

        _, maps, grads = _capture(self.model, self.anatomy, kwargs, metric=metric)
        rows = relevance_rows(maps, grads, valid, positions, start_layer=self.start_layer)
        preds = chosen["logit"].to("cpu").double().numpy()
        return rows, preds, {"target": chosen["t"]}

    def explain(
        self,
        inputs: Any,
        *,
        target: int | str | Sequence[int | str] | None = None,
        tokenizer: Any = None,
        position: int | Sequence[int] | None = None,
        granularity: str = "token",
        max_length: int | None = None,
        truncate: bool = False,
    ) -> Explanation:
        """Relevance of each input token for the target logit.

        Parameters
        ----------
        inputs : LongTensor (batch, pos), mapping, str or list of str
            As in :meth:`AttentionRollout.explain`.
        target : int, str or sequence, optional
            Class index (sequence classifiers) or token id / one-token string (LMs), one or
            one per row. Default: the model's top prediction.
        tokenizer : tokenizer, optional
        position : int or sequence of int, optional
            Output token whose logit is explained and whose relevance row is returned
            (over the real tokens; default last token for causal models, the first [MASK]
            for masked LMs, else 0).
            For sequence classifiers only the relevance row.
        granularity : {"token", "word", "sentence"}, default "token"
        max_length, truncate
            For texts, as in :meth:`AttentionRollout.explain`.

        Returns
        -------
        Explanation
            Ragged, one value per token (player for texts); ``predictions`` the explained
            logit per row; ``meta["target"]`` the explained class / token ids.
        """
        return super().explain(
            inputs, tokenizer=tokenizer, position=position, granularity=granularity,
            max_length=max_length, truncate=truncate, target=target,
        )  # fmt: skip


def explain_chefer(
    model: Any,
    texts: Any,
    *,
    target: Any = None,
    random_state: Any = None,
    progress: Any = None,
    budget: Any = None,
    tolerance: Any = None,
    **kwargs: Any,
) -> Explanation:
    """``wb.explain(model, texts, tokenizer=tok, target=..., method="chefer", ...)``: the
    keywords of :class:`CheferRelevance` (``start_layer``, ``anatomy``) and of its
    ``explain``. Deterministic, one forward + backward per text: ``random_state``,
    ``progress``, ``budget`` and ``tolerance`` are accepted and ignored."""
    init, call = _split(kwargs, ("start_layer", "anatomy"), "method='chefer'")
    return CheferRelevance(model, **init).explain(texts, target=target, **call)
