"""Read the residual stream in vocabulary space: the logit lens and direct logit attribution.

:func:`logit_lens` sends every layer's residual stream through the model's *own* final norm
and unembedding ("what would the model predict if it stopped here?"), so its last entry is
the model's own logits. :func:`direct_logit_attribution` splits one logit (or a logit
difference) at one position into the contributions of the embeddings, every attention head
(or attention layer) and every MLP, with the final norm's scale frozen at its value in the
real run: the contributions sum to the real logit difference.

Import torch lazily: this module does not import torch at import time.

References
----------
.. [1] nostalgebraist (2020), "interpreting GPT: the logit lens", LessWrong.
.. [2] Elhage et al. (2021), "A Mathematical Framework for Transformer Circuits",
       Transformer Circuits Thread (direct logit attribution, the residual stream as a sum).
.. [3] Wang et al. (2023), "Interpretability in the Wild: a Circuit for Indirect Object
       Identification in GPT-2 small", ICLR (logit differences, frozen LayerNorm scale).
.. [4] Nanda & Bloom (2022), TransformerLens (``accumulated_resid``, ``decompose_resid``,
       ``apply_ln_to_stack``, ``logit_attrs``), the oracle of the tests.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from whybox._validation import check_in, check_int
from whybox.errors import InvalidParameterError
from whybox.internals._dla import attribute as _dla_attribute
from whybox.internals._lens_base import (
    _anatomy,
    _capture,
    _decode,
    _prepare_inputs,
    _reader,
    _select,
    _stack_names,
    _token_id,
)
from whybox.internals.hooks import require_torch

__all__ = [
    "LogitLens",
    "TopTokens",
    "direct_logit_attribution",
    "logit_lens",
]

_SITES = ("resid_post", "resid_mid", "attn.out", "mlp.out")


# --------------------------------------------------------------------------- LogitLens ----
@dataclass(frozen=True)
class TopTokens:
    """The ``k`` most probable tokens of every lens entry.

    Attributes
    ----------
    ids : LongTensor of shape (layers, batch, pos, k)
    probs : Tensor of shape (layers, batch, pos, k)
        Their probabilities (softmax of the lens's logits over the vocabulary).
    tokens : ndarray of str, shape (layers, batch, pos, k), or None
        Their strings (``tokenizer.decode([id])``) when the lens has a tokenizer.
    """

    ids: Any
    probs: Any
    tokens: np.ndarray | None


class LogitLens:
    """What the model would predict at each layer: the result of :func:`logit_lens`.

    Attributes
    ----------
    logits : Tensor of shape (layers, batch, pos, vocab)
        ``unembed(final_norm(h))`` for each lens entry ``h``, with the model's own modules.
    labels : list of str
        One per entry: ``"embed"`` (the input of the first block: token plus position
        embeddings), ``"L3"`` (the output of block 3), ``"L3.mid"`` (between its attention
        and MLP) or ``"L3.attn"`` / ``"L3.mlp"`` for component outputs read alone.
    names : list of str
        The standard hook name of each entry (``"blocks.3.resid_post"``).
    input_ids : LongTensor of shape (batch, pos)
    model_logits : Tensor of shape (batch, pos, vocab)
        The model's own logits in the same run.
    tokenizer : tokenizer or None
    target : int, str, array or None
        The default target of :meth:`rank`, :meth:`prob` and :meth:`to_frame`.
    method : str
        ``"logit_lens"`` or ``"tuned_lens"``.
    """

    def __init__(
        self,
        logits: Any,
        *,
        labels: Sequence[str],
        names: Sequence[str],
        input_ids: Any,
        model_logits: Any,
        tokenizer: Any = None,
        target: Any = None,
        top_k: int = 5,
        method: str = "logit_lens",
    ) -> None:
        self.logits = logits
        self.labels = list(labels)
        self.names = list(names)
        self.input_ids = input_ids
        self.model_logits = model_logits
        self.tokenizer = tokenizer
        self.target = target
        self.top_k = check_int("top_k", top_k, minimum=1)
        self.method = method

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        n, b, p, v = self.logits.shape
        return (
            f"LogitLens({self.method}: {n} entries {self.labels[0]}..{self.labels[-1]}, "
            f"batch={b}, pos={p}, vocab={v})"
        )

    @property
    def log_probs(self) -> Any:
        """Log-softmax of :attr:`logits` over the vocabulary, in float32 or wider."""
        torch = require_torch()
        return torch.log_softmax(_wide(self.logits), dim=-1)

    @property
    def probs(self) -> Any:
        """Softmax of :attr:`logits` over the vocabulary, (layers, batch, pos, vocab)."""
        return self.log_probs.exp()

    def top_tokens(self, k: int | None = None) -> TopTokens:
        """The ``k`` (default ``top_k``) most probable tokens per entry, batch row and position."""
        torch = require_torch()
        k = check_int("k", self.top_k if k is None else k, minimum=1, maximum=self.logits.shape[-1])
        values, ids = torch.topk(_wide(self.logits), k, dim=-1)
        probs = (values - torch.logsumexp(_wide(self.logits), dim=-1, keepdim=True)).exp()
        tokens = None
        if self.tokenizer is not None:
            flat = _decode(self.tokenizer, ids.reshape(-1).tolist())
            tokens = np.array(flat, dtype=object).reshape(tuple(ids.shape))
        return TopTokens(ids=ids, probs=probs, tokens=tokens)

    def _targets(self, target: Any) -> Any:
        """Target ids as a LongTensor (batch, pos); -1 marks "no target"."""
        torch = require_torch()
        target = self.target if target is None else target
        _, b, p, v = self.logits.shape
        if target is None:
            raise InvalidParameterError(
                "no target: pass target= (a token id, a one-token string, or ids of shape "
                "(batch,) or (batch, pos)) here or to logit_lens."
            )
        if isinstance(target, str):
            target = _token_id(self.tokenizer, target, v)
        if isinstance(target, numbers.Integral) and not isinstance(target, bool):
            t = torch.full((b, p), int(target), dtype=torch.long)
        else:
            t = torch.as_tensor(np.asarray(target.cpu() if hasattr(target, "cpu") else target))
            if t.dtype.is_floating_point or t.dtype == torch.bool:
                raise InvalidParameterError(f"target ids must be integers, got dtype {t.dtype}.")
            t = t.long()
            if t.ndim == 1 and t.shape[0] == b:
                t = t[:, None].expand(b, p)
            elif t.ndim == 1 and b == 1 and t.shape[0] == p:
                t = t[None, :]
            elif t.ndim != 2 or tuple(t.shape) != (b, p):
                raise InvalidParameterError(
                    f"target ids of shape {tuple(t.shape)} fit neither (batch,)=({b},) nor "
                    f"(batch, pos)=({b}, {p}). Use -1 where a position has no target."
                )
        if int(t.max()) >= v or int(t.min()) < -1:
            raise InvalidParameterError(
                f"target ids must lie in [0, {v}) (or -1 for none), got {int(t.min())} to "
                f"{int(t.max())}."
            )
        return t.to(self.logits.device)

    def rank(self, target: Any = None) -> Any:
        """Rank of the target token per entry, batch row and position (0 = the top token).

        The rank counts the tokens with a strictly larger logit (ties share the better
        rank). Returns a LongTensor (layers, batch, pos); -1 where the target is -1.
        """
        torch = require_torch()
        t = self._targets(target)
        safe = t.clamp(min=0)
        own = torch.gather(self.logits, -1, safe[None, ..., None].expand(len(self), -1, -1, 1))
        rank = (self.logits > own).sum(-1)
        return torch.where(t[None] >= 0, rank, torch.full_like(rank, -1))

    def prob(self, target: Any = None) -> Any:
        """Probability of the target token, (layers, batch, pos); NaN where the target is -1."""
        torch = require_torch()
        t = self._targets(target)
        lp = self.log_probs
        own = torch.gather(lp, -1, t.clamp(min=0)[None, ..., None].expand(len(self), -1, -1, 1))
        p = own[..., 0].exp()
        return torch.where(t[None] >= 0, p, torch.full_like(p, float("nan")))

    def kl_to_final(self) -> Any:
        """KL(model || lens) in nats per entry, batch row and position, (layers, batch, pos).

        The divergence of the lens's distribution from the model's own output distribution,
        the quantity the tuned lens minimises (Belrose et al. 2023).
        """
        return _kl(self.model_logits, self.logits)

    def to_frame(self, target: Any = None, top_k: int | None = None) -> Any:
        """One row per (entry, batch row, position): the top tokens and the target's rank
        and probability.

        Columns: ``entry`` (index), ``label``, ``batch``, ``position``, ``input_token``,
        ``top_1`` .. ``top_k`` (strings with a tokenizer, else ids), ``top_1_prob`` ..,
        ``kl_to_final`` and, with a target, ``target``, ``target_rank``, ``target_prob``.
        """
        import pandas as pd

        top = self.top_tokens(top_k)
        n, b, p, k = top.ids.shape
        grid = np.indices((n, b, p)).reshape(3, -1)
        frame: dict[str, Any] = {
            "entry": grid[0],
            "label": np.asarray(self.labels, dtype=object)[grid[0]],
            "batch": grid[1],
            "position": grid[2],
        }
        ids_in = self.input_ids.detach().cpu().numpy()
        in_tok = (
            _decode(self.tokenizer, ids_in.reshape(-1).tolist())
            if self.tokenizer is not None
            else ids_in.reshape(-1).tolist()
        )
        frame["input_token"] = np.asarray(in_tok, dtype=object).reshape(b, p)[grid[1], grid[2]]
        names = top.tokens if top.tokens is not None else top.ids.cpu().numpy()
        probs = top.probs.detach().cpu().numpy()
        for j in range(k):
            frame[f"top_{j + 1}"] = names[..., j].reshape(-1)
        for j in range(k):
            frame[f"top_{j + 1}_prob"] = probs[..., j].reshape(-1)
        frame["kl_to_final"] = self.kl_to_final().detach().cpu().numpy().reshape(-1)
        if target is not None or self.target is not None:
            t = self._targets(target)
            frame["target"] = np.broadcast_to(t.cpu().numpy()[None], (n, b, p)).reshape(-1)
            frame["target_rank"] = self.rank(t).cpu().numpy().reshape(-1)
            frame["target_prob"] = self.prob(t).detach().cpu().numpy().reshape(-1)
        return pd.DataFrame(frame)


def _kl(final_logits: Any, logits: Any) -> Any:
    """KL(softmax(final) || softmax(logits)) over the last axis, in float64 (the difference
    of two log-probabilities loses digits in float32), one entry at a time if stacked."""
    torch = require_torch()
    final = torch.log_softmax(final_logits.double(), dim=-1)
    p = final.exp()

    def one(x: Any) -> Any:
        return (p * (final - torch.log_softmax(x.double(), dim=-1))).sum(-1)

    if logits.ndim == final_logits.ndim + 1:
        return torch.stack([one(x) for x in logits])
    return one(logits)


def _wide(t: Any) -> Any:
    """``t`` in float32 at least (half-precision logits are widened for softmax)."""
    torch = require_torch()
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def logit_lens(
    model: Any,
    inputs: Any,
    *,
    anatomy: Any = None,
    layers: Any = None,
    site: str = "resid_post",
    target: Any = None,
    top_k: int = 5,
    tokenizer: Any = None,
) -> LogitLens:
    """The logit lens: every layer's residual stream read through the model's own final norm
    and unembedding.

    Parameters
    ----------
    model : torch.nn.Module
        A ``transformers`` model with a language-model head (or any model the
        :class:`~whybox.internals.anatomy.Anatomy` understands, with an unembedding).
    inputs : LongTensor (batch, pos), mapping (BatchEncoding), str or list of str
        Token ids, the tokenizer's output, or text (then ``tokenizer`` is needed).
    anatomy : Anatomy, optional
        Built with ``Anatomy.of(model)`` when None.
    layers : int, str or sequence of them, optional
        The entries to read (index into the full stack, negative from the end, or labels
        such as ``"L3"``); all by default.
    site : {"resid_post", "resid_mid", "attn.out", "mlp.out"}
        ``"resid_post"`` (default): entry 0 is ``"embed"``, the input of the first block
        (token plus position embeddings, as TransformerLens's ``accumulated_resid``), then
        the output of each block ``"L0"`` .. ``"L{n-1}"``; so there are ``n_layers + 1``
        entries and the last is the final norm's input. ``"resid_mid"`` adds the residual
        between each block's attention and MLP (``"L3.mid"``). ``"attn.out"`` / ``"mlp.out"``
        read each block's sublayer output alone (one entry per block).
    target : int, str, LongTensor (batch,) or (batch, pos), optional
        Default target token of the result's ``rank``, ``prob`` and ``to_frame`` (-1 marks
        positions without one).
    top_k : int, default 5
        Default ``k`` of the result's ``top_tokens`` and ``to_frame``.
    tokenizer : tokenizer, optional
        For text inputs, string targets and token strings.

    Returns
    -------
    LogitLens
        ``.logits`` of shape (layers, batch, pos, vocab). With ``site="resid_post"`` and all
        layers, ``.logits[-1]`` equals the model's own logits (the same modules run on the
        same tensor).

    Raises
    ------
    InvalidParameterError
        An unknown ``site``, a layer index or label that does not exist, an empty ``layers``.
    InvalidInputError
        Text without a tokenizer, ragged or non-integer token ids, token ids outside the
        vocabulary.
    UnsupportedModelError
        A model without an unembedding (no language-model head), or whose hook points do not
        run in its forward pass.

    Examples
    --------
    >>> import torch
    >>> model, tok = wb.zoo.tiny_lm()
    >>> ids = tok("The for statement is used to", return_tensors="pt").input_ids
    >>> lens = wb.logit_lens(model, ids, tokenizer=tok)
    >>> lens.labels, tuple(lens.logits.shape)              # (entries, batch, pos, vocab)
    (['embed', 'L0', 'L1', 'L2', 'L3'], (5, 1, 6, 2048))
    >>> torch.allclose(lens.logits[-1], model(ids).logits, atol=1e-5)   # last = the output
    True

    Notes
    -----
    Each entry goes through the final norm with its *own* statistics (the norm is
    recomputed, as TransformerLens's ``accumulated_resid(apply_ln=True)`` does for the
    unembedding), and through the same soft cap as the model (Gemma 2).

    References
    ----------
    .. [1] nostalgebraist (2020), "interpreting GPT: the logit lens", LessWrong.
    .. [2] Belrose et al. (2023), "Eliciting Latent Predictions from Transformers with the
           Tuned Lens", arXiv:2303.08112 (the lens's KL to the final distribution).
    """
    torch = require_torch("the logit lens")
    anat = _anatomy(model, anatomy)
    check_in("site", site, _SITES)
    if anat.unembed is None:
        anat.W_U()  # raises the anatomy's message (no lm_head)
    kwargs, ids = _prepare_inputs(model, inputs, tokenizer, anat)
    names, labels = _stack_names(anat, site)
    chosen = _select(len(names), layers, labels)
    last = f"blocks.{anat.n_layers - 1}.resid_post"
    wanted = list(dict.fromkeys([names[i] for i in chosen] + [last]))
    model_logits, store = _capture(model, kwargs, [anat.point(n) for n in wanted])
    read = _reader(model, anat, kwargs, store[last], model_logits)
    with torch.no_grad():
        logits = torch.stack([read(store[names[i]]) for i in chosen])
    return LogitLens(
        logits,
        labels=[labels[i] for i in chosen],
        names=[names[i] for i in chosen],
        input_ids=ids,
        model_logits=model_logits,
        tokenizer=tokenizer,
        target=target,
        top_k=top_k,
    )


# ------------------------------------------------------------ direct logit attribution ----
def direct_logit_attribution(
    model: Any,
    inputs: Any,
    *,
    target: Any,
    position: Any = -1,
    anatomy: Any = None,
    by: str = "head",
    tokenizer: Any = None,
) -> Any:
    """Each component's direct contribution to a logit (difference) at one position.

    The residual stream entering the final norm is a sum of the embeddings and every
    sublayer's output. With the final norm's scale frozen at its value in this run (and
    LayerNorm's centering applied to each component, which is linear), the final norm and
    unembedding become linear, so the metric ``logits[position] @ v`` splits exactly into
    one term per component plus the constant terms.

    Parameters
    ----------
    model : torch.nn.Module
        A pre-norm transformer with a linear unembedding (GPT-2, Llama, Mistral, Qwen, Gemma,
        Phi, GPT-NeoX, ...).
    inputs : LongTensor (batch, pos), mapping, str or list of str
        Token ids, the tokenizer's output, or text (then ``tokenizer`` is needed).
    target : int, str, (correct, wrong), array (batch, 2), array (batch,) or float array
        The metric: a token's logit, a logit difference ``logit[correct] - logit[wrong]``
        (one pair, or one per batch row), or ``logits @ v`` for a direction ``v`` over the
        vocabulary ``(vocab,)`` or ``(batch, vocab)``.
    position : int or sequence of int, default -1
        The position read, one for all rows or one per row (e.g. the last real token of
        right-padded rows).
    anatomy : Anatomy, optional
        Built with ``Anatomy.of(model)`` when None.
    by : {"head", "component"}
        ``"head"``: players ``embed``, ``pos_embed`` (models with learned positions),
        ``L{l}.H{h}`` for each head (its output through the output projection) and
        ``L{l}.mlp``, then ``bias``: the attention output biases, the final norm's bias and
        the unembedding bias. ``"component"``: ``L{l}.attn`` (the whole attention output,
        its bias included) in place of the heads; ``bias`` then holds the final norm's and
        the unembedding's biases.
    tokenizer : tokenizer, optional
        For text inputs and string targets.

    Returns
    -------
    Explanation
        ``values`` (batch, players) summing to ``predictions`` (batch,), the metric at the
        real run (a logit difference, before Gemma 2's soft cap). ``meta`` holds the frozen
        scale per row (``final_norm_scale``), the norm kind (``final_norm``), the position
        read per row (``position``), the parts of ``bias`` per row (``bias_attn_out``,
        ``bias_final_norm``, ``bias_unembed``) and ``completeness_gap`` (the real metric
        minus the sum, float rounding; as ``exp.completeness_gap()``). ``data`` is None:
        ``params["output"]`` names the metric (``"logit[' Paris'] - logit[' Rome']"``).

    Raises
    ------
    UnsupportedModelError
        For post-LN models (BERT: each block normalises its output, so the residual stream
        is not a sum of contributions), for ``by="head"`` on a model whose attention output
        is not the sum of its heads' projections (Gemma 2 normalises it), or for a final norm
        whose form is unknown.

    Examples
    --------
    >>> model, tok = wb.zoo.tiny_lm()
    >>> ids = tok("The for statement is used to", return_tensors="pt").input_ids
    >>> exp = wb.direct_logit_attribution(model, ids, target=" the", tokenizer=tok, by="component")
    >>> exp.feature_names[:4], exp.values.shape            # one value per component
    (['embed', 'pos_embed', 'L0.attn', 'L0.mlp'], (1, 11))
    >>> logit = model(ids).logits[0, -1, tok(" the").input_ids[0]].item()
    >>> bool(np.isclose(exp.values.sum(), logit, atol=1e-4))  # the parts sum to the logit
    True

    Notes
    -----
    The contributions are computed in float64 from the captured activations. For LayerNorm,
    each component ``c`` contributes ``gamma * (c - mean(c)) / s @ W_U v`` with ``s`` the
    norm's scale (``sqrt(var(x) + eps)`` of the real input ``x``); for RMSNorm, without the
    centering (``s = sqrt(mean(x^2) + eps)``). This is TransformerLens's
    ``apply_ln_to_stack`` followed by ``logit_attrs`` on a model whose final norm weight is
    folded into ``W_U``.

    References
    ----------
    .. [1] Elhage et al. (2021), "A Mathematical Framework for Transformer Circuits".
    .. [2] Wang et al. (2023), "Interpretability in the Wild", ICLR.
    """
    return _dla_attribute(
        model,
        inputs,
        target=target,
        position=position,
        anatomy=anatomy,
        by=by,
        tokenizer=tokenizer,
    )
