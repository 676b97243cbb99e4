"""Support of :mod:`whybox.internals.probing` and :mod:`whybox.internals.steering`:
intervals (Wilson, percentile bootstrap), control-task labels (Hewitt & Liang 2019), and the
activations of a language model (inputs to token sequences, forward passes grouped by length
so that no pad changes an activation, the activation at a token position).

Private: the public names are served by :mod:`whybox.internals.probing`. torch is imported
inside the functions.

References
----------
Wilson (1927); Brown, Cai & DasGupta (2001); Efron & Tibshirani (1993); Hewitt & Liang (2019)
(full citations in :mod:`whybox.internals.probing`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.utils import check_random_state

from whybox.errors import InvalidInputError, InvalidParameterError

__all__ = [
    "bootstrap_interval",
    "check_layer",
    "collect",
    "control_labels",
    "group_codes",
    "sequences",
    "wilson_interval",
]


# ------------------------------------------------------------------ intervals
def wilson_interval(successes: Any, n: Any, confidence: float = 0.95) -> tuple[Any, Any]:
    """Wilson score interval of a binomial proportion.

    Parameters
    ----------
    successes : int or array of int
        Number of successes (correct held-out predictions).
    n : int or array of int
        Number of trials (held-out examples), ``>= 1``.
    confidence : float, default 0.95

    Returns
    -------
    (low, high) : floats or arrays, within ``[0, 1]``.

    Notes
    -----
    Unlike the Wald interval it never leaves [0, 1] and keeps close to nominal coverage at
    small ``n`` and accuracies near 0 or 1 (Brown, Cai & DasGupta 2001).

    References
    ----------
    Wilson (1927); Brown, Cai & DasGupta (2001).
    """
    k = np.asarray(successes, dtype=float)
    n = np.asarray(n, dtype=float)
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = k / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z / denom * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    low, high = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


def bootstrap_interval(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    metric: Any,
    *,
    confidence: float = 0.95,
    n_boot: int = 1000,
    random_state: Any = None,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric(y_true, y_pred)`` over the examples.

    Resamples the held-out examples with replacement ``n_boot`` times (Efron & Tibshirani
    1993, ch. 13) and returns the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2``
    quantiles of the metric.
    """
    rng = check_random_state(random_state)
    n = len(y_true)
    values = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.randint(0, n, size=n)
        values[b] = metric(y_true[idx], y_pred[idx])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (math.nan, math.nan)
    alpha = (1 - confidence) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


# ------------------------------------------------------------------ control tasks
def control_labels(y: Any, groups: Any = None, random_state: Any = None) -> np.ndarray:
    """Labels of a control task (Hewitt & Liang 2019): one random label per group.

    Parameters
    ----------
    y : array of shape (n,)
        The task's labels (or targets); their empirical distribution is what the control
        labels are drawn from.
    groups : array of shape (n,), optional
        The identity of each example, e.g. its word type (token id). Every example of a group
        gets the same control label. ``None``: each example is its own group.
    random_state : int, RandomState or None

    Returns
    -------
    ndarray of shape (n,)
        ``y_control[i] = label[groups[i]]`` with ``label[g]`` drawn independently for each group
        from the empirical distribution of ``y``.
    """
    y = np.asarray(y)
    codes = group_codes(groups, len(y))
    rng = check_random_state(random_state)
    per_group = y[rng.randint(0, len(y), size=codes.max() + 1)]
    return per_group[codes]


def group_codes(groups: Any, n: int) -> np.ndarray:
    if groups is None:
        return np.arange(n)
    groups = _to_numpy(groups)
    if groups.ndim != 1 or len(groups) != n:
        raise InvalidInputError(
            f"groups must be one id per example, shape ({n},), got shape {groups.shape}. Pass "
            "e.g. the token id (word type) of each example, or None for one group per example."
        )
    codes, _ = pd.factorize(groups, use_na_sentinel=False)
    return codes


def _to_numpy(a: Any) -> np.ndarray:
    """A numpy view of an array-like or torch tensor (half precision becomes float32)."""
    if type(a).__module__.startswith("torch") and hasattr(a, "detach"):
        a = a.detach().cpu()
        if a.is_floating_point() and a.element_size() < 4:
            a = a.float()
        return a.numpy()
    return np.asarray(a)


def sequences(inputs: Any, tokenizer: Any = None, *, what: str = "inputs") -> list[Any]:
    """One 1-D LongTensor of token ids per example, pads removed.

    ``inputs``: a str or a list of str (tokenised one by one with ``tokenizer``), a tensor of
    token ids (batch, pos) or (pos,), a list of token-id lists / 1-D tensors, or a mapping
    with ``input_ids`` and optionally ``attention_mask`` (a ``BatchEncoding``; pads dropped).
    """
    import torch

    if isinstance(inputs, str):
        inputs = [inputs]
    if isinstance(inputs, Mapping):
        ids = inputs.get("input_ids")
        if not isinstance(ids, torch.Tensor):
            raise InvalidInputError(
                f"{what}: a mapping must hold an 'input_ids' tensor (a tokenizer's output with "
                "return_tensors='pt'), got keys " + repr(sorted(inputs)) + "."
            )
        ids = ids.reshape(-1, ids.shape[-1])
        mask = inputs.get("attention_mask")
        if mask is None:
            return list(ids)
        mask = mask.reshape(ids.shape).bool()
        return [row[m] for row, m in zip(ids, mask, strict=True)]
    if isinstance(inputs, torch.Tensor):
        if inputs.ndim == 1:
            inputs = inputs.unsqueeze(0)
        if inputs.ndim != 2 or inputs.is_floating_point():
            raise InvalidInputError(
                f"{what}: a tensor of token ids must be integer, shape (batch, pos); got dtype "
                f"{inputs.dtype} and shape {tuple(inputs.shape)}."
            )
        return list(inputs)
    items = list(inputs)
    if not items:
        raise InvalidInputError(f"{what} is empty: pass at least one text or token sequence.")
    out = []
    for item in items:
        if isinstance(item, str):
            if tokenizer is None:
                raise InvalidParameterError(
                    f"{what} are texts, so a tokenizer is needed: pass tokenizer= (the one the "
                    "model was trained with), or pass token ids."
                )
            item = tokenizer(item, return_tensors="pt")["input_ids"][0]
        t = torch.as_tensor(item)
        if t.ndim != 1 or t.is_floating_point() or t.numel() == 0:
            raise InvalidInputError(
                f"{what}: each example must be a text or a non-empty 1-D sequence of token ids, "
                f"got shape {tuple(t.shape)} and dtype {t.dtype}."
            )
        out.append(t.long())
    return out


def positions_of(n: int, position: Any) -> Any:
    """The token positions (a list, or 'mean') of a sequence of length ``n`` to read."""
    if position == "mean":
        return "mean"
    if position == "all":
        return list(range(n))
    if isinstance(position, bool) or not isinstance(position, (int, np.integer)):
        raise InvalidParameterError(
            f"position must be an int (-1: the last token), 'mean' (mean over tokens) or "
            f"'all' (every token), got {position!r}."
        )
    p = int(position) + (n if position < 0 else 0)
    if not 0 <= p < n:
        raise InvalidInputError(
            f"position={position} is outside a sequence of {n} tokens. Pass a position "
            f"between {-n} and {n - 1}, or 'mean'."
        )
    return [p]


def _read(store: dict[str, Any], name: str, tensor: Any) -> None:
    store[name] = tensor.detach()


def collect(
    model: Any,
    seqs: Sequence[Any],
    points: Sequence[Any],
    position: Any = -1,
    *,
    batch_size: int = 32,
    context: Any = None,
    vocab_size: int | None = None,
    logits: bool = False,
) -> dict[str, Any]:
    """Activations (float32, CPU) at hook ``points`` for each sequence at ``position``.

    Sequences of equal length run together (no padding, so no pad ever changes an
    activation). Returns ``{point.name: tensor (n, d)}``, with ``n`` the number of sequences,
    or the total number of tokens for ``position="all"`` (sequence order, then token order).
    ``context`` (a callable returning a context manager) wraps each forward pass (steering);
    ``vocab_size`` refuses token ids outside the model's vocabulary (a tokenizer mismatch).
    ``logits=True`` also returns the model's own output (``hooks.forward``: logits, after
    any final soft cap) under the key ``"logits"``.
    """
    import contextlib

    import torch

    from whybox.internals import hooks

    device = hooks.model_device(model)
    by_len: dict[int, list[int]] = {}
    for i, s in enumerate(seqs):
        by_len.setdefault(len(s), []).append(i)
    names = [p.name for p in points] + (["logits"] if logits else [])
    rows: dict[str, list[Any]] = {name: [None] * len(seqs) for name in names}
    for length, idx in by_len.items():
        pos = positions_of(length, position)
        for start in range(0, len(idx), batch_size):
            chunk = idx[start : start + batch_size]
            ids = torch.stack([seqs[i] for i in chunk]).to(device)
            seen: dict[str, Any] = {}
            readers = [(p, functools.partial(_read, seen, p.name)) for p in points]
            ctx = context() if context is not None else contextlib.nullcontext()
            with ctx, hooks.on_points(model, readers):
                output = hooks.forward(model, ids, vocab_size=vocab_size)
            if logits:
                seen["logits"] = output.detach()
            for name in names:
                if name not in seen:
                    raise InvalidParameterError(
                        f"the hook point {name!r} did not run in the forward pass; pick a "
                        "point the model's forward uses."
                    )
                t = seen[name].float().cpu()
                t = t.reshape(t.shape[0], t.shape[1], -1)  # (batch, pos, width)
                if pos == "mean":
                    picked = t.mean(dim=1)
                elif position == "all":
                    picked = t[:, pos]  # (batch, length, width)
                else:
                    picked = t[:, pos[0]]
                for j, i in enumerate(chunk):
                    rows[name][i] = picked[j]
    out = {}
    for name, r in rows.items():
        out[name] = torch.cat(r) if position == "all" else torch.stack(r)
    return out


def check_layer(layer: Any, n_layers: int) -> int:
    """``layer`` as an index in ``[0, n_layers)`` (negative counts from the end), or raise."""
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
        raise InvalidParameterError(f"a layer must be an int, got {layer!r}.")
    if not -n_layers <= layer < n_layers:
        raise InvalidParameterError(
            f"layer {layer} is out of range: the model has {n_layers} layers (0 to "
            f"{n_layers - 1}, or -1 for the last)."
        )
    return int(layer) % n_layers
