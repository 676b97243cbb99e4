"""LRP-weighted relevance rollout of Chefer, Gur & Wolf (CVPR 2021).

"Transformer Interpretability Beyond Attention Visualization" weights each attention map by
its gradient *and by its LRP relevance* instead of by the map itself (the ICCV 2021 rule of
:mod:`whybox.propagation.chefer`)::

    Abar_b = I + E_h[ (grad A_b ⊙ R_{A_b})^+ ]        (eq. 13)
    C      = Abar_B · … · Abar_2 · Abar_1              (eq. 14, later blocks on the left)

where ``A_b`` (heads, n, n) are block b's attention patterns, ``grad A_b`` the ordinary
gradient of the explained logit with respect to them, and ``R_{A_b}`` their LRP relevance
(the relevance at the softmax output). Row ``position`` of ``C`` (the [CLS] token of a
classifier, the predicted position of an LM) is the token relevance.

How ``R_A`` is obtained. The rules are those of AttnLRP (Achtibat et al. 2024), imposed by
:class:`~whybox.propagation.attnlrp.AttnLRP`'s temporary hooks on the user's own model: with
them installed, ``x * grad(x)`` at any tensor of the forward pass is its LRP relevance. The
attention product ``A V`` gets the uniform rule (half of its relevance to each operand), and
AttnLRP folds ``A``'s half into the q / k projections, so the gradient arriving at ``A`` is
the whole one: ``R_A = 1/2 · A ⊙ grad_LRP(A)`` (summed over a layer, ``R_A`` is half of the
relevance of the heads' outputs). The patterns and their modified gradients are read at the
``blocks.{i}.attn.pattern`` hook points
(:func:`whybox.internals.cache.run_with_cache` with ``with_grad=True``) with the hooks active;
``grad A`` comes from a second, unhooked pass. Two forward and two backward passes per batch;
needs ``attn_implementation="eager"``.

Differences from the authors' code. Chefer et al. propagate LRP with the alpha-beta rule
(alpha = 1) seeded with relevance 1 at the target; here the rules are AttnLRP's (epsilon on
linear layers, identity on activations and norms, uniform on the attention matmuls, the
softmax rule) seeded with the target logit, so ``R_A`` is in logit units (like ``grad A ⊙ A``
in the ICCV rule). Their BERT demo also overwrites the [CLS]-to-[CLS] entry for display;
nothing is overwritten here. ``cp_lrp=True`` uses CP-LRP's rules upstream (attention held
constant, relevance through the values only) and still reads ``R_A`` as the uniform share
``1/2 · A ⊙ grad_LRP(A)``.

Import torch lazily.

References
----------
.. [1] Chefer, Gur & Wolf (2021), "Transformer Interpretability Beyond Attention
   Visualization", CVPR, eq. (13)-(14).
.. [2] Achtibat et al. (2024), "AttnLRP: Attention-aware layer-wise relevance propagation for
   transformers", ICML.
.. [3] Ali et al. (2022), "XAI for transformers: better explanations through conservative
   propagation", ICML (CP-LRP).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from whybox.errors import InvalidParameterError
from whybox.explanation import Explanation
from whybox.propagation.chefer import CheferRelevance, _targets, relevance_rows
from whybox.propagation.rollout import _capture, _split

__all__ = ["CheferLRP", "explain_chefer_lrp"]

_INIT = ("start_layer", "cp_lrp", "epsilon", "anatomy")


class CheferLRP(CheferRelevance):
    """LRP-weighted attention relevance (Chefer, Gur & Wolf, CVPR 2021), AttnLRP rules.

    Parameters
    ----------
    model : transformers model with a head
        Sequence classifier (target = class), causal LM or masked LM (target = token id at
        ``position``), loaded with ``attn_implementation="eager"``.
    start_layer : int, default 0
        First block whose ``Abar`` enters the product (earlier blocks count as ``I``).
    cp_lrp : bool, default False
        Propagate with CP-LRP (attention held constant) instead of AttnLRP's rules.
    epsilon : float, default 1e-6
        Stabiliser of AttnLRP's epsilon rule on linear layers.
    anatomy : Anatomy, optional
        Built with ``Anatomy.of(model)`` when None.

    Raises
    ------
    InvalidParameterError
        A non-boolean ``cp_lrp``, ``start_layer`` out of range, a bad ``epsilon``.
    UnsupportedModelError
        A base model without a head, or attention weights that cannot be read.

    Notes
    -----
    Per batch: one forward + backward pass under AttnLRP's hooks (``R_A``) and one plain
    (``A``, ``grad A``); the explained logits are summed over rows, whose gradients do not
    mix. Hooks are removed on return, also on errors; parameters' ``.grad`` are untouched.
    ``meta["target"]`` holds the explained class / token ids, ``predictions`` the logits.

    Examples
    --------
    >>> model, tok = wb.zoo.sentiment_classifier()      # MiniLM with a sentiment head
    >>> exp = wb.CheferLRP(model).explain(["a wonderful film"], tokenizer=tok, target=1)
    >>> exp.feature_names[0], exp.values[0].shape        # one relevance per token
    (['a', 'wonderful', 'film'], (3,))
    >>> exp.feature_names[0][int(np.argmax(exp.values[0]))]
    'wonderful'

    References
    ----------
    .. [1] Chefer, Gur & Wolf (2021), "Transformer Interpretability Beyond Attention
       Visualization", CVPR.
    .. [2] Achtibat et al. (2024), "AttnLRP", ICML.
    """

    method = "chefer_lrp"

    def __init__(
        self,
        model: Any,
        *,
        start_layer: int = 0,
        cp_lrp: bool = False,
        epsilon: float = 1e-6,
        anatomy: Any = None,
    ) -> None:
        if not isinstance(cp_lrp, bool | np.bool_):
            raise InvalidParameterError(f"cp_lrp must be True or False, got {cp_lrp!r}.")
        super().__init__(model, start_layer=start_layer, anatomy=anatomy)
        from whybox.propagation.attnlrp import AttnLRP

        self.cp_lrp = bool(cp_lrp)
        self._lrp = AttnLRP(model, cp_lrp=self.cp_lrp, epsilon=epsilon, anatomy=self.anatomy)
        self.epsilon = self._lrp.epsilon

    def _params(self) -> dict[str, Any]:
        return {"start_layer": self.start_layer, "cp_lrp": self.cp_lrp, "epsilon": self.epsilon}

    def attention_relevance(
        self, kwargs: dict, targets: Sequence[int], positions: Sequence[int]
    ) -> tuple[Any, Any, Any]:
        """Patterns, their LRP relevance and their gradient for prepared model inputs.

        Parameters
        ----------
        kwargs : dict
            The model's keyword arguments (``input_ids`` (batch, pos), ``attention_mask``…).
        targets : sequence of int (batch,)
            Class / token id explained per row.
        positions : sequence of int (batch,)
            Position (index into ``pos``) of the explained logit per row; ignored for
            sequence classifiers.

        Returns
        -------
        maps, relevance, grads : torch.Tensor (layers, batch, heads, pos, pos), float
            ``A``, ``R_A = 1/2 · A ⊙ grad_LRP(A)`` (under AttnLRP's hooks) and the plain
            ``grad A``.
        """
        maps, relevance, grads, _, _ = self._passes(kwargs, targets, positions)
        return maps, relevance, grads

    def _passes(self, kwargs: dict, targets: Any, positions: Sequence[int]) -> tuple:
        """The plain pass and the AttnLRP pass: (maps, R_A, grads, targets, target logits).
        ``targets`` is a list, or a function of the plain pass's logits that picks them (so
        no extra forward pass is spent on choosing the default target)."""
        import torch

        from whybox.internals.hooks import registered

        rows = list(range(len(positions)))
        chosen: dict[str, Any] = {}

        def pick(logits: Any, t: Any) -> Any:
            return logits[rows, t] if logits.ndim == 2 else logits[rows, positions, t]

        def plain_metric(logits: Any) -> Any:
            chosen["t"] = targets(logits) if callable(targets) else list(targets)
            picked = pick(logits, chosen["t"])
            chosen["logit"] = picked.detach()
            return picked.sum()

        _, maps, grads = _capture(self.model, self.anatomy, kwargs, metric=plain_metric)
        store: dict[str, Any] = {"batch": len(rows)}
        handles: list[Any] = []

        def lrp_metric(logits: Any) -> Any:
            picked = pick(logits, chosen["t"])
            seed = self._lrp._seed(logits, picked, store, torch)  # the unembedding's epsilon
            return (picked * seed).sum()

        with registered(handles), torch.enable_grad():
            self._lrp._install(torch, handles, store)
            _, lrp_maps, lrp_grads = _capture(self.model, self.anatomy, kwargs, metric=lrp_metric)
        return maps, 0.5 * lrp_maps * lrp_grads, grads, chosen["t"], chosen["logit"]

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

        def resolve(logits: Any) -> Any:
            return _targets(logits, target, flat, tokenizer, self.anatomy.vocab_size)

        _, rel, grads, t, picked = self._passes(kwargs, resolve, flat)
        out = relevance_rows(rel, grads, valid, positions, start_layer=self.start_layer)
        preds = picked.to("cpu").double().numpy()
        return out, preds, {"target": t}

    def __repr__(self) -> str:
        return (
            f"CheferLRP({type(self.model).__name__}, start_layer={self.start_layer}, "
            f"cp_lrp={self.cp_lrp})"
        )


def explain_chefer_lrp(
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
    """``wb.explain(model, texts, tokenizer=tok, target=..., method="chefer_lrp", ...)``: the
    keywords of :class:`CheferLRP` (``start_layer``, ``cp_lrp``, ``epsilon``, ``anatomy``)
    and of its ``explain``. Deterministic, two forward + backward passes per text:
    ``random_state``, ``progress``, ``budget`` and ``tolerance`` are accepted and ignored."""
    init, call = _split(kwargs, _INIT, "method='chefer_lrp'")
    return CheferLRP(model, **init).explain(texts, target=target, **call)
