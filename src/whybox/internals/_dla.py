"""Direct logit attribution, the work behind :func:`whybox.internals.lens.direct_logit_attribution`.

The final norm is frozen at the real run (its scale per row; LayerNorm's centering, which is
linear, applied to each component), so the metric ``logits[position] @ v`` is a sum of one
term per component plus constant terms.

References
----------
.. [1] Elhage et al. (2021), "A Mathematical Framework for Transformer Circuits".
.. [2] Nanda & Bloom (2022), TransformerLens (``apply_ln_to_stack``, ``logit_attrs``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from whybox._validation import check_in, check_int
from whybox.errors import InvalidParameterError, UnsupportedModelError
from whybox.internals._lens_base import _anatomy, _capture, _prepare_inputs, _token_id
from whybox.internals.hooks import HookPoint, require_torch

__all__ = ["attribute"]


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


def attribute(
    model: Any,
    inputs: Any,
    *,
    target: Any,
    position: Any,
    anatomy: Any,
    by: str,
    tokenizer: Any,
) -> Any:
    """See :func:`whybox.internals.lens.direct_logit_attribution`."""
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
    b_u = (
        (v.to(W.device) @ b_U.detach().double())
        if b_U is not None
        else torch.zeros(b, dtype=torch.float64, device=W.device)
    )
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
            "completeness_gap": (metric - total).cpu().numpy(),
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
