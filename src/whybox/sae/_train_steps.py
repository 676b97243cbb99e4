"""The steps of :func:`whybox.sae.training.train` that stand on their own: the checks of a
batch and of the loss, the Adam optimiser, Anthropic's resampling of dead latents and the
progress bar. :mod:`whybox.sae.training` imports them (they are private).

References
----------
Bricken, T. et al. (2023). Towards Monosemanticity: Decomposing Language Models With Dictionary
Learning. Transformer Circuits Thread (resampling of dead neurons).
Kingma, D. P. & Ba, J. (2015). Adam: A Method for Stochastic Optimization. ICLR.
"""

from __future__ import annotations

import math
import sys

from whybox.errors import InvalidInputError, InvalidParameterError


# ----------------------------------------------------------------------------- checks
def _check_finite(x, name: str, step: int, row_offset: int) -> None:
    import torch

    if math.isfinite(float(x.sum())):  # one pass: a NaN or inf anywhere makes the sum one
        return
    bad = ~torch.isfinite(x)
    if bool(bad.any()):  # (else the sum merely overflowed)
        row, col = (int(v) for v in bad.nonzero()[0])
        err = InvalidInputError(
            f"{name} contain NaN or inf at training step {step}: batch row {row} (token "
            f"{row_offset + row} of the stream), dimension {col} ({int(bad.sum())} values in "
            "this batch). Nothing was trained on this batch. Check the model's activations at "
            "this site (e.g. an overflow in float16) or filter the shards."
        )
        err.step, err.row, err.dimension = step, row_offset + row, col
        raise err


def _check_loss(sae, loss: float, step: int) -> None:
    import torch

    if math.isfinite(loss):
        return
    latents: list[int] = []
    for name in ("W_enc", "b_enc", "W_dec"):
        p = getattr(sae, name, None)
        if p is None:
            continue
        t = p.detach() if name != "W_enc" else p.detach().T
        bad = ~torch.isfinite(t.reshape(t.shape[0], -1)).all(dim=1)
        latents += bad.nonzero().flatten().tolist()
    where = (
        f"latents {sorted(set(latents))[:10]} have non-finite weights"
        if latents
        else "the weights are finite (the loss overflowed)"
    )
    err = InvalidParameterError(
        f"the training loss became {loss} at step {step}; {where}. Training stopped "
        "before updating. Lower lr, use normalize_activations='expected_average_only_in', or "
        "train in float32."
    )
    err.step, err.latents = step, sorted(set(latents))
    raise err


def _adam(params: list, lr: float, betas: tuple):
    """Adam, fused into one kernel where torch has one for these tensors (3x faster on CPU)."""
    import torch

    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.Adam(params, lr=lr, betas=betas)


# ----------------------------------------------------------------------------- resampling
def _resample_dead_(sae, opt, x, y, dead, gen) -> int:
    """Anthropic's resampling (Bricken et al. 2023) of the latents in ``dead`` (bool (d_sae,)).

    Inputs are drawn with probability proportional to the square of their reconstruction loss;
    a dead latent's decoder row becomes the drawn target's unit direction, its encoder column
    that input's unit direction times 0.2 times the mean norm of the live encoder columns, its
    bias 0, and its Adam moments are reset.
    """
    import torch

    idx = dead.nonzero().flatten()
    n = int(idx.numel())
    if n == 0:
        return 0
    with torch.no_grad():
        target = x if y is None else y
        loss = (sae(x) - target.to(sae.W_dec.dtype)).pow(2).sum(dim=-1).double()
        weights = loss.pow(2).cpu()
        if not bool(weights.sum() > 0):
            return 0
        replace = n > int((weights > 0).sum())
        rows = torch.multinomial(weights, n, replacement=replace, generator=gen).to(x.device)
        dirs_out = target[rows].to(sae.W_dec.dtype)
        dirs_out = dirs_out / torch.linalg.vector_norm(dirs_out, dim=1, keepdim=True).clamp_min(
            1e-12
        )
        dirs_in = x[rows].to(sae.W_enc.dtype)
        dirs_in = dirs_in / torch.linalg.vector_norm(dirs_in, dim=1, keepdim=True).clamp_min(1e-12)
        alive = ~dead
        enc_norms = torch.linalg.vector_norm(sae.W_enc, dim=0)
        scale = float(enc_norms[alive].mean()) if bool(alive.any()) else 1.0
        sae.W_dec[idx] = dirs_out
        sae.W_enc[:, idx] = (dirs_in * (0.2 * scale)).T
        sae.b_enc[idx] = 0.0
        for param, sel in (
            (sae.W_dec, (idx,)),
            (sae.W_enc, (slice(None), idx)),
            (sae.b_enc, (idx,)),
        ):
            st = opt.state.get(param, {})
            for key in ("exp_avg", "exp_avg_sq"):
                if key in st:
                    st[key][sel] = 0.0
    return n


# ----------------------------------------------------------------------------- progress
class _Progress:
    def __init__(self, enabled: bool, total: int, start: int):
        self.bar = None
        if not enabled:
            return
        from rich import progress as rp
        from rich.console import Console

        self.bar = rp.Progress(
            rp.TextColumn("SAE"), rp.BarColumn(), rp.MofNCompleteColumn(),
            rp.TimeRemainingColumn(), rp.TextColumn("{task.fields[metrics]}"),
            console=Console(file=sys.stderr),
        )  # fmt: skip
        self.bar.start()
        self.task = self.bar.add_task("train", total=total, completed=start, metrics="")

    def update(self, step: int, metrics: dict | None) -> None:
        if self.bar is None:
            return
        text = ""
        if metrics:
            text = (
                f"L0 {metrics['l0']:.1f}  FVU {metrics['fvu']:.4f}  "
                f"dead {metrics['dead_fraction']:.3f}  lr {metrics['lr']:.2e}"
            )
        self.bar.update(self.task, completed=step, **({"metrics": text} if text else {}))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
