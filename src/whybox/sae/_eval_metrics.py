"""The per-batch metric sums of :func:`whybox.sae.evaluation.evaluate`: running float64 sums
(with a pairwise merge of the variance, Chan et al.), the reconstruction and sparsity sums of a
batch, next-token cross-entropy, KL divergence and a safe ratio. :mod:`whybox.sae.evaluation`
imports them (they are private).

References
----------
Chan, T. F., Golub, G. H. & LeVeque, R. J. (1979). Updating formulae and a pairwise algorithm
for computing sample variances. Technical report STAN-CS-79-773, Stanford University.
Gao, L. et al. (2024). Scaling and evaluating sparse autoencoders. arXiv:2406.04093.
(Normalised MSE, downstream loss.)
Rajamanoharan, S. et al. (2024). Improving dictionary learning with gated sparse
autoencoders. arXiv:2404.16014. (Relative reconstruction bias, eq. 10.)
"""

from __future__ import annotations

from typing import Any

import numpy as np


class _Sums:
    """Running float64 sums of the metrics over batches."""

    def __init__(self, d_sae: int) -> None:
        self.n = 0
        self.mean: np.ndarray | None = None  # per-dimension mean of y (Chan et al. merge)
        self.m2 = 0.0  # sum over tokens of ||y - mean||^2
        self.s: dict[str, float] = {}
        self.fired = np.zeros(d_sae, dtype=np.int64)

    def add(self, key: str, value: float) -> None:
        self.s[key] = self.s.get(key, 0.0) + float(value)

    def add_variance(self, y: np.ndarray) -> None:
        n_b = y.shape[0]
        if n_b == 0:
            return
        mean_b = y.mean(axis=0)
        m2_b = float(((y - mean_b) ** 2).sum())
        if self.mean is None:
            self.n, self.mean, self.m2 = n_b, mean_b, m2_b
            return
        delta = mean_b - self.mean
        total = self.n + n_b
        self.m2 += m2_b + float(delta @ delta) * self.n * n_b / total
        self.mean = self.mean + delta * n_b / total
        self.n = total


def _recon_metrics(sums: _Sums, y: Any, y_hat: Any, f: Any, torch: Any) -> None:
    """Add one batch's reconstruction and sparsity sums; y, y_hat (n, d_out), f (n, d_sae)."""
    y64, h64 = y.double(), y_hat.double()
    err = ((y64 - h64) ** 2).sum(-1)
    n_in = y64.norm(dim=-1)
    n_out = h64.norm(dim=-1)
    safe = torch.where(n_in.abs() < 1e-4, torch.ones_like(n_in), n_in)
    denom = (n_in * n_out).clamp_min(1e-30)
    sums.add("sse", err.sum())
    sums.add("cos", ((y64 * h64).sum(-1) / denom).sum())
    sums.add("norm_in", n_in.sum())
    sums.add("norm_out", n_out.sum())
    sums.add("ratio", (n_out / safe).sum())
    sums.add("out_sq", (n_out**2).sum())
    sums.add("dot", (y64 * h64).sum())
    active = f != 0
    sums.add("l0", active.sum())
    sums.add("l1", f.double().abs().sum())
    sums.fired += active.sum(0).cpu().numpy().astype(np.int64)
    sums.add_variance(y64.cpu().numpy())


def _token_losses(logits: Any, ids: Any, torch: Any) -> Any:
    """Next-token cross-entropy (batch, pos - 1) in float32."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    return -logp.gather(-1, ids[:, 1:, None]).squeeze(-1)


def _kl(clean: tuple[Any, Any], logits: Any, torch: Any) -> Any:
    """KL(p_clean || p_run) per position (batch, pos); ``clean`` = (log p, p)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return (clean[1] * (clean[0] - logp)).sum(-1)


def _ratio(num: float, den: float) -> float:
    return num / den if den != 0 else float("nan")
