"""Shared plumbing of the lenses: inputs, one hooked run, the model's own readout.

Used by :mod:`whybox.internals.lens`, :mod:`whybox.internals._dla` and
:mod:`whybox.internals.tuned_lens`. Import torch lazily.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from whybox._validation import check_int
from whybox.errors import InvalidInputError, InvalidParameterError, UnsupportedModelError
from whybox.internals import hooks
from whybox.internals.hooks import HookPoint, require_torch


def _anatomy(model: Any, anatomy: Any) -> Any:
    from whybox.internals.anatomy import Anatomy

    return Anatomy.for_model(model, anatomy)


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
