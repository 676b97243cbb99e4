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

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from whybox._validation import check_in, check_int
from whybox.errors import InvalidInputError, InvalidParameterError, UnsupportedModelError
from whybox.internals import hooks
from whybox.internals.hooks import HookPoint, require_torch

__all__ = [
    "LogitLens",
    "TopTokens",
    "direct_logit_attribution",
    "logit_lens",
]

_SITES = ("resid_post", "resid_mid", "attn.out", "mlp.out")


# ----------------------------------------------------------------------------- helpers ----
def _anatomy(model: Any, anatomy: Any) -> Any:
    from whybox.internals.anatomy import Anatomy

    if anatomy is None:
        return Anatomy.of(model)
    if not isinstance(anatomy, Anatomy):
        raise InvalidParameterError(
            f"anatomy must be a whybox Anatomy (Anatomy.of(model)), got {type(anatomy).__name__}."
        )
    if anatomy.model is not model:
        raise InvalidParameterError(
            "anatomy describes another model than the one passed: build it with "
            "Anatomy.of(model) for this model (or pass anatomy=None)."
        )
    return anatomy


def _prepare_inputs(model: Any, inputs: Any, tokenizer: Any, anat: Any) -> tuple[Any, Any]:
    """(model keyword arguments, input_ids (batch, pos)) from ids, a mapping or text."""
    torch = require_torch()
    if isinstance(inputs, str) or (
        isinstance(inputs, Sequence)
        and not isinstance(inputs, str)
        and len(inputs) > 0
        and all(isinstance(t, str) for t in inputs)
    ):
        if tokenizer is None:
            raise InvalidInputError(
                "inputs are text but no tokenizer was given: pass tokenizer=... (the model's "
                "own, e.g. AutoTokenizer.from_pretrained(model_dir)) or token ids."
            )
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        if len(texts) > 1 and getattr(tokenizer, "pad_token", None) is None:
            raise InvalidInputError(
                f"{len(texts)} texts of different lengths need padding, but the tokenizer has "
                "no pad token. Set tokenizer.pad_token = tokenizer.eos_token, or pass one text."
            )
        enc = tokenizer(texts, return_tensors="pt", padding=len(texts) > 1)
        device = hooks.model_device(model)
        inputs = {k: v.to(device) for k, v in enc.items() if isinstance(v, torch.Tensor)}
    elif isinstance(inputs, np.ndarray) or (
        isinstance(inputs, Sequence) and not isinstance(inputs, Mapping)
    ):
        try:
            arr = np.asarray(inputs)
        except ValueError as exc:
            raise InvalidInputError(
                "inputs must be token ids of one length per row (batch, pos); got ragged "
                "lists. Pad them, or tokenize with padding=True."
            ) from exc
        if arr.dtype.kind not in "iu":
            raise InvalidInputError(
                f"inputs given as an array must be integer token ids, got dtype {arr.dtype}."
            )
        inputs = torch.as_tensor(arr, dtype=torch.long, device=hooks.model_device(model))
    kwargs = hooks.as_model_inputs(model, inputs, vocab_size=anat.vocab_size)
    ids = kwargs.get("input_ids")
    if not isinstance(ids, torch.Tensor):
        raise InvalidInputError(
            "the lens needs token ids: pass input_ids (a tensor or a BatchEncoding holding "
            "'input_ids'), not only inputs_embeds."
        )
    return kwargs, ids


def _capture(model: Any, kwargs: Any, points: Sequence[HookPoint], *, take: Any = None) -> Any:
    """Run the model once with read-only hooks; (its logits, {point name: tensor})."""
    store: dict[str, Any] = {}

    def make(name: str) -> Any:
        def fn(t: Any) -> None:
            t = t.detach()
            store[name] = (take(t) if take is not None else t).clone()

        return fn

    with hooks.on_points(model, [(p, make(p.name)) for p in points]):
        logits = hooks.forward(model, kwargs)
    missing = [p.name for p in points if p.name not in store]
    if missing:
        raise UnsupportedModelError(
            f"the hook points {missing} did not run in the forward pass, so the lens cannot "
            "read them. Pass their module paths to Anatomy(model, ...)."
        )
    return logits, store


def _readout(anat: Any, h: Any) -> Any:
    """Logits of residual-stream states ``h`` (..., d_model) through the model's own final
    norm and unembedding (and Gemma 2's soft cap)."""
    norm = anat.final_norm
    return anat.to_logits(norm(h) if norm is not None else h)


def _reproduces(logits: Any, model_logits: Any) -> bool:
    """Whether a readout of the last block's output gives the model's own logits."""
    torch = require_torch()
    if tuple(logits.shape) != tuple(model_logits.shape):
        return False
    scale = 1.0 + float(model_logits.abs().max())
    tol = max(1e-5, 20 * torch.finfo(model_logits.dtype).eps) * scale
    return bool((logits - model_logits).abs().max() <= tol)


def _reader(model: Any, anat: Any, kwargs: Any, last: Any, model_logits: Any) -> Any:
    """A function ``h (batch, pos, d) -> logits`` reading residual states like the model.

    The fast path is the model's final norm and unembedding (decoders). Where that does not
    give the model's own logits from its last block's output (an encoder's prediction head
    with a dense layer before the decoder, a logit scale), each read re-runs the model with
    the last block's output replaced by ``h``, so whatever the model does after its blocks
    is applied (one forward pass per read).
    """
    torch = require_torch()
    with torch.no_grad():
        if _reproduces(_readout(anat, last), model_logits):
            return lambda h: _readout(anat, h)
    point = anat.point(f"blocks.{anat.n_layers - 1}.resid_post")

    def read(h: Any) -> Any:
        with hooks.on_points(model, [(point, lambda t: h.to(t.dtype))]):
            return hooks.forward(model, kwargs)

    if not _reproduces(read(last), model_logits):  # pragma: no cover - defensive
        raise UnsupportedModelError(
            f"{type(model).__name__}'s logits do not follow from its last block's output "
            "alone, so the lens cannot read intermediate layers through its head."
        )
    return read


def _stack_names(anat: Any, site: str) -> tuple[list[str], list[str]]:
    """(hook names, labels) of the lens entries for ``site``, in forward order."""
    n = anat.n_layers
    if site == "resid_post":
        return ["blocks.0.resid_pre", *[f"blocks.{i}.resid_post" for i in range(n)]], [
            "embed",
            *[f"L{i}" for i in range(n)],
        ]
    if site == "resid_mid":
        if anat.parallel_residual:
            raise InvalidParameterError(
                "site='resid_mid': this model adds attention and MLP to the same residual "
                "stream (parallel residual), so there is no residual between them. Use "
                "site='resid_post'."
            )
        names, labels = ["blocks.0.resid_pre"], ["embed"]
        for i in range(n):
            names += [f"blocks.{i}.resid_mid", f"blocks.{i}.resid_post"]
            labels += [f"L{i}.mid", f"L{i}"]
        return names, labels
    part = site.split(".")[0]
    return [f"blocks.{i}.{site}" for i in range(n)], [f"L{i}.{part}" for i in range(n)]


def _select(n_entries: int, layers: Any, labels: Sequence[str]) -> list[int]:
    if layers is None:
        return list(range(n_entries))
    items = [layers] if isinstance(layers, numbers.Integral | str) else list(layers)
    if not items:
        raise InvalidParameterError("layers is empty: pass None (all) or at least one entry.")
    out = []
    for item in items:
        if isinstance(item, str):
            if item not in labels:
                raise InvalidParameterError(
                    f"layers: no lens entry labelled {item!r}; the labels are {list(labels)}."
                )
            out.append(list(labels).index(item))
            continue
        i = check_int("layers entry", item, minimum=-n_entries, maximum=n_entries - 1)
        out.append(i % n_entries)
    return out


def _token_id(tokenizer: Any, token: str, vocab_size: int | None) -> int:
    if tokenizer is None:
        raise InvalidParameterError(
            f"the target {token!r} is a string but no tokenizer was given: pass tokenizer=... "
            "or the token id."
        )
    ids = tokenizer.encode(token, add_special_tokens=False)
    if len(ids) != 1:
        raise InvalidParameterError(
            f"the target {token!r} is {len(ids)} tokens ({ids}); a target must be one token. "
            "Pass its id, or a string that the tokenizer keeps whole (mind the leading space)."
        )
    return int(ids[0])


def _decode(tokenizer: Any, ids: Any) -> list[str]:
    cache: dict[int, str] = {}
    out = []
    for i in ids:
        i = int(i)
        if i not in cache:
            cache[i] = tokenizer.decode([i]) if tokenizer is not None else str(i)
        out.append(cache[i])
    return out


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
        Default target token of :meth:`LogitLens.rank`, :meth:`~LogitLens.prob`,
        :meth:`~LogitLens.to_frame` (-1 marks positions without one).
    top_k : int, default 5
        Default ``k`` of :meth:`LogitLens.top_tokens` and :meth:`~LogitLens.to_frame`.
    tokenizer : tokenizer, optional
        For text inputs, string targets and token strings.

    Returns
    -------
    LogitLens
        ``.logits`` of shape (layers, batch, pos, vocab). With ``site="resid_post"`` and all
        layers, ``.logits[-1]`` equals the model's own logits (the same modules run on the
        same tensor).

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
@dataclass(frozen=True)
class _NormMap:
    """A final norm frozen at one run: ``y = gamma * center(x) / scale + beta``."""

    kind: str
    center: bool
    scale: Any  # (batch, 1) float64
    gamma: Any  # (d,) float64
    beta: Any  # (d,) float64

    def apply(self, c: Any) -> Any:
        """The frozen (linear) map applied to components ``c`` (..., batch, d), no beta."""
        if self.center:
            c = c - c.mean(-1, keepdim=True)
        return self.gamma * c / self.scale


def _freeze_norm(norm: Any, x: Any, y: Any) -> _NormMap:
    """Find ``norm``'s affine form (LayerNorm or RMSNorm, weight or 1 + weight) that turns
    ``x`` (batch, d) into the ``y`` it produced, with the scale of this run."""
    torch = require_torch()
    x64, y64 = x.double(), y.double()
    d = x.shape[-1]
    if norm is None:
        one = torch.ones(d, dtype=torch.float64, device=x.device)
        return _NormMap("none", False, torch.ones_like(x64[..., :1]), one, torch.zeros_like(one))
    weight = getattr(norm, "weight", None)
    bias = getattr(norm, "bias", None)
    zeros = torch.zeros(d, dtype=torch.float64, device=x.device)
    beta = (
        bias.detach().double() if isinstance(bias, torch.Tensor) and bias.shape == (d,) else zeros
    )
    gammas: list[tuple[str, Any]] = [("", zeros + 1)]
    if isinstance(weight, torch.Tensor) and weight.shape == (d,):
        w = weight.detach().double()
        gammas = [("", w), (" (1 + weight)", 1 + w)]
    eps = next(
        (
            float(getattr(norm, a))
            for a in ("eps", "variance_epsilon", "epsilon")
            if isinstance(getattr(norm, a, None), numbers.Real)
        ),
        None,
    )
    name = type(norm).__name__
    centers = [False, True] if "rms" in name.lower() else [True, False]
    tol = max(1e-4, 100 * torch.finfo(x.dtype).eps) * (1.0 + float(y64.abs().max()))
    for center in centers:
        xc = x64 - x64.mean(-1, keepdim=True) if center else x64
        for e in [eps] if eps is not None else [1e-5, 1e-6, 1e-12, 0.0]:
            scale = torch.sqrt((xc * xc).mean(-1, keepdim=True) + e)
            for label, gamma in gammas:
                if float((gamma * xc / scale + beta - y64).abs().max()) <= tol:
                    kind = ("LayerNorm" if center else "RMSNorm") + label
                    return _NormMap(kind, center, scale, gamma, beta)
    raise UnsupportedModelError(
        f"the final norm {name} is neither a LayerNorm nor an RMSNorm (with weight or "
        "1 + weight) on this run: its output cannot be written as gamma * x / scale + beta, "
        "so the logits are not a sum of component contributions. Pass the right module as "
        "Anatomy(model, final_norm='path'), or use the logit lens instead."
    )


def _logit_directions(
    target: Any, anat: Any, tokenizer: Any, batch: int, torch: Any
) -> tuple[Any, str, list[Any]]:
    """Logit-space directions (batch, vocab) float64 of the metric ``logits @ v``."""
    v_size = anat.W_U().shape[1]

    def tid(t: Any) -> int:
        if isinstance(t, str):
            return _token_id(tokenizer, t, v_size)
        if isinstance(t, numbers.Integral) and not isinstance(t, bool):
            if not 0 <= int(t) < v_size:
                raise InvalidParameterError(
                    f"target token id {int(t)} is outside the vocabulary [0, {v_size})."
                )
            return int(t)
        raise InvalidParameterError(
            f"target tokens must be ids or one-token strings, got {type(t).__name__}."
        )

    def onehots(pairs: list[tuple[int, int | None]]) -> Any:
        v = torch.zeros(len(pairs), v_size, dtype=torch.float64)
        for r, (c, w) in enumerate(pairs):
            v[r, c] += 1.0
            if w is not None:
                v[r, w] -= 1.0
        return v

    def describe(c: int, w: int | None) -> str:
        name = (lambda i: repr(tokenizer.decode([i]))) if tokenizer is not None else str
        return f"logit[{name(c)}]" + ("" if w is None else f" - logit[{name(w)}]")

    if isinstance(target, str) or (
        isinstance(target, numbers.Integral) and not isinstance(target, bool)
    ):
        c = tid(target)
        return onehots([(c, None)] * batch), describe(c, None), [c]
    if (
        isinstance(target, tuple)
        and len(target) == 2
        and all(isinstance(t, str | numbers.Integral) for t in target)
    ):
        c, w = tid(target[0]), tid(target[1])
        return onehots([(c, w)] * batch), describe(c, w), [c, w]
    arr = target.detach().cpu().numpy() if hasattr(target, "detach") else np.asarray(target)
    if arr.dtype.kind == "f":
        if arr.ndim == 1:
            arr = np.broadcast_to(arr, (batch, arr.shape[0]))
        if arr.shape != (batch, v_size):
            raise InvalidParameterError(
                f"a target direction must have shape (vocab,)=({v_size},) or (batch, vocab)="
                f"({batch}, {v_size}), got {arr.shape}."
            )
        return torch.as_tensor(np.array(arr, dtype=np.float64)), "logits @ direction", []
    if arr.dtype.kind in "iuO" and arr.ndim == 2 and arr.shape == (batch, 2):
        pairs = [(tid(a), tid(b)) for a, b in arr.tolist()]
        return onehots(pairs), "logit[correct] - logit[wrong] (per row)", arr.tolist()
    if arr.dtype.kind in "iuO" and arr.ndim == 1 and arr.shape[0] == batch:
        pairs = [(tid(a), None) for a in arr.tolist()]
        return onehots(pairs), "logit[target] (per row)", arr.tolist()
    raise InvalidParameterError(
        f"target must be a token (id or string), a pair (correct, wrong), {batch} pairs "
        f"(batch, 2), {batch} tokens (batch,), or a float direction over the vocabulary "
        f"({v_size},); got {type(target).__name__} of shape {arr.shape}."
    )


def _positions(position: Any, ids: Any, torch: Any) -> Any:
    b, p = ids.shape
    if isinstance(position, numbers.Integral) and not isinstance(position, bool):
        i = check_int("position", position, minimum=-p, maximum=p - 1)
        return torch.full((b,), i % p, dtype=torch.long)
    arr = np.asarray(position)
    if arr.ndim != 1 or arr.shape[0] != b or arr.dtype.kind not in "iu":
        raise InvalidParameterError(
            f"position must be an int or one int per batch row ({b},), got {position!r}."
        )
    if (arr >= p).any() or (arr < -p).any():
        raise InvalidParameterError(f"positions {arr.tolist()} are outside [-{p}, {p}).")
    return torch.as_tensor(arr % p, dtype=torch.long)


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
    target : int, str, (correct, wrong), array (batch, 2), array (batch,) or float array
        The metric: a token's logit, a logit difference ``logit[correct] - logit[wrong]``
        (one pair, or one per batch row), or ``logits @ v`` for a direction ``v`` over the
        vocabulary ``(vocab,)`` or ``(batch, vocab)``.
    position : int or sequence of int, default -1
        The position read, one for all rows or one per row (e.g. the last real token of
        right-padded rows).
    anatomy : Anatomy, optional
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
        scale per row (``final_norm_scale``), the norm kind, the constant parts of ``bias``
        and ``completeness_gap`` (the sum minus the real metric, float rounding).

    Raises
    ------
    UnsupportedModelError
        For post-LN models (BERT: each block normalises its output, so the residual stream
        is not a sum of contributions), for ``by="head"`` on a model whose attention output
        is not the sum of its heads' projections (Gemma 2 normalises it), or for a final norm
        whose form is unknown.

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
    from whybox.explanation import Explanation

    torch = require_torch("direct logit attribution")
    anat = _anatomy(model, anatomy)
    check_in("by", by, ("head", "component"))
    if anat.norm_position != "pre":
        raise UnsupportedModelError(
            f"direct logit attribution needs a pre-norm model; {type(model).__name__} is "
            "post-LN (each block normalises its own output), so its residual stream is not "
            "a sum of component outputs. Use activation patching instead."
        )
    W_U = anat.W_U()
    b_U = anat.b_U()
    kwargs, ids = _prepare_inputs(model, inputs, tokenizer, anat)
    b = ids.shape[0]
    pos = _positions(position, ids, torch).to(ids.device)
    rows = torch.arange(b, device=ids.device)
    v, metric_name, tokens = _logit_directions(target, anat, tokenizer, b, torch)

    all_names = set(anat.names())
    has_pos = "pos_embed" in all_names
    has_mlp = [f"blocks.{i}.mlp.out" in all_names for i in range(anat.n_layers)]
    names = ["blocks.0.resid_pre"] + (["pos_embed"] if has_pos else [])
    for i in range(anat.n_layers):
        names.append(f"blocks.{i}.attn.out")
        if by == "head":
            names.append(f"blocks.{i}.attn.head_out")
        if has_mlp[i]:
            names.append(f"blocks.{i}.mlp.out")
    points = [anat.point(n) for n in names]
    norm = anat.final_norm
    if norm is not None:
        points.append(HookPoint("final_norm.input", anat.final_norm_path, io="input"))
        points.append(HookPoint("final_norm.output", anat.final_norm_path))
    else:
        points.append(anat.point(f"blocks.{anat.n_layers - 1}.resid_post"))
    points.append(anat.point("unembed"))
    _, store = _capture(model, kwargs, points, take=lambda t: t.expand(b, *t.shape[1:])[rows, pos])
    f64 = {k: t.double() for k, t in store.items()}

    players: list[str] = []
    parts: list[Any] = []  # (batch, d) each
    bias_resid = torch.zeros_like(f64["blocks.0.resid_pre"])
    if has_pos:
        players += ["embed", "pos_embed"]
        parts += [f64["blocks.0.resid_pre"] - f64["pos_embed"], f64["pos_embed"]]
    else:
        players.append("embed")
        parts.append(f64["blocks.0.resid_pre"])
    attn_bias_total = torch.zeros_like(bias_resid)
    for i in range(anat.n_layers):
        attn = f64[f"blocks.{i}.attn.out"]
        if by == "head":
            W_O = anat.W_O(i).detach().double()
            heads = torch.einsum("bhk,hkd->bhd", f64[f"blocks.{i}.attn.head_out"], W_O)
            rest = attn - heads.sum(1)
            b_O = anat.b_O(i)
            expect = b_O.detach().double() if b_O is not None else torch.zeros_like(rest[0])
            scale = 1.0 + float(attn.abs().max())
            if float((rest - expect).abs().max()) > _tol(store, scale):
                raise UnsupportedModelError(
                    f"block {i}'s attention output is not the sum of its heads' outputs "
                    f"through the output projection plus its bias (largest gap "
                    f"{float((rest - expect).abs().max()):.3g}): the model transforms it "
                    "after the projection (e.g. Gemma 2's post-attention norm). Use "
                    "by='component'."
                )
            players += [f"L{i}.H{h}" for h in range(anat.n_heads)]
            parts += list(heads.unbind(1))
            attn_bias_total = attn_bias_total + rest
        else:
            players.append(f"L{i}.attn")
            parts.append(attn)
        if has_mlp[i]:
            players.append(f"L{i}.mlp")
            parts.append(f64[f"blocks.{i}.mlp.out"])
    bias_resid = attn_bias_total

    x_key = "final_norm.input" if norm is not None else f"blocks.{anat.n_layers - 1}.resid_post"
    x = f64[x_key]
    recon = torch.stack(parts).sum(0) + bias_resid
    gap = float((recon - x).abs().max())
    if gap > _tol(store, 1.0 + float(x.abs().max())):
        raise UnsupportedModelError(
            f"the residual stream entering the final norm is not the sum of the embeddings "
            f"and the sublayer outputs on this model (largest gap {gap:.3g}): "
            f"{type(model).__name__} changes the stream between blocks in a way direct logit "
            "attribution cannot split. Check Anatomy.of(model) (pass the right module paths)."
        )
    y = store["final_norm.output"] if norm is not None else store[x_key]
    nm = _freeze_norm(norm, store[x_key], y)

    W = W_U.detach().double()
    u = v.to(W.device) @ W.T  # (batch, d): the residual direction of the metric per row
    values = torch.stack([(nm.apply(c) * u).sum(-1) for c in parts], dim=1)
    b_u = (v.to(W.device) @ b_U.detach().double()) if b_U is not None else torch.zeros(b).double()
    norm_bias = (nm.beta * u).sum(-1)
    attn_bias = (nm.apply(bias_resid) * u).sum(-1)
    bias = attn_bias + norm_bias + b_u
    values = torch.cat([values, bias[:, None]], dim=1)
    players.append("bias")
    unembed_out = store["unembed"].double()
    metric = (unembed_out * v.to(unembed_out.device)).sum(-1)
    total = values.sum(1)
    vals = values.cpu().numpy()
    return Explanation(
        vals,
        base_values=0.0,
        feature_names=players,
        predictions=metric.cpu().numpy(),
        method="direct_logit_attribution",
        params={
            "output": metric_name,
            "by": by,
            "position": position if isinstance(position, numbers.Integral) else "per row",
            "target_tokens": [int(t) for t in np.ravel(tokens)] if tokens else None,
        },
        meta={
            "final_norm": nm.kind,
            "final_norm_scale": nm.scale[:, 0].cpu().numpy(),
            "completeness_gap": (total - metric).cpu().numpy(),
            "position": pos.cpu().numpy(),
            "bias_attn_out": attn_bias.cpu().numpy(),
            "bias_final_norm": norm_bias.cpu().numpy(),
            "bias_unembed": b_u.cpu().numpy(),
            "row_keys": [
                "final_norm_scale",
                "completeness_gap",
                "position",
                "bias_attn_out",
                "bias_final_norm",
                "bias_unembed",
            ],
        },
    )


def _tol(store: Mapping[str, Any], scale: float) -> float:
    """Tolerance for a float-rounding check on tensors of the model's dtype."""
    torch = require_torch()
    dtype = next(iter(store.values())).dtype
    eps = torch.finfo(dtype).eps if dtype.is_floating_point else 1e-7
    return max(1e-4, 200 * eps) * scale * math.sqrt(max(1, len(store)))
