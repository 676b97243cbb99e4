"""Sparse kernels for sparse autoencoders: top-k encoding and decoding on the active latents.

These first versions rely on autograd; :mod:`whybox.sae.models` calls only the functions below,
so faster kernels (custom backward passes) can replace them without touching the models.

References
----------
.. [1] Gao, L. et al. (2024). "Scaling and evaluating sparse autoencoders." arXiv:2406.04093
   (TopK autoencoders; the decoder runs on the k active latents only).
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["sparse_decode", "topk_encode"]


def topk_encode(
    x: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest rectified pre-activations of each row, and their latent indices.

    Parameters
    ----------
    x : Tensor (n, d_in)
        Encoder input (already centred by ``b_dec`` where the SAE does that).
    W_enc : Tensor (d_in, d_sae)
    b_enc : Tensor (d_sae,)
    k : int
        Active latents per row, ``1 <= k <= d_sae``.

    Returns
    -------
    values : Tensor (n, k)
        ``relu`` of the k largest pre-activations (zeros where fewer than k are positive).
    indices : LongTensor (n, k)
    """
    pre = x @ W_enc + b_enc
    top = torch.topk(pre, k, dim=-1, sorted=False)
    return torch.relu(top.values), top.indices


def sparse_decode(
    values: torch.Tensor, indices: torch.Tensor, W_dec: torch.Tensor, b_dec: torch.Tensor
) -> torch.Tensor:
    """``b_dec + sum_j values[:, j] * W_dec[indices[:, j]]`` without the dense (n, d_sae) matrix.

    Parameters
    ----------
    values : Tensor (n, k)
    indices : LongTensor (n, k)
    W_dec : Tensor (d_sae, d_out)
    b_dec : Tensor (d_out,)

    Returns
    -------
    Tensor (n, d_out)
        Equal to ``dense(values, indices) @ W_dec + b_dec`` to float rounding.
    """
    out: Any = torch.nn.functional.embedding_bag(
        indices, W_dec, per_sample_weights=values, mode="sum"
    )
    return out + b_dec
