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

Rows with different numbers of active latents (BatchTopK, JumpReLU) come either padded to
the most active row (padding slots hold value 0 and pass no gradient on), or, with
``compact=True``, as CSR rows: flat ``values`` and ``indices`` (nnz,) and the row
``offsets`` (n + 1,), which :func:`sparse_decode` takes as ``offsets=``. When more than
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
    "compact_to_padded",
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
# A sparse (n, width) matrix S is (crow (n + 1,), cols (nnz,), vals (nnz,)), rows in order.
def _fixed_crow(n: int, k: int, device: Any) -> torch.Tensor:
    """Row offsets of n rows of k entries; the same tensor while (n, k, device) repeat."""
    key = (n, k, str(device))
    cached = getattr(_local, "crow", None)
    if cached is None or cached[0] != key:
        if k == 0:
            crow = torch.zeros(n + 1, dtype=torch.long, device=device)
        else:
            crow = torch.arange(0, n * k + 1, k, device=device)
        cached = (key, crow)
        _local.crow = cached
    return cached[1]


def _csr(crow, cols, vals, shape) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(crow, cols, vals, shape)


def _rows_times(crow, cols, vals, right: torch.Tensor) -> torch.Tensor:
    """``S @ right``: right (width, d) -> (n, d)."""
    return _csr(crow, cols, vals, (crow.numel() - 1, right.shape[0])) @ right


def _grouping(crow: torch.Tensor, cols: torch.Tensor, width: int) -> tuple:
    """CSR of S^T: (order, crow_t (width + 1,), rows (nnz,)) for the pattern (crow, cols).

    ``order`` lists the entries grouped by latent (stably), ``rows`` their row numbers. On the
    CPU with ``width <= 65535`` this is numpy's radix sort of 16-bit keys, one
    single-threaded O(nnz) pass, where torch's parallel sort waits on its threads at every
    pass (hundreds of ms on a loaded machine). The last result is kept, with references to
    ``crow`` and ``cols`` so that their memory cannot be reused meanwhile: the decoder's and
    the encoder's backward passes of one step share it.
    """
    key = (
        *((t.data_ptr(), t.storage_offset(), tuple(t.shape), t._version) for t in (crow, cols)),
        cols.device,
        width,
    )
    cached = getattr(_local, "grouping", None)
    if cached is not None and cached[0] == key:
        return cached[2]
    n = crow.numel() - 1
    if cols.device.type == "cpu" and width <= 65535:
        import numpy as np

        keys = cols.numpy().astype(np.uint16)
        order = np.argsort(keys, kind="stable")
        crow_t = np.zeros(width + 1, dtype=np.int64)
        np.cumsum(np.bincount(keys, minlength=width), out=crow_t[1:])
        row_of = np.repeat(np.arange(n, dtype=np.int64), np.diff(crow.numpy()))
        out = tuple(torch.from_numpy(a) for a in (order, crow_t, row_of[order]))
    else:
        order = torch.argsort(cols, stable=True)
        crow_t = torch.zeros(width + 1, dtype=torch.long, device=cols.device)
        crow_t[1:] = torch.cumsum(torch.bincount(cols, minlength=width), 0)
        counts = crow[1:] - crow[:-1]
        row_of = torch.repeat_interleave(torch.arange(n, device=cols.device), counts)
        out = (order, crow_t, row_of[order])
    _local.grouping = (key, (crow, cols), out)
    return out


def _t_times(crow, cols, vals, dense: torch.Tensor, width: int) -> torch.Tensor:
    """``S^T @ dense``: dense (n, d) -> (width, d)."""
    order, crow_t, rows = _grouping(crow, cols, width)
    return _csr(crow_t, rows, vals[order], (width, crow.numel() - 1)) @ dense


def _sampled(crow, cols, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """``out[e] = left[row(e)] . right[cols[e]]``: left (n, d), right (width, d) -> (nnz,)."""
    nnz = cols.numel()
    if nnz == 0:
        return left.new_zeros(0)
    pattern = _csr(crow, cols, left.new_zeros(nnz), (crow.numel() - 1, right.shape[0]))
    return torch.sparse.sampled_addmm(pattern, left, right.t(), beta=0.0, alpha=1.0).values()


def _encoder_grads(ctx: Any, x, W_enc, crow, cols, G) -> tuple[Any, Any, Any]:
    """Gradients of (x, W_enc, b_enc) from ``G``, the gradient at the entries' pre-activations.

    ``crow is None``: dense layout, ``G`` (n, width).
    """
    width = W_enc.shape[1]
    gx = gW = gb = None
    if crow is None:
        if ctx.needs_input_grad[0]:
            gx = G @ W_enc.t()
        if ctx.needs_input_grad[1]:
            gW = x.t() @ G
        if ctx.needs_input_grad[2]:
            gb = G.sum(0)
        return gx, gW, gb
    if ctx.needs_input_grad[0]:
        gx = _rows_times(crow, cols, G, W_enc.t())
    if ctx.needs_input_grad[1]:
        gW = _t_times(crow, cols, G, x, width).t()
    if ctx.needs_input_grad[2]:
        gb = G.new_zeros(width).index_add_(0, cols, G)
    return gx, gW, gb


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


def _check_batch(x_centered: torch.Tensor, name: str) -> None:
    if x_centered.dim() != 2:
        raise InvalidInputError(
            f"{name} takes a batch of shape (n, d_in), got {tuple(x_centered.shape)}; reshape "
            "it to (-1, d_in) first."
        )


def compact_to_padded(
    values: torch.Tensor, indices: torch.Tensor, offsets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """CSR rows ``(values, indices, offsets)`` as (n, K) arrays padded with value 0.

    Differentiable in ``values``. Padding slots repeat index 0 with value 0.
    """
    n = offsets.numel() - 1
    counts = offsets[1:] - offsets[:-1]
    K = max(int(counts.max()) if n else 0, 1)
    rows = torch.repeat_interleave(torch.arange(n, device=values.device), counts)
    pos = torch.arange(values.numel(), device=values.device) - offsets[:-1][rows]
    padded_idx = torch.zeros(n, K, dtype=torch.long, device=values.device)
    padded_idx[rows, pos] = indices
    padded = values.new_zeros(n, K).index_put((rows, pos), values)
    return padded, padded_idx


def _split(out: tuple, compact: bool) -> tuple:
    """Encoder outputs (values, indices, crow[, l0]) -> the layout asked for."""
    values, indices, crow, *rest = out
    if crow.numel() == 0:  # dense layout
        return (values, indices, None, *rest) if compact else (values, indices, *rest)
    if compact:
        return (values, indices, crow, *rest)
    return (*compact_to_padded(values, indices, crow), *rest)


# ---------------------------------------------------------------------------- TopK ----
class _TopKEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x, W_enc, b_enc, k: int, columns):  # type: ignore[override]
        if columns is None:
            pre = _preacts(x, W_enc, b_enc, reuse=True)
        else:
            W, b = W_enc.index_select(1, columns), b_enc.index_select(0, columns)
            pre = _preacts(x, W, b, reuse=False)
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
        n, k = indices.shape
        G = (g_values * (values > 0)).reshape(-1)
        crow = _fixed_crow(n, k, x.device)
        return (*_encoder_grads(ctx, x, W_enc, crow, indices.reshape(-1), G), None, None)


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
def _rows_to_csr(rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, n: int) -> tuple:
    """Entries in any order -> CSR (crow, cols, vals) with rows in order (stable)."""
    if rows.device.type == "cpu" and n <= 65535:
        import numpy as np

        keys = rows.numpy().astype(np.uint16)
        order = torch.from_numpy(np.argsort(keys, kind="stable"))
        counts = torch.from_numpy(np.bincount(keys, minlength=n).astype(np.int64))
    else:
        order = torch.argsort(rows, stable=True)
        counts = torch.bincount(rows, minlength=n)
    crow = torch.zeros(n + 1, dtype=torch.long, device=rows.device)
    crow[1:] = torch.cumsum(counts, 0)
    return crow, cols[order], vals[order]


def _batch_topk_select(pre: torch.Tensor, total: int) -> tuple:
    """The ``total`` largest entries of ``pre`` (n, width) as CSR (crow, cols, values).

    Candidates are each row's ``kc`` largest entries (``kc`` twice the mean); the batch's top
    ``total`` among them is exact unless a row's smallest candidate lies strictly above the
    cut (the row may hold more), and such rows get 4x more candidates until none does.
    """
    n, width = pre.shape
    kc = min(width, 2 * max(1, math.ceil(total / max(n, 1))))
    cv, ci = torch.topk(pre, kc, dim=-1, sorted=False)
    vals, cols = cv.reshape(-1), ci.reshape(-1)
    rows = torch.arange(n, device=pre.device).repeat_interleave(kc)
    row_min = cv.min(dim=1).values
    row_kc = torch.full((n,), kc, dtype=torch.long, device=pre.device)
    while True:
        kept = torch.topk(vals, total, sorted=False)
        cut = kept.values.min()
        bad = (row_min > cut) & (row_kc < width)
        if not bool(bad.any()):
            break
        redo = bad.nonzero().flatten()
        kc = min(width, int(row_kc[redo].max()) * 4)
        cv2, ci2 = torch.topk(pre[redo], kc, dim=-1, sorted=False)
        keep = ~bad[rows]
        vals = torch.cat([vals[keep], cv2.reshape(-1)])
        cols = torch.cat([cols[keep], ci2.reshape(-1)])
        rows = torch.cat([rows[keep], redo.repeat_interleave(kc)])
        row_min[redo] = cv2.min(dim=1).values
        row_kc[redo] = kc
    return _rows_to_csr(rows[kept.indices], cols[kept.indices], kept.values, n)


class _BatchTopKEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x, W_enc, b_enc, total: int):  # type: ignore[override]
        pre = _preacts(x, W_enc, b_enc, reuse=True)
        n, width = pre.shape
        if total >= n * width:
            values = torch.relu(pre)  # the workspace is not kept: relu copies
            indices = dense_indices(n, width, pre.device)
            crow = torch.zeros(0, dtype=torch.long, device=pre.device)
        else:
            crow, indices, values = _batch_topk_select(pre, total)
            values = torch.relu(values)
        ctx.save_for_backward(x, W_enc, indices, values, crow)
        ctx.mark_non_differentiable(indices, crow)
        return values, indices, crow

    @staticmethod
    def backward(ctx: Any, g_values, _g_indices, _g_crow):  # type: ignore[override]
        x, W_enc, indices, values, crow = ctx.saved_tensors
        G = g_values * (values > 0)
        dense = crow.numel() == 0
        grads = _encoder_grads(ctx, x, W_enc, None if dense else crow, indices, G)
        return (*grads, None)


def batchtopk_encode(
    x_centered: torch.Tensor,
    W_enc: torch.Tensor,
    b_enc: torch.Tensor,
    k: float,
    *,
    compact: bool = False,
) -> tuple:
    """The batch's ``int(k * n)`` largest rectified pre-activations.

    As SAELens' BatchTopK (Bussmann et al. 2024): over the whole batch of ``n`` rows keep the
    ``int(k * n)`` largest entries of ``relu(x @ W_enc + b_enc)``. Rows keep different
    numbers of latents.

    Parameters
    ----------
    x_centered : Tensor (n, d_in)
    W_enc : Tensor (d_in, d_sae)
    b_enc : Tensor (d_sae,)
    k : float
        Mean active latents per row, ``0 < k <= d_sae``.
    compact : bool
        Return CSR rows ``(values, indices, offsets)`` instead of padded rows.

    Returns
    -------
    values : Tensor (n, K), or (nnz,) with ``compact``
        The kept activations (zeros in padding slots); the smallest positive one is what
        BatchTopK's running inference threshold averages.
    indices : LongTensor (n, K), or (nnz,) with ``compact``
        ``K`` is the most latents any row keeps; ``dense_indices(n, d_sae)`` (and values
        (n, d_sae)) when every latent is kept.
    offsets : LongTensor (n + 1,) or None
        Only with ``compact``: row ``i`` is ``values[offsets[i]:offsets[i + 1]]``; None in the
        dense layout.

    References
    ----------
    .. [1] Bussmann, B., Leask, P. and Nanda, N. (2024). "BatchTopK Sparse Autoencoders."
       arXiv:2412.06410.
    """
    x = _check(x_centered, W_enc, b_enc)
    _check_batch(x_centered, "batchtopk_encode")
    width = W_enc.shape[1]
    if isinstance(k, bool) or not isinstance(k, int | float) or not 0 < k <= width:
        raise InvalidParameterError(f"k={k!r} must be a number in (0, {width}].")
    n = x.shape[0]
    total = int(k * n)
    if total == 0:
        empty = torch.zeros(0, dtype=torch.long, device=x.device)
        out = (x.new_zeros(0), empty, torch.zeros(n + 1, dtype=torch.long, device=x.device))
        return _split(out, compact)
    return _split(_BatchTopKEncode.apply(x, W_enc, b_enc, total), compact)


# ---------------------------------------------------------------------------- JumpReLU ----
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
        if int(torch.count_nonzero(mask)) > DENSE_FRACTION * pre.numel():
            z = pre.clone()
            indices = dense_indices(n, width, pre.device)
            crow = torch.zeros(0, dtype=torch.long, device=pre.device)
            thr_e = thr.expand(n, width)
            active = z > thr_e
            l0 = active.sum(dim=1).to(pre.dtype)
        else:
            rows, indices = mask.nonzero(as_tuple=True)  # row-major: CSR order
            crow = torch.zeros(n + 1, dtype=torch.long, device=pre.device)
            crow[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)
            z = pre[rows, indices]
            thr_e = thr[indices]
            active = z > thr_e
            l0 = pre.new_zeros(n).index_add_(0, rows, active.to(pre.dtype))
        values = z * active
        ctx.save_for_backward(x, W_enc, indices, z, crow, threshold)
        ctx.bandwidth = bandwidth
        ctx.mark_non_differentiable(indices, crow)
        return values, indices, crow, l0

    @staticmethod
    def backward(ctx: Any, g_values, _g_indices, _g_crow, g_l0):  # type: ignore[override]
        x, W_enc, indices, z, crow, threshold = ctx.saved_tensors
        dense = crow.numel() == 0
        thr = threshold.to(z.dtype)
        thr_e = thr.expand_as(z) if dense else thr[indices]
        G = g_values * (z > thr_e)
        gx, gW, gb = _encoder_grads(ctx, x, W_enc, None if dense else crow, indices, G)
        g_thr = None
        if ctx.needs_input_grad[3]:
            eps = ctx.bandwidth
            u = (z - thr_e) / eps
            rect = ((u > -0.5) & (u < 0.5)).to(z.dtype)
            if dense:
                g_row = g_l0[:, None]
            else:
                counts = crow[1:] - crow[:-1]
                g_row = torch.repeat_interleave(g_l0, counts)
            per_entry = -(thr_e / eps) * rect * g_values - (1.0 / eps) * rect * g_row
            if dense:
                g_thr = per_entry.sum(0)
            else:
                g_thr = per_entry.new_zeros(thr.shape[0]).index_add_(0, indices, per_entry)
            g_thr = g_thr.to(threshold.dtype)
        return gx, gW, gb, g_thr, None, None


def jumprelu_encode(
    x_centered: torch.Tensor,
    W_enc: torch.Tensor,
    b_enc: torch.Tensor,
    threshold: torch.Tensor,
    bandwidth: float,
    *,
    compact: bool = False,
) -> tuple:
    """JumpReLU latents ``z H(z - threshold)`` as sparse rows, with their per-row L0.

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
    compact : bool
        Return CSR rows ``(values, indices, offsets, l0)`` instead of padded rows.

    Returns
    -------
    values : Tensor (n, K), or (nnz,) with ``compact``
        Active latents' pre-activations, 0 elsewhere. While ``threshold`` needs a gradient,
        the rows also hold (with value 0) the latents within ``bandwidth`` below the
        threshold. ``dense_indices`` layout above ``DENSE_FRACTION`` of entries.
    indices : LongTensor (n, K), or (nnz,) with ``compact``
    offsets : LongTensor (n + 1,) or None
        Only with ``compact`` (None in the dense layout).
    l0 : Tensor (n,)
        Active latents per row (``sum_j H(z_j - t_j)``), differentiable in ``threshold``.

    References
    ----------
    .. [1] Rajamanoharan, S. et al. (2024). "Jumping Ahead: Improving Reconstruction Fidelity
       with JumpReLU Sparse Autoencoders." arXiv:2407.14435.
    """
    x = _check(x_centered, W_enc, b_enc)
    _check_batch(x_centered, "jumprelu_encode")
    if threshold.shape != (W_enc.shape[1],):
        raise InvalidInputError(
            f"threshold must have shape ({W_enc.shape[1]},), got {tuple(threshold.shape)}."
        )
    if not bandwidth > 0:
        raise InvalidParameterError(f"bandwidth={bandwidth!r} must be > 0 (e.g. 0.001).")
    window = torch.is_grad_enabled() and threshold.requires_grad
    out = _JumpReLUEncode.apply(x, W_enc, b_enc, threshold, float(bandwidth), window)
    return _split(out, compact)


# ---------------------------------------------------------------------------- decoder ----
class _SparseDecode(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, values, indices, crow, W_dec, b_dec):  # type: ignore[override]
        if crow is None:  # dense layout
            out = values @ W_dec
        else:
            out = _rows_times(crow, indices, values, W_dec)
        if b_dec is not None:
            out = out + b_dec
        ctx.save_for_backward(values, indices, crow, W_dec)
        return out

    @staticmethod
    def backward(ctx: Any, g_out):  # type: ignore[override]
        values, indices, crow, W_dec = ctx.saved_tensors
        g_values = g_W = g_b = None
        if crow is None:
            if ctx.needs_input_grad[0]:
                g_values = g_out @ W_dec.t()
            if ctx.needs_input_grad[3]:
                g_W = values.t() @ g_out
        else:
            if ctx.needs_input_grad[0]:
                g_values = _sampled(crow, indices, g_out, W_dec)
            if ctx.needs_input_grad[3]:
                g_W = _t_times(crow, indices, values, g_out, W_dec.shape[0])
        if ctx.needs_input_grad[4]:
            g_b = g_out.sum(0)
        return g_values, None, None, g_W, g_b


def sparse_decode(
    values: torch.Tensor,
    indices: torch.Tensor,
    W_dec: torch.Tensor,
    b_dec: torch.Tensor | None = None,
    *,
    offsets: torch.Tensor | None = None,
) -> torch.Tensor:
    """``b_dec + sum_s values[..., s] * W_dec[indices[..., s]]`` on the active rows only.

    Equal to ``dense(values, indices) @ W_dec + b_dec`` to float rounding (repeated indices
    add up), forward and backward, without the dense (n, d_sae) matrix.

    Parameters
    ----------
    values : Tensor (..., k), or (nnz,) with ``offsets``
    indices : LongTensor, same shape
        In ``[0, d_sae)``; or the ``dense_indices`` layout.
    W_dec : Tensor (d_sae, d_out)
    b_dec : Tensor (d_out,), optional
    offsets : LongTensor (n + 1,), optional
        CSR rows (the ``compact`` output of the encoders): row ``i`` is entries
        ``offsets[i]:offsets[i + 1]``.

    Returns
    -------
    Tensor (..., d_out), or (n, d_out) with ``offsets``
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
    if offsets is not None:
        if values.dim() != 1 or offsets.dim() != 1 or int(offsets[-1]) != values.numel():
            raise InvalidInputError(
                f"with offsets, values and indices are flat (nnz,) and offsets (n + 1,) ends at "
                f"nnz; got values {tuple(values.shape)} and offsets {tuple(offsets.shape)}."
            )
        return _SparseDecode.apply(values, indices, offsets, W_dec, b_dec)
    k = values.shape[-1]
    lead = values.shape[:-1]
    v2, i2 = values.reshape(-1, k), indices.reshape(-1, k)
    if is_dense_indices(i2, W_dec.shape[0]):
        out = _SparseDecode.apply(v2, i2, None, W_dec, b_dec)
    else:
        crow = _fixed_crow(v2.shape[0], k, values.device)
        out = _SparseDecode.apply(v2.reshape(-1), i2.reshape(-1), crow, W_dec, b_dec)
    return out.reshape(*lead, W_dec.shape[1])
