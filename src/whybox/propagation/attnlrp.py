"""AttnLRP: layer-wise relevance propagation through transformers, by op type, in one backward pass.

``AttnLRP(model).explain(input_ids, target=...)`` attributes one logit of the user's own Hugging
Face model (causal LM, masked LM or sequence classifier) to its input tokens with the rules of
Achtibat et al. (2024) [1]_. Nothing of the model is copied or rewritten: for the time of one
call, temporary hooks on the model's own modules change *how gradients flow* so that at every
tensor ``x`` of the forward pass ``x * grad(x)`` is the LRP relevance of ``x``. The relevance of
token ``t`` is then ``sum_d e[t, d] * grad(e)[t, d]`` over the token embedding ``e``: one
forward and one backward pass, as Input x Gradient.

Rules (each is "modified gradient x input"; ``g`` is the gradient arriving at an op's output)

========================  ==========================  ==========================================
op                        rule [1]_                    how it is imposed here
========================  ==========================  ==========================================
linear ``z = W x + b``    epsilon                      ``g * |z| / (|z| + epsilon)`` at ``z`` (a
(``nn.Linear``, HF                                     gradient hook); the bias absorbs its
``Conv1D``)                                            share. ``epsilon=0`` adds no hook.
GELU / SiLU / any         identity (``R_in = R_out``)  output rebuilt as ``x * (f(x) / x)`` with the
elementwise activation                                 ratio detached
LayerNorm / RMSNorm       identity (scale detached)    output rebuilt as ``c * ((y - b) / c)`` with
                                                       the ratio detached; ``c = x - mean(x)``
                                                       (LayerNorm) or ``x`` (RMSNorm)
gated product             uniform (half each)          gradient at each input projection of a
``act(gate) * up``                                     gated MLP times 0.5
``A @ V``                 uniform (half each)          gradient at the value projection times 0.5
                                                       (and the half of ``A`` folded into q, k)
softmax                   ``R_in = x (R_out - s        the ordinary softmax gradient: the paper's
                          sum R_out)``                 rule is exactly gradient x input at the
                                                       softmax input; nothing changed
``Q @ K^T``               uniform (half each)          gradient at the q and k projections times
                                                       0.25 (this half times ``A``'s half)
========================  ==========================  ==========================================

Why gradient scaling at the projections is the same as rules at the matmuls: the backward pass
is linear in the arriving gradient, and between a projection's output and its matmul there are
only linear ops (reshape, RoPE, the ``1 / sqrt(d)`` scale, head repetition for grouped-query
attention) and the softmax, whose rule is its gradient. So the attention function itself,
``eager_attention_forward`` or SDPA, is never touched, wrapped or recomputed, and any attention
implementation that computes ``softmax(Q K^T / sqrt(d) + mask) V`` works unchanged.
(tested: SDPA and eager attention give the same relevance). A projection's gradient factor and
the epsilon rule are applied by tensor hooks on the projection's output; elementwise rules
rebuild a module's output from its own input and output (forward values equal to rounding).

CP-LRP (``cp_lrp=True``, Ali et al. 2022 [2]_, the "attention as constant" variant compared in
[1]_): the attention weights are treated as constants, so relevance flows only through the
values: the value projection keeps its whole gradient and q and k get none.

Conservation. The rules are conservative except where the paper lets relevance go: biases
(absorbed by the epsilon rule), the softmax (its rule is a linearisation with a bias term,
``sum_i R_in = sum_i x_i s_i (g_i - sum_j s_j g_j)``), epsilon itself, position and token-type
embeddings (their relevance is reported separately), and a LayerNorm's bias.
``meta["conservation"]`` gives, per example, the target logit, the summed token relevance, the
position-embedding relevance and the gap.

Limits. Elementwise ops that are not modules (Gemma 2's attention soft cap ``tanh``, a model's
hand-written ``x * sigmoid(x)``) keep their ordinary gradient; a leaf module with parameters of
an unknown type raises :class:`~whybox.errors.UnsupportedModelError` naming it and the ``rules=``
entry that assigns it a rule.

References
----------
.. [1] Achtibat, R., Hatefi, S. M. V., Dreyer, M., Jain, A., Wiegand, T., Lapuschkin, S. &
   Samek, W. (2024). "AttnLRP: Attention-aware layer-wise relevance propagation for
   transformers". ICML 2024.
.. [2] Ali, A., Schnake, T., Eberle, O., Montavon, G., Müller, K.-R. & Wolf, L. (2022). "XAI for
   transformers: better explanations through conservative propagation". ICML 2022.
.. [3] Bach, S. et al. (2015). "On pixel-wise explanations for non-linear classifier decisions by
   layer-wise relevance propagation". PLOS ONE.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from whybox.errors import InvalidInputError, InvalidParameterError, UnsupportedModelError
from whybox.explanation import Explanation
from whybox.internals.hooks import as_model_inputs, get_module, output_logits, registered
from whybox.propagation._attnlrp_rules import (
    RULES,
    activation_hook,
    classify_modules,
    grad_scale_hook,
    norm_hook,
)
from whybox.propagation.rollout import _token_names

__all__ = ["AttnLRP"]


class AttnLRP:
    """AttnLRP relevance of input tokens for one output logit, on the user's own model.

    Parameters
    ----------
    model : torch.nn.Module
        A ``transformers`` causal LM, masked LM or sequence classifier (any model
        :class:`~whybox.internals.anatomy.Anatomy` understands), in eval mode.
    cp_lrp : bool, default False
        Treat the attention weights as constants (CP-LRP [2]_): relevance flows only through
        the values.
    epsilon : float, default 1e-6
        Stabiliser of the epsilon rule on linear layers; ``0`` leaves linear layers to plain
        gradient x input (the epsilon rule's limit) and adds no hook there.
    rules : mapping, optional
        Extra rules by module class name or module path: ``"epsilon"`` (linear-like),
        ``"identity"`` (elementwise activation), ``"norm"`` / ``"rmsnorm"`` (centring /
        non-centring normalisation) or ``"pass"`` (ordinary gradient).
    anatomy : Anatomy, optional
        A prepared ``Anatomy.of(model, ...)`` for a model that needs overrides.

    Raises
    ------
    InvalidParameterError
        A negative ``epsilon``, an unknown rule name; from ``explain``, a target outside
        the output range or a position outside the sequence.
    UnsupportedModelError
        From ``explain``: an embedding that does not run, or an output that is not logits.
    ModelCallError
        From ``explain``: the model raised (the original error is chained).

    Examples
    --------
    >>> model, tok = wb.zoo.tiny_lm()
    >>> enc = tok("The for statement is used to", return_tensors="pt")
    >>> exp = wb.AttnLRP(model).explain(enc, target=tok.encode(" the")[0], tokenizer=tok)
    >>> exp.feature_names[0], exp.values[0].shape   # the text of each token
    (['The', ' for', ' statement', ' is', ' used', ' to'], (6,))
    >>> sorted(exp.meta["conservation"][0])[:3]         # how much of the logit is conserved
    ['gap', 'position_relevance', 'relative_gap']

    References
    ----------
    .. [1] Achtibat et al. (2024), "AttnLRP: Attention-aware layer-wise relevance propagation
       for transformers", ICML.
    .. [2] Ali et al. (2022), "XAI for transformers: better explanations through conservative
       propagation", ICML.
    """

    def __init__(
        self,
        model: Any,
        *,
        cp_lrp: bool = False,
        epsilon: float = 1e-6,
        rules: Mapping[str, str] | None = None,
        anatomy: Any = None,
    ) -> None:
        from whybox.internals.anatomy import Anatomy

        if not np.isfinite(epsilon) or epsilon < 0:
            raise InvalidParameterError(
                f"epsilon must be a finite number >= 0 (1e-6 is usual), got {epsilon!r}."
            )
        for key, rule in (rules or {}).items():
            if rule not in RULES:
                raise InvalidParameterError(
                    f"rules[{key!r}] = {rule!r} is not a rule; choose one of {sorted(RULES)}."
                )
        self.model = model
        self.cp_lrp = bool(cp_lrp)
        self.epsilon = float(epsilon)
        self.rules = dict(rules or {})
        self.anatomy = Anatomy.for_model(model, anatomy)
        self._plan = classify_modules(model, self.anatomy, self.rules)

    # ------------------------------------------------------------------ hooks ----------
    def _qkv_factors(self) -> tuple[float, float]:
        """Gradient factors of the q/k and v projections."""
        return (0.0, 1.0) if self.cp_lrp else (0.25, 0.5)

    def _install(self, torch: Any, handles: list[Any], store: dict[str, Any]) -> None:
        model, plan = self.model, self._plan
        eps = self.epsilon
        f_qk, f_v = self._qkv_factors()

        def leaf_capture(key: str) -> Any:
            def hook(module: Any, args: Any, output: Any) -> Any:
                leaf = output.detach()
                n = store["batch"]
                if leaf.ndim == 3 and leaf.shape[0] == 1 and n > 1:  # shared position rows
                    leaf = leaf.expand(n, *leaf.shape[1:]).contiguous()
                leaf.requires_grad_(True)
                store[key] = leaf
                return leaf

            return hook

        def leaf_output(key: str) -> Any:
            def hook(module: Any, args: Any, output: Any) -> None:
                store[key] = output

            return hook

        emb = get_module(model, self.anatomy.embed_path)
        handles.append(emb.register_forward_hook(leaf_capture("embed")))
        if self.anatomy.pos_embed_path is not None:
            pos = get_module(model, self.anatomy.pos_embed_path)
            handles.append(pos.register_forward_hook(leaf_capture("pos_embed")))
        for path, (kind, extra) in plan.items():
            module = get_module(model, path)
            if kind == "linear":
                factor: Any = extra.get("factor", 1.0)
                if extra.get("role") == "qk":
                    factor = f_qk
                elif extra.get("role") == "v":
                    factor = f_v
                elif extra.get("role") == "qkv":
                    factor = torch.tensor(
                        [f_qk if s in "qk" else f_v for s in extra["layout"]],
                        dtype=torch.float32,
                    )
                if eps == 0 and isinstance(factor, float) and factor == 1.0:
                    continue
                if path == self.anatomy.unembed_path and factor == 1.0:
                    handles.append(module.register_forward_hook(leaf_output("unembed")))
                    continue
                handles.append(module.register_forward_hook(grad_scale_hook(factor, eps)))
            elif kind == "identity":
                handles.append(module.register_forward_hook(activation_hook))
            elif kind == "norm":
                handles.append(module.register_forward_hook(norm_hook(centred=extra["centred"])))

    # ------------------------------------------------------------------ explain --------
    def explain(
        self,
        inputs: Any,
        target: int | str | Sequence[int] | None = None,
        *,
        position: int = -1,
        tokenizer: Any = None,
    ) -> Explanation:
        """Relevance of each input token for the target logit.

        Parameters
        ----------
        inputs : torch.Tensor of int, shape (batch, pos) or (pos,), or a BatchEncoding / mapping
            Token ids, or the model's keyword arguments (``attention_mask`` marks padding,
            left or right; padded positions get no relevance and are left out of the rows).
        target : int, str, sequence of int, or None
            Token id (LMs) or class index (sequence classifiers), one for all examples or one
            per example; a str is a single token of ``tokenizer``'s vocabulary; None takes the
            model's top prediction.
        position : int, default -1
            For token-level outputs (LMs), the position whose logit is explained, counted among
            each example's real (unpadded) tokens: -1 is its last token.
        tokenizer : optional
            Names the tokens and resolves a str target. A token is named by the text it
            stands for (its ``tokenizer.decode``: ``' for'``, not byte-level BPE's
            ``'Ġfor'``), a special token by its token string, as whybox's text explainers
            name them.

        Returns
        -------
        Explanation
            Ragged: ``values[i]`` of shape (n_tokens_i,), relevance of each real token of
            example i (sum over the embedding dimension); ``predictions`` the target logits,
            ``base_values`` 0, so ``completeness_gap()`` is the conservation gap.
            ``meta["conservation"][i]``: ``target_logit``, ``relevance_sum``,
            ``position_relevance``, ``gap`` (logit - token relevance - position relevance)
            and ``relative_gap`` (gap / |logit|). ``meta["target_names"][i]``: the target
            token's text (LMs; its id without a tokenizer) or its class label
            (``config.id2label``; sequence classifiers).

        Raises
        ------
        InvalidInputError
            Inputs that are not token ids / a mapping, or a padded-out example.
        InvalidParameterError
            A target outside the output range, a str target without a tokenizer or that is
            several tokens, a position outside the sequence.
        """
        import torch

        kwargs = as_model_inputs(self.model, inputs, vocab_size=self.anatomy.vocab_size)
        ids = kwargs.get("input_ids")
        if not isinstance(ids, torch.Tensor):
            raise InvalidInputError(
                "AttnLRP needs input_ids (token ids or a BatchEncoding holding them); "
                "inputs_embeds alone are not supported."
            )
        batch, seq = ids.shape
        mask = kwargs.get("attention_mask")
        real = (
            torch.ones_like(ids, dtype=torch.bool) if mask is None else mask.to(torch.bool)
        ).cpu()
        if not bool(real.any(dim=1).all()):
            raise InvalidInputError("an example has no real token: its attention_mask is all 0.")
        store: dict[str, Any] = {"batch": batch}
        handles: list[Any] = []
        with registered(handles), torch.enable_grad():
            self._install(torch, handles, store)
            try:
                out = output_logits(self.model(**kwargs))
            except Exception as exc:  # keep whybox errors, wrap model errors
                from whybox.errors import ModelCallError, WhyboxError

                if isinstance(exc, WhyboxError):
                    raise
                raise ModelCallError(f"the model raised {type(exc).__name__}: {exc}") from exc
            if "embed" not in store:
                raise UnsupportedModelError(
                    f"the token embedding {self.anatomy.embed_path!r} did not run in the "
                    "forward pass; pass Anatomy(model, embed='path') as anatomy=."
                )
            selected, positions = self._select(out, real, position, batch, seq)
            targets = self._targets(target, selected, tokenizer, batch)
            chosen = selected.gather(1, targets[:, None].to(selected.device))[:, 0]
            seed = self._seed(out, chosen, store, torch)
            leaves = [store["embed"]] + ([store["pos_embed"]] if "pos_embed" in store else [])
            grads = torch.autograd.grad(chosen, leaves, grad_outputs=seed, allow_unused=True)
        emb_rel = (leaves[0] * grads[0]).sum(-1).detach().double().cpu().numpy()
        pos_rel = np.zeros(batch)
        if len(leaves) > 1 and grads[1] is not None:
            pr = (leaves[1] * grads[1]).sum(-1).detach().double().cpu()
            pos_rel = (pr * real).sum(-1).numpy()
        logits = chosen.detach().double().cpu().numpy()
        return self._explanation(ids, real, emb_rel, pos_rel, logits, targets, positions, tokenizer)

    def _seed(self, out: Any, chosen: Any, store: dict[str, Any], torch: Any) -> Any:
        """Gradient seed of the chosen logits. When the unembedding's output is the model's
        logits, its epsilon rule is applied here to the chosen entries only (the gradient is 0
        elsewhere), rather than by a hook over the whole (batch, pos, vocab) tensor."""
        seed = torch.ones_like(chosen)
        unembed = store.pop("unembed", None)
        if unembed is None or self.epsilon == 0:
            return seed
        if unembed is out:
            a = chosen.detach().abs()
            return seed * (a / (a + self.epsilon))
        grad_scale_hook(1.0, self.epsilon)(None, (), unembed)  # logits computed after it
        return seed

    def _select(self, out: Any, real: Any, position: int, batch: int, seq: int) -> Any:
        """The output row explained per example: (batch, n_outputs), and its positions."""
        import torch

        if out.ndim == 2:  # sequence classifier
            return out, [None] * batch
        if out.ndim != 3 or out.shape[:2] != (batch, seq):
            raise UnsupportedModelError(
                f"the model's output has shape {tuple(out.shape)}; AttnLRP explains (batch, "
                "classes) or (batch, pos, vocab) logits."
            )
        if not isinstance(position, int | np.integer):
            raise InvalidParameterError(f"position must be an int, got {position!r}.")
        positions = []
        for i in range(batch):
            idx = torch.nonzero(real[i]).flatten()
            if not -len(idx) <= position < len(idx):
                raise InvalidParameterError(
                    f"position {position} is outside example {i}, which has {len(idx)} real "
                    f"tokens (valid: {-len(idx)} to {len(idx) - 1})."
                )
            positions.append(int(idx[position]))
        index = torch.tensor(positions, device=out.device)
        return out[torch.arange(batch, device=out.device), index], positions

    def _targets(self, target: Any, selected: Any, tokenizer: Any, batch: int) -> Any:
        import torch

        n_out = selected.shape[-1]
        if target is None:
            return selected.detach().argmax(-1).cpu()
        if isinstance(target, str):
            if tokenizer is None:
                raise InvalidParameterError(
                    f"target {target!r} is a string: pass tokenizer= to turn it into a token "
                    "id, or pass the id."
                )
            tids = tokenizer.encode(target, add_special_tokens=False)
            if len(tids) != 1:
                raise InvalidParameterError(
                    f"target {target!r} is {len(tids)} tokens ({tids}); AttnLRP explains one "
                    "logit: pass one token (its first id, or a string that is one token)."
                )
            target = tids[0]
        arr = np.atleast_1d(np.asarray(target))
        if arr.ndim != 1 or arr.dtype.kind not in "iu" or len(arr) not in (1, batch):
            raise InvalidParameterError(
                f"target must be an int or one int per example ({batch}), got {target!r}."
            )
        if arr.min() < 0 or arr.max() >= n_out:
            raise InvalidParameterError(
                f"target {target!r} is outside the model's {n_out} outputs (vocabulary or "
                f"classes: 0 to {n_out - 1})."
            )
        return torch.as_tensor(np.broadcast_to(arr, (batch,)).copy(), dtype=torch.long)

    def _explanation(
        self, ids, real, emb_rel, pos_rel, logits, targets, positions, tokenizer
    ) -> Explanation:
        values, names, id_rows, conservation = [], [], [], []
        for i in range(ids.shape[0]):
            keep = real[i].numpy()
            row_ids = ids[i].cpu().numpy()[keep].tolist()
            vals = emb_rel[i][keep]
            if tokenizer is not None:
                toks = _token_names(tokenizer, row_ids)
            else:
                toks = [f"[{t}]" for t in row_ids]
            values.append(vals)
            names.append(toks)
            id_rows.append(row_ids)
            total = float(vals.sum())
            gap = float(logits[i]) - total - float(pos_rel[i])
            conservation.append(
                {
                    "target_logit": float(logits[i]),
                    "relevance_sum": total,
                    "position_relevance": float(pos_rel[i]),
                    "gap": gap,
                    "relative_gap": gap / max(abs(float(logits[i])), 1e-12),
                }
            )
        if positions and positions[0] is None:  # classes: named by the config, not the vocabulary
            labels = getattr(getattr(self.model, "config", None), "id2label", None) or {}
            tnames = [str(labels.get(int(t), int(t))) for t in targets]
        elif tokenizer is not None:
            tnames = _token_names(tokenizer, targets.tolist())
        else:
            tnames = [str(int(t)) for t in targets]
        return Explanation(
            values,
            base_values=0.0,
            data=[list(n) for n in names],
            feature_names=names,
            predictions=logits.astype(float),
            method="attnlrp" if not self.cp_lrp else "cp_lrp",
            params={"cp_lrp": self.cp_lrp, "epsilon": self.epsilon},
            meta={
                "conservation": conservation,
                "input_ids": id_rows,
                "target": [int(t) for t in targets],
                "target_names": tnames,
                "positions": positions,
            },
        )

    def __repr__(self) -> str:
        return (
            f"AttnLRP({type(self.model).__name__}, cp_lrp={self.cp_lrp}, epsilon={self.epsilon:g})"
        )
