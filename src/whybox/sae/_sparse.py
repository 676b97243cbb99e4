"""Sparse kernels for sparse autoencoders: encoders and decoder on the active latents only.

A TopK / BatchTopK / JumpReLU autoencoder keeps a few latents per token active, so of the
dense training step (encoder matmul, activation, decoder matmul, and the three matmuls of
their backward) only the encoder's forward matmul has to touch every latent. Everything else
runs on the ``(values, indices)`` pairs of the active latents, in custom autograd functions:

- forward: ``pre = x @ W_enc + b_enc`` (dense, into a reused per-thread workspace), the
  selection (per-row top-k, batch top-k, or JumpReLU threshold), and the decoder
  ``x_hat = b_dec + sum_j values_j W_dec[indices_j]`` as a CSR sparse-dense product;
- backward of the decoder: ``d values = (d x_hat) . W_dec[indices]`` (sampled dense-dense
  product, SDDMM) and ``d W_dec = S^T (d x_hat)`` (S the (n, d_sae) sparse activations; CSR
  of S^T by one stable sort of the indices);
- backward of the encoder: with ``G`` the gradient at the active pre-activations,
  ``d W_enc = x^T G`` (same CSR product), ``d b_enc`` a scatter-add of ``G`` and
  ``d x = G W_enc^T`` (a CSR product; ``x`` carries ``- b_dec``, so this feeds ``b_dec``);
  no dense (n, d_sae) gradient is ever formed.

Rows with different numbers of active latents (BatchTopK, JumpReLU) are padded to the most
active row: padding slots hold value 0 and receive no gradient. When more than
``DENSE_FRACTION`` of all latents are active (an untrained JumpReLU), sparse products lose
to dense ones; the encoders then return every latent, flagged by the indices
``dense_indices(n, d_sae)`` (an expanded ``arange``), and every kernel here switches to dense
matmuls on that flag.

The straight-through estimators of JumpReLU are those of Rajamanoharan et al. (2024):
``d/dz [z H(z - t)] = H(z - t)``, ``d/dt [z H(z - t)] = -(t / eps) K((z - t) / eps)`` and
``d/dt H(z - t) = -(1 / eps) K((z - t) / eps)``, ``K`` the rectangle on ``(-1/2, 1/2)``. The
threshold gradient needs ``d loss / d f`` also at the inactive latents within ``eps / 2``
below the threshold, so in training those latents are carried as extra zero-valued entries.

References
----------
.. [1] Gao, L. et al. (2024). "Scaling and evaluating sparse autoencoders." arXiv:2406.04093
   (TopK autoencoders; sparse decoder kernels, section 5 / appendix).
.. [2] Bussmann, B., Leask, P. and Nanda, N. (2024). "BatchTopK Sparse Autoencoders."
   arXiv:2412.06410.
.. [3] Rajamanoharan, S. et al. (2024). "Jumping Ahead: Improving Reconstruction Fidelity with
   JumpReLU Sparse Autoencoders." arXiv:2407.14435.
"""

from __future__ import annotations

import math
import threading
import warnings
from typing import Any

import torch

from whybox.errors import InvalidInputError, InvalidParameterError

__all__ = [
    "DENSE_FRACTION",
    "batchtopk_encode",
    "dense_indices",
    "is_dense_indices",
    "jumprelu_encode",
    "sparse_decode",
    "topk_encode",
]

DENSE_FRACTION = 0.2
"""Share of active entries above which the encoders return the dense layout."""

_local = threading.local()


# ---------------------------------------------------------------------------- layout ----
def dense_indices(n: int, width: int, device: Any = None) -> torch.Tensor:
    """The indices of the dense layout: ``arange(width)`` expanded to (n, width), no copy."""
    return torch.arange(width, device=device).expand(n, width)


def is_dense_indices(indices: torch.Tensor, width: int) -> bool:
    """Whether ``indices`` (n, k) is the dense layout of :func:`dense_indices`."""
    return (
        indices.dim() == 2
        and indices.shape[1] == width
        and (indices.shape[0] <= 1 or indices.stride(0) == 0)
        and indices.stride(1) == 1
        and bool(torch.equal(indices[:1].reshape(-1), torch.arange(width, device=indices.device)))
    )


def _workspace(rows: int, cols: int, like: torch.Tensor) -> torch.Tensor:
    """A (rows, cols) buffer reused between calls on this thread (pre-activations)."""
    key = (rows, cols, like.dtype, like.device)
    cached = getattr(_local, "buffer", None)
    if cached is None or cached[0] != key:
        cached = (key, torch.empty(rows, cols, dtype=like.dtype, device=like.device))
        _local.buffer = cached
    return cached[1]


def _preacts(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor, *, reuse: bool) -> torch.Tensor:
    if reuse:
        return torch.addmm(b, x, W, out=_workspace(x.shape[0], W.shape[1], x))
    return torch.addmm(b, x, W)


# ---------------------------------------------------------------------------- products ----
def _csr(indices: torch.Tensor, weights: torch.Tensor, width: int) -> torch.Tensor:
    """The (n, width) sparse matrix with ``weights[i, s]`` at ``(i, indices[i, s])``."""
    n, k = indices.shape
    crow = torch.arange(0, n * k + 1, max(k, 1), device=indices.device)
    if k == 0:
        crow = torch.zeros(n + 1, dtype=torch.long, device=indices.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(crow, indices.reshape(-1), weights.reshape(-1), (n, width))


def _rows_times(indices: torch.Tensor, weights: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """``S @ right``: S (n, width) sparse as above, right (width, d) -> (n, d)."""
    if is_dense_indices(indices, right.shape[0]):
        return weights @ right
    return _csr(indices, weights, right.shape[0]) @ right


def _grouping(indices: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CSR of S^T for the (n, k) ``indices``: (order, crow (width + 1,), rows (n k,)).

    ``order`` lists the flat entries grouped by latent (stably), ``rows`` their row numbers.
    On the CPU with ``width <= 65535`` this is numpy's radix sort of 16-bit keys, one
    single-threaded O(n k) pass, where torch's parallel sort waits on its threads at every
    pass (tens of ms on a loaded machine). The last result is kept (with a reference to
    ``indices``, so its memory cannot be reused meanwhile): the decoder's and the encoder's
    backward passes of one step share it.
    """
    k = indices.shape[1]
    key = (
        indices.data_ptr(), indices.storage_offset(), tuple(indices.shape),
        tuple(indices.stride()), indices._version, width, indices.device,
    )  # fmt: skip
    cached = getattr(_local, "grouping", None)
    if cached is not None and cached[0] == key:
        return cached[2]
    flat = indices.reshape(-1)
    if flat.device.type == "cpu" and width <= 65535:
        import numpy as np

        keys = flat.numpy().astype(np.uint16)
        order_np = np.argsort(keys, kind="stable")
        crow_np = np.zeros(width + 1, dtype=np.int64)
        np.cumsum(np.bincount(keys, minlength=width), out=crow_np[1:])
        out = (
            torch.from_numpy(order_np),
            torch.from_numpy(crow_np),
            torch.from_numpy(order_np // max(k, 1)),
        )
    else:
        order = torch.argsort(flat, stable=True)
        crow = torch.zeros(width + 1, dtype=torch.long, device=flat.device)
        crow[1:] = torch.cumsum(torch.bincount(flat, minlength=width), 0)
        out = (order, crow, torch.div(order, max(k, 1), rounding_mode="floor"))
    _local.grouping = (key, indices, out)
    return out


def _t_times(
    indices: torch.Tensor, weights: torch.Tensor, dense: torch.Tensor, width: int
) -> torch.Tensor:
    """``S^T @ dense``: S (n, width) sparse, dense (n, d) -> (width, d)."""
    if is_dense_indices(indices, width):
        return weights.t() @ dense
    order, crow, rows = _grouping(indices, width)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st = torch.sparse_csr_tensor(
            crow, rows, weights.reshape(-1)[order], (width, indices.shape[0])
        )
    return st @ dense


def _sampled(indices: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """``out[i, s] = left[i] . right[indices[i, s]]``: left (n, d), right (width, d) -> (n, k)."""
    width = right.shape[0]
    if is_dense_indices(indices, width):
        return left @ right.t()
    n, k = indices.shape
    if n * k == 0:
        return left.new_zeros(n, k)
    pattern = _csr(indices, left.new_zeros(n * k), width)
    out = torch.sparse.sampled_addmm(pattern, left, right.t(), beta=0.0, alpha=1.0)
    return out.values().reshape(n, k)


def _scatter_sum(indices: torch.Tensor, weights: torch.Tensor, width: int) -> torch.Tensor:
    if is_dense_indices(indices, width):
        return weights.sum(0)
    out = weights.new_zeros(width)
    return out.index_add_(0, indices.reshape(-1), weights.reshape(-1))


def _encoder_grads(
    ctx: Any, x: torch.Tensor, W_enc: torch.Tensor, indices: torch.Tensor, G: torch.Tensor
) -> tuple[Any, Any, Any]:
    """Gradients of (x, W_enc, b_enc) given ``G`` (n, k), the gradient at ``pre[i, idx]``."""
    width = W_enc.shape[1]
    gx = gW = gb = None
    if ctx.needs_input_grad[0]:
        gx = _rows_times(indices, G, W_enc.t())
    if ctx.needs_input_grad[1]:
        gW = _t_times(indices, G, x, width).t()
    if ctx.needs_input_grad[2]:
        gb = _scatter_sum(indices, G, width)
    return gx, gW, gb


# ---------------------------------------------------------------------------- TopK ----
class _TopKEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x, W_enc, b_enc, k: int, columns):  # type: ignore[override]
        if columns is None:
            pre = _preacts(x, W_enc, b_enc, reuse=True)
        else:
            pre = _preacts(
                x, W_enc.index_select(1, columns), b_enc.index_select(0, columns), reuse=False
            )
        values, indices = torch.topk(pre, k, dim=-1, sorted=False)
        if columns is not None:
            indices = columns[indices]
        values = torch.relu(values)
        ctx.save_for_backward(x, W_enc, indices, values)
        ctx.mark_non_differentiable(indices)
        return values, indices

    @staticmethod
    def backward(ctx: Any, g_values, _g_indices):  # type: ignore[override]
        x, W_enc, indices, values = ctx.saved_tensors
        G = g_values * (values > 0)
        return (*_encoder_grads(ctx, x, W_enc, indices, G), None, None)


def _check(x: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor) -> torch.Tensor:
    if W_enc.dim() != 2 or x.shape[-1] != W_enc.shape[0]:
        raise InvalidInputError(
            f"x has width {x.shape[-1]} but W_enc has shape {tuple(W_enc.shape)}; W_enc must "
            "be (d_in, d_sae) with d_in the width of x."
        )
    if b_enc.shape != (W_enc.shape[1],):
        raise InvalidInputError(
            f"b_enc must have shape ({W_enc.shape[1]},), got {tuple(b_enc.shape)}."
        )
    return x.reshape(-1, x.shape[-1])


def topk_encode(
    x_centered: torch.Tensor,
    W_enc: torch.Tensor,
    b_enc: torch.Tensor,
    k: int,
    *,
    columns: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest pre-activations of each row (rectified) and their latent indices.

    ``values = relu(topk(x @ W_enc + b_enc, k))`` as SAELens' TopK (Gao et al. 2024), with a
    sparse backward: the gradients reach ``W_enc``, ``b_enc`` and ``x`` only through the
    ``n * k`` selected pre-activations.

    Parameters
    ----------
    x_centered : Tensor (..., d_in)
        Encoder input (already ``x - b_dec`` where the SAE centres its input).
    W_enc : Tensor (d_in, d_sae)
    b_enc : Tensor (d_sae,)
    k : int
        Active latents per row, ``1 <= k <= d_sae`` (or ``<= len(columns)``).
    columns : LongTensor (m,), optional
        Choose among these latents only (AuxK's dead latents); indices stay in ``[0, d_sae)``.

    Returns
    -------
    values : Tensor (..., k)
        Zero where fewer than k pre-activations are positive.
    indices : LongTensor (..., k)
        In no particular order within a row.

    References
    ----------
    .. [1] Gao, L. et al. (2024). "Scaling and evaluating sparse autoencoders."
       arXiv:2406.04093.
    """
    x = _check(x_centered, W_enc, b_enc)
    pool = W_enc.shape[1] if columns is None else int(columns.numel())
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= pool:
        raise InvalidParameterError(
            f"k={k!r} must be an integer in [1, {pool}] (the number of latents to choose from)."
        )
    values, indices = _TopKEncode.apply(x, W_enc, b_enc, k, columns)
    lead = x_centered.shape[:-1]
    return values.reshape(*lead, k), indices.reshape(*lead, k)


# ---------------------------------------------------------------------------- BatchTopK ----
def _batch_topk_select(
    pre: torch.Tensor, total: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``total`` largest entries of ``pre`` (n, width) as padded rows.

    Each row's candidates are its ``kc`` largest entries (descending); the batch's top
    ``total`` among the candidates is exact unless some row has all ``kc`` kept and its
    smallest candidate strictly above the cut (it may hold more), in which case ``kc``
    grows. A row's kept entries are a prefix of its candidates (up to ties at the cut,
    which are interchangeable).
    """
    n, width = pre.shape
    kc = min(width, 4 * max(1, math.ceil(total / max(n, 1))))
    while True:
        cand_values, cand_indices = torch.topk(pre, kc, dim=-1, sorted=True)
        kept = torch.topk(cand_values.reshape(-1), total, sorted=False)
        counts = torch.bincount(torch.div(kept.indices, kc, rounding_mode="floor"), minlength=n)
        if kc == width:
            break
        cut = kept.values.min()
        if not bool(((counts == kc) & (cand_values[:, -1] > cut)).any()):
            break
        kc = min(width, kc * 4)
    K = max(int(counts.max()), 1)
    valid = torch.arange(K, device=pre.device) < counts[:, None]
    return cand_values[:, :K], cand_indices[:, :K], valid


class _BatchTopKEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x, W_enc, b_enc, total: int):  # type: ignore[override]
        pre = _preacts(x, W_enc, b_enc, reuse=True)
        n, width = pre.shape
        if total >= n * width:
            values = torch.relu(pre)  # the workspace is not kept: relu copies
            indices = dense_indices(n, width, pre.device)
        else:
            values, indices, valid = _batch_topk_select(pre, total)
            values = torch.relu(values) * valid
        ctx.save_for_backward(x, W_enc, indices, values)
        ctx.mark_non_differentiable(indices)
        return values, indices

    @staticmethod
    def backward(ctx: Any, g_values, _g_indices):  # type: ignore[override]
        x, W_enc, indices, values = ctx.saved_tensors
        G = g_values * (values > 0)
        return (*_encoder_grads(ctx, x, W_enc, indices, G), None)


def batchtopk_encode(
    x_centered: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, k: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's ``int(k * n)`` largest rectified pre-activations, as padded rows.

    As SAELens' BatchTopK (Bussmann et al. 2024): over the whole batch of ``n`` rows keep the
    ``int(k * n)`` largest entries of ``relu(x @ W_enc + b_enc)``. Rows keep different
    numbers of latents; they are padded to the most active row with value 0.

    Parameters
    ----------
    x_centered : Tensor (n, d_in)
    W_enc : Tensor (d_in, d_sae)
    b_enc : Tensor (d_sae,)
    k : float
        Mean active latents per row, ``0 < k <= d_sae``.

    Returns
    -------
    values : Tensor (n, K)
        The kept activations (zeros in padding slots); the smallest positive one is what
        BatchTopK's running inference threshold averages.
    indices : LongTensor (n, K)
        ``K`` is the most latents any row keeps; ``dense_indices(n, d_sae)`` when every
        latent is kept.

    References
    ----------
    .. [1] Bussmann, B., Leask, P. and Nanda, N. (2024). "BatchTopK Sparse Autoencoders."
       arXiv:2412.06410.
    """
    x = _check(x_centered, W_enc, b_enc)
    if x_centered.dim() != 2:
        raise InvalidInputError(
            f"batchtopk_encode takes a batch of shape (n, d_in), got {tuple(x_centered.shape)}; "
            "reshape it to (-1, d_in) first."
        )
    width = W_enc.shape[1]
    if isinstance(k, bool) or not isinstance(k, (int, float)) or not 0 < k <= width:
        raise InvalidParameterError(f"k={k!r} must be a number in (0, {width}].")
    total = int(k * x.shape[0])
    if total == 0:
        n = x.shape[0]
        return x.new_zeros(n, 1), torch.zeros(n, 1, dtype=torch.long, device=x.device)
    return _BatchTopKEncode.apply(x, W_enc, b_enc, total)


# ---------------------------------------------------------------------------- JumpReLU ----
def _pad_mask(
    pre: torch.Tensor, mask: torch.Tensor, counts: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Entries of ``pre`` where ``mask``, as rows padded to the longest one."""
    n = pre.shape[0]
    K = max(int(counts.max()) if n else 0, 1)
    rows, cols = mask.nonzero(as_tuple=True)
    starts = torch.cumsum(counts, 0) - counts
    pos = torch.arange(rows.numel(), device=pre.device) - starts[rows]
    indices = torch.zeros(n, K, dtype=torch.long, device=pre.device)
    indices[rows, pos] = cols
    values = pre.new_zeros(n, K)
    values[rows, pos] = pre[rows, cols]
    valid = torch.zeros(n, K, dtype=torch.bool, device=pre.device)
    valid[rows, pos] = True
    return values, indices, valid


class _JumpReLUEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x, W_enc, b_enc, threshold, bandwidth: float, window: bool):  # type: ignore[override]
        pre = _preacts(x, W_enc, b_enc, reuse=True)
        n, width = pre.shape
        thr = threshold.to(pre.dtype)
        # training carries the latents within bandwidth / 2 below the threshold too (their
        # d loss / d f feeds the threshold's gradient); a full bandwidth of margin covers
        # the rounding of the rectangle test made later on the gathered entries
        mask = pre > (thr - bandwidth if window else thr)
        counts = mask.sum(dim=1)
        if int(counts.sum()) > DENSE_FRACTION * pre.numel():
            z = pre.clone()
            indices = dense_indices(n, width, pre.device)
            valid = torch.ones((), dtype=torch.bool, device=pre.device).expand(n, width)
            thr_i = thr.expand(n, width)
        else:
            z, indices, valid = _pad_mask(pre, mask, counts)
            thr_i = thr[indices]
        active = (z > thr_i) & valid
        values = z * active
        l0 = active.sum(dim=1).to(pre.dtype)
        ctx.save_for_backward(x, W_enc, indices, z, valid, threshold)
        ctx.bandwidth = bandwidth
        ctx.mark_non_differentiable(indices)
        return values, indices, l0

    @staticmethod
    def backward(ctx: Any, g_values, _g_indices, g_l0):  # type: ignore[override]
        x, W_enc, indices, z, valid, threshold = ctx.saved_tensors
        width = W_enc.shape[1]
        dense = is_dense_indices(indices, width)
        thr_i = threshold.to(z.dtype).expand_as(z) if dense else threshold.to(z.dtype)[indices]
        active = (z > thr_i) & valid
        G = g_values * active
        gx, gW, gb = _encoder_grads(ctx, x, W_enc, indices, G)
        g_thr = None
        if ctx.needs_input_grad[3]:
            eps = ctx.bandwidth
            u = (z - thr_i) / eps
            rect = ((u > -0.5) & (u < 0.5) & valid).to(z.dtype)
            per_entry = -(thr_i / eps) * rect * g_values - (1.0 / eps) * rect * g_l0[:, None]
            g_thr = _scatter_sum(indices, per_entry, width).to(threshold.dtype)
        return gx, gW, gb, g_thr, None, None


def jumprelu_encode(
    x_centered: torch.Tensor,
    W_enc: torch.Tensor,
    b_enc: torch.Tensor,
    threshold: torch.Tensor,
    bandwidth: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """JumpReLU latents ``z H(z - threshold)`` as padded rows, with their per-row L0.

    The pseudo-derivatives (straight-through estimators with a rectangle kernel of width
    ``bandwidth``) are those of Rajamanoharan et al. (2024) and SAELens' ``JumpReLU`` and
    ``Step``: ``values`` passes gradient to the pre-activations where active and to
    ``threshold`` through ``-(t / eps) K((z - t) / eps)``; ``l0`` to ``threshold`` only,
    through ``-(1 / eps) K((z - t) / eps)``.

    Parameters
    ----------
    x_centered : Tensor (n, d_in)
    W_enc : Tensor (d_in, d_sae)
    b_enc : Tensor (d_sae,)
    threshold : Tensor (d_sae,)
    bandwidth : float
        ``eps`` of the rectangle kernel, > 0.

    Returns
    -------
    values : Tensor (n, K)
        Active latents' pre-activations, 0 elsewhere. While ``threshold`` needs a gradient,
        the rows also hold (with value 0) the latents within ``bandwidth`` below the
        threshold. ``dense_indices`` layout above ``DENSE_FRACTION`` of entries.
    indices : LongTensor (n, K)
    l0 : Tensor (n,)
        Active latents per row (``sum_j H(z_j - t_j)``), differentiable in ``threshold``.

    References
    ----------
    .. [1] Rajamanoharan, S. et al. (2024). "Jumping Ahead: Improving Reconstruction Fidelity
       with JumpReLU Sparse Autoencoders." arXiv:2407.14435.
    """
    x = _check(x_centered, W_enc, b_enc)
    if x_centered.dim() != 2:
        raise InvalidInputError(
            f"jumprelu_encode takes a batch of shape (n, d_in), got {tuple(x_centered.shape)}; "
            "reshape it to (-1, d_in) first."
        )
    if threshold.shape != (W_enc.shape[1],):
        raise InvalidInputError(
            f"threshold must have shape ({W_enc.shape[1]},), got {tuple(threshold.shape)}."
        )
    if not bandwidth > 0:
        raise InvalidParameterError(f"bandwidth={bandwidth!r} must be > 0 (e.g. 0.001).")
    window = torch.is_grad_enabled() and threshold.requires_grad
    return _JumpReLUEncode.apply(x, W_enc, b_enc, threshold, float(bandwidth), window)


# ---------------------------------------------------------------------------- decoder ----
class _SparseDecode(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, values, indices, W_dec, b_dec):  # type: ignore[override]
        out = _rows_times(indices, values, W_dec)
        if b_dec is not None:
            out = out + b_dec
        ctx.save_for_backward(values, indices, W_dec)
        return out

    @staticmethod
    def backward(ctx: Any, g_out):  # type: ignore[override]
        values, indices, W_dec = ctx.saved_tensors
        g_values = g_W = g_b = None
        if ctx.needs_input_grad[0]:
            g_values = _sampled(indices, g_out, W_dec)
        if ctx.needs_input_grad[2]:
            g_W = _t_times(indices, values, g_out, W_dec.shape[0])
        if ctx.needs_input_grad[3]:
            g_b = g_out.sum(0)
        return g_values, None, g_W, g_b


def sparse_decode(
    values: torch.Tensor,
    indices: torch.Tensor,
    W_dec: torch.Tensor,
    b_dec: torch.Tensor | None = None,
) -> torch.Tensor:
    """``b_dec + sum_s values[..., s] * W_dec[indices[..., s]]`` on the active rows only.

    Equal to ``dense(values, indices) @ W_dec + b_dec`` to float rounding (repeated indices
    add up), forward and backward, without the dense (n, d_sae) matrix.

    Parameters
    ----------
    values : Tensor (..., k)
    indices : LongTensor (..., k)
        In ``[0, d_sae)``; or the ``dense_indices`` layout.
    W_dec : Tensor (d_sae, d_out)
    b_dec : Tensor (d_out,), optional

    Returns
    -------
    Tensor (..., d_out)
    """
    if values.shape != indices.shape:
        raise InvalidInputError(
            f"values {tuple(values.shape)} and indices {tuple(indices.shape)} must have the "
            "same shape (..., k)."
        )
    if W_dec.dim() != 2 or (b_dec is not None and b_dec.shape != (W_dec.shape[1],)):
        raise InvalidInputError(
            f"W_dec must be (d_sae, d_out) and b_dec (d_out,), got {tuple(W_dec.shape)} and "
            f"{None if b_dec is None else tuple(b_dec.shape)}."
        )
    k = values.shape[-1]
    lead = values.shape[:-1]
    out = _SparseDecode.apply(values.reshape(-1, k), indices.reshape(-1, k), W_dec, b_dec)
    return out.reshape(*lead, W_dec.shape[1])
