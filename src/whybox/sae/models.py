"""Sparse autoencoders and transcoders: one base class, one subclass per architecture.

An SAE reads an activation ``x`` (d_in), encodes it into many sparse latents ``f`` (d_sae) and
decodes ``x_hat = f @ W_dec + b_dec`` (d_out; d_out = d_in for an autoencoder, another site's
width for a transcoder, which reads one site and predicts another). The parameters use
SAELens' names and layout -- ``W_enc`` (d_in, d_sae), ``b_enc`` (d_sae), ``W_dec`` (d_sae,
d_out), ``b_dec`` (d_out), ``threshold`` (d_sae) -- so a folder written by either library
loads in the other (:mod:`whybox.sae.io`).

Architectures (``SAEConfig.architecture``):

- ``"standard"`` (alias ``"relu"``): ``f = relu(pre)``, loss = MSE + ``l1_coefficient`` *
  sum_j f_j ||W_dec_j|| (the L1 penalty weighted by decoder norms) [1]_ [2]_.
- ``"topk"``: the k largest rectified pre-activations are kept; AuxK loss: the ``aux_k``
  largest pre-activations among the dead latents reconstruct the residual error [3]_.
- ``"batchtopk"``: the ``k * batch`` largest over the whole batch are kept while training; a
  running threshold (mean of the smallest kept activation) turns it into a JumpReLU with one
  threshold for inference and export, as SAELens does [4]_.
- ``"jumprelu"``: ``f = relu(pre) * (pre > threshold)``, trained with straight-through
  (rectangle-kernel) gradients for the threshold and an L0 penalty [5]_.
- ``"matryoshka"``: BatchTopK whose loss adds the MSE of every nested prefix of latents [6]_.

Every architecture encodes with ``pre = (x - b_dec) @ W_enc + b_enc`` (without the ``- b_dec``
for transcoders, or when ``apply_b_dec_to_input`` is False). With ``normalize_activations=
"expected_average_only_in"`` the inputs are multiplied by ``scaling_factor`` (SAELens' factor
``sqrt(d_in) / mean ||x||``, so the average norm becomes ``sqrt(d_in)``) before encoding and the output divided by it; :meth:`SAE.save` folds the
factor into the weights, as SAELens does.

Examples
--------
See :class:`~whybox.sae.SAE` and each architecture's class for runnable examples; in short::

    sae = SAE.create(SAEConfig(d_in=384, d_sae=3072, architecture="topk", k=32))
    f = sae.encode(x); x_hat = sae.decode(f)

References
----------
.. [1] Bricken, T. et al. (2023). "Towards Monosemanticity: Decomposing Language Models With
   Dictionary Learning." Transformer Circuits Thread.
.. [2] Conerly, T. et al. (2024). "Circuits Updates -- April 2024" (L1 weighted by decoder
   norms). Transformer Circuits Thread. Cunningham, H. et al. (2024). "Sparse Autoencoders
   Find Highly Interpretable Features in Language Models." ICLR 2024.
.. [3] Gao, L. et al. (2024). "Scaling and evaluating sparse autoencoders." arXiv:2406.04093.
.. [4] Bussmann, B., Leask, P. & Nanda, N. (2024). "BatchTopK Sparse Autoencoders."
   arXiv:2412.06410.
.. [5] Rajamanoharan, S. et al. (2024). "Jumping Ahead: Improving Reconstruction Fidelity with
   JumpReLU Sparse Autoencoders." arXiv:2407.14435.
.. [6] Bussmann, B. et al. (2025). "Learning Multi-Level Features with Matryoshka Sparse
   Autoencoders." arXiv:2503.17547.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch

from whybox.errors import InvalidInputError, InvalidParameterError
from whybox.sae import _sparse
from whybox.sae.config import ARCHITECTURES, SAEConfig

__all__ = [
    "ARCHITECTURES",
    "SAE",
    "BatchTopKSAE",
    "JumpReLUSAE",
    "LossParts",
    "MatryoshkaSAE",
    "SAEConfig",
    "StandardSAE",
    "TopKSAE",
    "TrainState",
    "geometric_median",
]


@dataclass
class TrainState:
    """What a training step needs to know beyond the batch.

    Attributes
    ----------
    step, total_steps : int
    tokens_since_fired : LongTensor (d_sae,)
        Training tokens since each latent last fired (AuxK's and resampling's dead latents).
    l1_scale : float
        Warm-up factor of the sparsity penalty (0 to 1).
    """

    step: int = 0
    total_steps: int = 1
    tokens_since_fired: torch.Tensor | None = None
    l1_scale: float = 1.0


@dataclass
class LossParts:
    """One training step's loss and its parts.

    Attributes
    ----------
    loss : Tensor ()
        What to differentiate: ``mse + sparsity + aux``.
    mse : Tensor ()
        Squared error summed over the output dimension, averaged over tokens.
    sparsity, aux : Tensor ()
        The sparsity penalty (standard, jumprelu) and the AuxK / auxiliary loss.
    l0 : float
        Mean number of active latents per token.
    fvu : float
        Fraction of variance unexplained on this batch.
    fired : BoolTensor (d_sae,)
        Latents active on at least one token of the batch.
    """

    loss: torch.Tensor
    mse: torch.Tensor
    sparsity: torch.Tensor
    aux: torch.Tensor
    l0: float
    fvu: float
    fired: torch.Tensor


def geometric_median(x: torch.Tensor, *, max_iter: int = 100, tol: float = 1e-6) -> torch.Tensor:
    """The point minimising the sum of Euclidean distances to the rows of ``x`` (Weiszfeld).

    Parameters
    ----------
    x : Tensor (n, d)
    max_iter : int
    tol : float
        Stop when the objective improves by less than ``tol`` relatively.

    Returns
    -------
    Tensor (d,)

    References
    ----------
    Weiszfeld, E. (1937). "Sur le point pour lequel la somme des distances de n points donnés
    est minimum." Tohoku Mathematical Journal 43.
    """
    points = x.detach().to(torch.float64)
    median = points.mean(dim=0)
    previous = torch.linalg.vector_norm(points - median, dim=1).sum()
    for _ in range(max_iter):
        dist = torch.linalg.vector_norm(points - median, dim=1).clamp_min(1e-12)
        weights = 1.0 / dist
        median = (weights[:, None] * points).sum(dim=0) / weights.sum()
        objective = torch.linalg.vector_norm(points - median, dim=1).sum()
        if abs(float(previous - objective)) <= tol * float(objective):
            break
        previous = objective
    return median.to(x.dtype)


def _dtype(name: str) -> torch.dtype:
    value = getattr(torch, str(name).replace("torch.", ""), None)
    if not isinstance(value, torch.dtype):
        raise InvalidParameterError(
            f"dtype={name!r} is not a torch dtype; pass e.g. 'float32' or 'bfloat16'."
        )
    return value


def _dense(values: torch.Tensor, indices: torch.Tensor, width: int) -> torch.Tensor:
    """Scatter (..., k) values at their indices into a dense (..., width) tensor."""
    out = values.new_zeros((*values.shape[:-1], width))
    return out.scatter(-1, indices, values)


def _padded_nonzero(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense (n, d_sae) activations as (values, indices) padded to the most active row."""
    active = f != 0
    k = max(int(active.sum(dim=-1).max()) if f.numel() else 0, 1)
    # sort active entries first; inactive ones carry value 0 and decode to nothing
    top = torch.topk(active.to(torch.int8), k, dim=-1, sorted=True)
    indices = top.indices
    return f.gather(-1, indices), indices


class SAE(torch.nn.Module):
    """The shared base of every architecture: parameters, encode / decode, save.

    Build one with ``SAE.create(cfg)`` (it picks the subclass for
    ``cfg.architecture``), train one with :func:`~whybox.sae.train`, or read a published one
    with ``whybox.sae.load``. Parameters (SAELens' names): ``W_enc`` (d_in, d_sae),
    ``b_enc`` (d_sae,), ``W_dec`` (d_sae, d_out), ``b_dec`` (d_out,). ``encode(x)`` maps
    (..., d_in) to (..., d_sae), ``decode(f)`` maps (..., d_sae) to (..., d_out), and calling
    the SAE is ``decode(encode(x))``.

    Parameters
    ----------
    cfg : SAEConfig
        Shape, architecture and training objective.
    random_state : int, default 0
        Seed of the initial weights: decoder rows random unit vectors, ``W_enc = W_dec.T``,
        zero biases (Gao et al. 2024).

    Raises
    ------
    InvalidParameterError
        ``create`` with a ``cfg`` that is neither an :class:`SAEConfig` nor a dict of its
        fields.
    InvalidInputError
        ``encode`` / ``decode`` of a tensor whose last axis is not ``d_in`` / ``d_sae``.

    Examples
    --------
    >>> import torch
    >>> cfg = wb.sae.SAEConfig(d_in=16, d_sae=64, architecture="topk", k=4)
    >>> sae = wb.sae.SAE.create(cfg, random_state=0)
    >>> sae
    TopKSAE(architecture='topk', d_in=16, d_sae=64, k=4)
    >>> x = torch.randn(10, 16)
    >>> tuple(sae.encode(x).shape), tuple(sae(x).shape)       # (n, d_sae), (n, d_out)
    ((10, 64), (10, 16))

    References
    ----------
    Bricken, T. et al. (2023). Towards Monosemanticity. Transformer Circuits Thread. Gao, L. et
    al. (2024). Scaling and evaluating sparse autoencoders. arXiv:2406.04093 (the
    initialisation).
    """

    def __init__(self, cfg: SAEConfig, *, random_state: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        dtype = _dtype(cfg.dtype)
        gen = torch.Generator().manual_seed(int(random_state))
        w_dec = torch.randn(cfg.d_sae, cfg.output_width, generator=gen, dtype=torch.float64)
        w_dec /= torch.linalg.vector_norm(w_dec, dim=1, keepdim=True)
        w_enc = w_dec.T.clone() if not cfg.is_transcoder else self._transcoder_init(gen)
        self.W_enc = torch.nn.Parameter(w_enc.to(dtype).contiguous())
        self.W_dec = torch.nn.Parameter(w_dec.to(dtype).contiguous())
        self.b_enc = torch.nn.Parameter(torch.zeros(cfg.d_sae, dtype=dtype))
        self.b_dec = torch.nn.Parameter(torch.zeros(cfg.output_width, dtype=dtype))
        self.scaling_factor: float | None = None

    def _transcoder_init(self, gen: torch.Generator) -> torch.Tensor:
        w = torch.randn(self.cfg.d_in, self.cfg.d_sae, generator=gen, dtype=torch.float64)
        return w / torch.linalg.vector_norm(w, dim=0, keepdim=True)

    # ------------------------------------------------------------------ construction ----
    @classmethod
    def create(cls, cfg: SAEConfig | dict[str, Any], *, random_state: int = 0) -> SAE:
        """A new SAE of ``cfg.architecture`` with seeded initial weights."""
        if isinstance(cfg, dict):
            cfg = SAEConfig.from_dict(cfg)
        if not isinstance(cfg, SAEConfig):
            raise InvalidParameterError(
                f"cfg must be an SAEConfig or a dict of its fields, got {type(cfg).__name__}."
            )
        return _CLASSES[cfg.architecture](cfg, random_state=random_state)

    # ------------------------------------------------------------------ properties ----
    @property
    def d_in(self) -> int:
        return self.cfg.d_in

    @property
    def d_sae(self) -> int:
        return self.cfg.d_sae

    @property
    def d_out(self) -> int:
        return self.cfg.output_width

    @property
    def k(self) -> int | None:
        return self.cfg.k

    @property
    def architecture(self) -> str:
        return self.cfg.architecture

    @property
    def is_transcoder(self) -> bool:
        return self.cfg.is_transcoder

    def extra_repr(self) -> str:
        parts = [f"architecture={self.architecture!r}", f"d_in={self.d_in}", f"d_sae={self.d_sae}"]
        if self.k is not None:
            parts.append(f"k={self.k}")
        if self.is_transcoder:
            parts.append(f"d_out={self.d_out}")
        if self.cfg.hook_name:
            parts.append(f"hook_name={self.cfg.hook_name!r}")
        return ", ".join(parts)

    # ------------------------------------------------------------------ encode / decode ----
    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise InvalidInputError(
                f"an SAE encodes torch tensors of shape (..., {self.d_in}); got "
                f"{type(x).__name__}. Pass torch.as_tensor(x)."
            )
        if x.shape[-1:] != (self.d_in,):
            raise InvalidInputError(
                f"the SAE reads vectors of width d_in={self.d_in}, got a tensor of shape "
                f"{tuple(x.shape)}. Check the site: this SAE was trained on "
                f"{self.cfg.hook_name or 'another site'}."
            )
        return x.to(self.W_enc.dtype)

    def _scaled_in(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scaling_factor if self.scaling_factor is not None else x

    def _unscaled_out(self, x_hat: torch.Tensor) -> torch.Tensor:
        return x_hat / self.scaling_factor if self.scaling_factor is not None else x_hat

    def _encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        x = self._scaled_in(self._check_input(x))
        return x - self.b_dec if self.cfg.apply_b_dec_to_input else x

    def encode_pre(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activations ``(x - b_dec) @ W_enc + b_enc``, shape (..., d_sae)."""
        return self._encoder_input(x) @ self.W_enc + self.b_enc

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent activations, shape (..., d_sae): dense, mostly zeros."""
        return self._activation(self.encode_pre(x))

    def _activation(self, pre: torch.Tensor) -> torch.Tensor:
        return torch.relu(pre)

    def encode_sparse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The active latents of each row as ``(values, indices)``, each (..., k).

        Rows with fewer active latents than the most active row are padded with value 0
        (index of an inactive latent), so ``decode_sparse`` of the pair equals
        ``decode(encode(x))``.
        """
        f = self.encode(x)
        lead = f.shape[:-1]
        values, indices = _padded_nonzero(f.reshape(-1, self.d_sae))
        return values.reshape(*lead, -1), indices.reshape(*lead, -1)

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``f @ W_dec + b_dec``, shape (..., d_out), in the input's scale."""
        if f.shape[-1:] != (self.d_sae,):
            raise InvalidInputError(
                f"decode expects latents of width d_sae={self.d_sae}, got shape {tuple(f.shape)}."
            )
        return self._unscaled_out(f.to(self.W_dec.dtype) @ self.W_dec + self.b_dec)

    def decode_sparse(self, values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Reconstruction from ``(values, indices)`` using only the active decoder rows."""
        lead = values.shape[:-1]
        k = values.shape[-1]
        out = _sparse.sparse_decode(
            values.reshape(-1, k).to(self.W_dec.dtype),
            indices.reshape(-1, k),
            self.W_dec,
            self.b_dec,
        )
        return self._unscaled_out(out.reshape(*lead, self.d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``decode(encode(x))``, shape (..., d_out)."""
        return self.decode(self.encode(x))

    # ------------------------------------------------------------------ training ----
    def training_loss(
        self,
        x: torch.Tensor,
        target: torch.Tensor | None = None,
        *,
        step_state: TrainState | None = None,
    ) -> LossParts:
        """One training step's loss on a batch ``x`` (n, d_in), in the scaled space.

        Parameters
        ----------
        x : Tensor (n, d_in)
        target : Tensor (n, d_out), optional
            What to reconstruct (a transcoder's output site); None: ``x``.
        step_state : TrainState, optional
            Step counters, dead-latent counts and the sparsity warm-up factor.

        Returns
        -------
        LossParts
        """
        state = step_state or TrainState()
        x = self._scaled_in(self._check_input(x)).reshape(-1, self.d_in)
        target = (
            x if target is None else self._scaled_in(target.to(x.dtype)).reshape(-1, self.d_out)
        )
        if target.shape != (x.shape[0], self.d_out):
            raise InvalidInputError(
                f"target must have shape (n, {self.d_out}) matching x's {x.shape[0]} rows, got "
                f"{tuple(target.shape)}."
            )
        sae_in = x - self.b_dec if self.cfg.apply_b_dec_to_input else x
        x_hat, values, indices, sparsity, extra = self._train_forward(sae_in, target, state)
        err = x_hat - target
        mse = err.pow(2).sum(dim=-1).mean()
        aux = self._aux_loss(sae_in, target, x_hat, state, extra)
        if isinstance(extra, dict) and "inner_mse" in extra:
            mse_total = mse + extra["inner_mse"]
        else:
            mse_total = mse
        loss = mse_total + sparsity + aux
        with torch.no_grad():
            active = values != 0
            fired = torch.zeros(self.d_sae, dtype=torch.bool, device=x.device)
            fired[indices[active]] = True
            l0 = float(active.sum()) / max(x.shape[0], 1)
            var = (target - target.mean(dim=0)).pow(2).sum(dim=-1).mean()
            fvu = float(mse.detach() / var) if float(var) > 0 else float("nan")
        return LossParts(loss, mse, sparsity, aux, l0, fvu, fired)

    def _train_forward(
        self, sae_in: torch.Tensor, target: torch.Tensor, state: TrainState
    ) -> tuple:
        """(x_hat, values, indices, sparsity penalty, extra) for the architecture."""
        raise NotImplementedError  # pragma: no cover - every subclass defines it

    def _aux_loss(self, sae_in, target, x_hat, state, extra) -> torch.Tensor:
        return x_hat.new_zeros(())

    # ------------------------------------------------------------------ constraints ----
    @torch.no_grad()
    def set_decoder_norm_to_unit_norm_(self) -> None:
        """Rescale every decoder row to unit norm (in place)."""
        norms = torch.linalg.vector_norm(self.W_dec, dim=1, keepdim=True).clamp_min(1e-12)
        self.W_dec.div_(norms)

    @torch.no_grad()
    def remove_gradient_parallel_to_decoder_(self) -> None:
        """Project out of ``W_dec.grad`` each row's component along that decoder row.

        With unit-norm rows this keeps the step tangent to the sphere, so Adam does not
        spend its update on a norm the constraint undoes (Bricken et al. 2023).
        """
        grad = self.W_dec.grad
        if grad is None:
            return
        unit = self.W_dec / torch.linalg.vector_norm(self.W_dec, dim=1, keepdim=True).clamp_min(
            1e-12
        )
        grad.sub_((grad * unit).sum(dim=1, keepdim=True) * unit)

    @torch.no_grad()
    def init_b_dec_geometric_median_(self, x: torch.Tensor) -> None:
        """Set ``b_dec`` to the geometric median of a sample of inputs ``x`` (n, d_in)."""
        if self.is_transcoder:
            raise InvalidParameterError(
                "a transcoder's b_dec lives in the output space; initialise it from the target "
                "site's activations instead (or leave it at zero)."
            )
        sample = self._scaled_in(self._check_input(x)).reshape(-1, self.d_in)
        self.b_dec.copy_(geometric_median(sample).to(self.b_dec.dtype))

    @torch.no_grad()
    def fold_activation_norm_scaling_(self) -> None:
        """Fold ``scaling_factor`` into the weights so that raw inputs need no scaling.

        ``encode((x - b_dec / s) @ (s W_enc))`` equals the scaled encoding and ``f @ (W_dec /
        s) + b_dec / s`` the unscaled reconstruction; thresholds are unchanged.
        """
        s = self.scaling_factor
        if s is None:
            return
        self.W_enc.mul_(s)
        self.W_dec.div_(s)
        self.b_dec.div_(s)
        self.scaling_factor = None
        self.cfg.normalize_activations = "none"

    # ------------------------------------------------------------------ saving ----
    def save(self, folder: Any) -> Any:
        """Write a SAELens-compatible folder (``cfg.json`` + ``sae_weights.safetensors``)."""
        from whybox.sae._saelens_write import save_sae

        return save_sae(self, folder)


class StandardSAE(SAE):
    """ReLU latents with an L1 penalty weighted by decoder norms (``"standard"``).

    ``f = relu((x - b_dec) @ W_enc + b_enc)``; the training loss is the MSE plus
    ``l1_coefficient * sum_j f_j ||W_dec[j]||`` (Bricken et al. 2023; Conerly et al. 2024).

    Parameters
    ----------
    cfg : SAEConfig
        Its shape and training objective (``cfg.architecture`` must be 'standard').
    random_state : int, default 0
        Seed of the initial weights (see :class:`SAE`).

    Raises
    ------
    InvalidInputError
        ``encode`` of a tensor whose last axis is not ``d_in``, or of a non-tensor.

    Examples
    --------
    >>> import torch
    >>> cfg = wb.sae.SAEConfig(d_in=16, d_sae=64, architecture="standard")
    >>> sae = wb.sae.StandardSAE(cfg, random_state=0)
    >>> f = sae.encode(torch.randn(10, 16))
    >>> tuple(f.shape), bool((f >= 0).all())                 # ReLU latents
    ((10, 64), True)

    References
    ----------
    Bricken, T. et al. (2023). Towards Monosemanticity: Decomposing Language Models With
    Dictionary Learning. Transformer Circuits Thread. Conerly, T. et al. (2024). Circuits
    Updates, April 2024. Transformer Circuits Thread.
    """

    def _train_forward(
        self, sae_in: torch.Tensor, target: torch.Tensor, state: TrainState
    ) -> tuple:
        f = torch.relu(sae_in @ self.W_enc + self.b_enc)
        x_hat = f @ self.W_dec + self.b_dec
        norms = torch.linalg.vector_norm(self.W_dec, dim=1)
        sparsity = self.cfg.l1_coefficient * state.l1_scale * (f * norms).sum(dim=-1).mean()
        values, indices = _padded_nonzero(f.detach())
        return x_hat, values, indices, sparsity, None


class TopKSAE(SAE):
    """The k largest rectified pre-activations per token, AuxK for dead latents (``"topk"``).

    At most ``k`` latents are non-zero in each row; the AuxK loss lets the ``aux_k`` largest
    pre-activations of the dead latents reconstruct the residual error (Gao et al. 2024).

    Parameters
    ----------
    cfg : SAEConfig
        Its shape and training objective (``cfg.architecture`` must be 'topk').
    random_state : int, default 0
        Seed of the initial weights (see :class:`SAE`).

    Raises
    ------
    InvalidInputError
        ``encode`` of a tensor whose last axis is not ``d_in``, or of a non-tensor.

    Examples
    --------
    >>> import torch
    >>> sae = wb.sae.TopKSAE(wb.sae.SAEConfig(d_in=16, d_sae=64, architecture="topk", k=4))
    >>> f = sae.encode(torch.randn(3, 16))
    >>> (f != 0).sum(-1).tolist()                            # k active latents per row
    [4, 4, 4]

    References
    ----------
    Gao, L. et al. (2024). Scaling and evaluating sparse autoencoders. arXiv:2406.04093.
    """

    def _activation(self, pre: torch.Tensor) -> torch.Tensor:
        top = torch.topk(pre, self.cfg.k, dim=-1, sorted=False)
        return _dense(torch.relu(top.values), top.indices, self.d_sae)

    def encode_sparse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sae_in = self._encoder_input(x)
        lead = sae_in.shape[:-1]
        values, indices = _sparse.topk_encode(
            sae_in.reshape(-1, self.d_in), self.W_enc, self.b_enc, self.cfg.k
        )
        return values.reshape(*lead, -1), indices.reshape(*lead, -1)

    def _train_forward(
        self, sae_in: torch.Tensor, target: torch.Tensor, state: TrainState
    ) -> tuple:
        values, indices = _sparse.topk_encode(sae_in, self.W_enc, self.b_enc, self.cfg.k)
        x_hat = _sparse.sparse_decode(values, indices, self.W_dec, self.b_dec)
        return x_hat, values, indices, x_hat.new_zeros(()), None

    def _aux_loss(self, sae_in, target, x_hat, state, extra) -> torch.Tensor:
        return _auxk_loss(self, sae_in, target, x_hat, state)


def _auxk_loss(
    sae: SAE, sae_in: torch.Tensor, target: torch.Tensor, x_hat: torch.Tensor, state: TrainState
) -> torch.Tensor:
    """AuxK: the dead latents' top ``aux_k`` pre-activations reconstruct the residual error.

    As SAELens: ``aux_coefficient * min(n_dead / aux_k, 1) * ||e - aux_recon||^2`` (summed
    over dimensions, averaged over tokens), with ``e = target - x_hat`` detached and the
    auxiliary reconstruction decoded without bias (Gao et al. 2024, appendix A.2).
    """
    counts = state.tokens_since_fired
    zero = x_hat.new_zeros(())
    if counts is None or sae.cfg.aux_coefficient == 0:
        return zero
    dead = torch.nonzero(counts >= sae.cfg.dead_tokens).flatten()
    n_dead = int(dead.numel())
    if n_dead == 0:
        return zero
    aux_k = sae.cfg.aux_k or max(sae.d_in // 2, 1)
    scale = min(n_dead / aux_k, 1.0)
    k = min(aux_k, n_dead)
    values, indices = _sparse.topk_encode(sae_in, sae.W_enc, sae.b_enc, k, columns=dead)
    recon = _sparse.sparse_decode(values, indices, sae.W_dec)
    residual = (target - x_hat).detach()
    return sae.cfg.aux_coefficient * scale * (recon - residual).pow(2).sum(dim=-1).mean()


class JumpReLUSAE(SAE):
    """``f = relu(pre) * (pre > threshold)`` with straight-through threshold gradients.

    One threshold per latent, ``threshold`` (d_sae,), stored as its logarithm and trained
    with rectangle-kernel pseudo-derivatives and an L0 penalty (``l0_coefficient``)
    (Rajamanoharan et al. 2024).

    Parameters
    ----------
    cfg : SAEConfig
        Its shape and training objective (``cfg.architecture`` must be 'jumprelu').
    random_state : int, default 0
        Seed of the initial weights (see :class:`SAE`).

    Raises
    ------
    InvalidInputError
        ``encode`` of a tensor whose last axis is not ``d_in``, or of a non-tensor.

    Examples
    --------
    >>> import torch
    >>> sae = wb.sae.JumpReLUSAE(wb.sae.SAEConfig(d_in=16, d_sae=64, architecture="jumprelu"))
    >>> sae.set_threshold_(torch.full((64,), 0.5))
    >>> x = torch.randn(10, 16)
    >>> f, pre = sae.encode(x), sae.encode_pre(x)
    >>> bool(((f > 0) == (pre > 0.5)).all())                 # fires above its threshold
    True

    References
    ----------
    Rajamanoharan, S. et al. (2024). Jumping Ahead: Improving Reconstruction Fidelity with
    JumpReLU Sparse Autoencoders. arXiv:2407.14435.
    """

    def __init__(self, cfg: SAEConfig, *, random_state: int = 0) -> None:
        super().__init__(cfg, random_state=random_state)
        init = math.log(max(float(cfg.jumprelu_init_threshold), 1e-12))
        self.log_threshold = torch.nn.Parameter(
            torch.full((cfg.d_sae,), init, dtype=self.W_enc.dtype)
        )

    @property
    def threshold(self) -> torch.Tensor:
        """The per-latent thresholds, shape (d_sae,)."""
        return self.log_threshold.exp()

    @torch.no_grad()
    def set_threshold_(self, threshold: torch.Tensor) -> None:
        """Set the thresholds (must be > 0: they are stored as logarithms)."""
        threshold = torch.as_tensor(threshold, dtype=self.log_threshold.dtype)
        if threshold.shape != (self.d_sae,) and threshold.numel() != 1:
            raise InvalidInputError(
                f"threshold must have shape ({self.d_sae},), got {tuple(threshold.shape)}."
            )
        self.log_threshold.copy_(threshold.clamp_min(1e-30).log().expand(self.d_sae))

    def _activation(self, pre: torch.Tensor) -> torch.Tensor:
        return torch.relu(pre) * (pre > self.threshold)

    def _train_forward(
        self, sae_in: torch.Tensor, target: torch.Tensor, state: TrainState
    ) -> tuple:
        # sparse kernels (H-perf): same values and pseudo-derivatives as _JumpReLU / _Step
        values, indices, offsets, l0 = _sparse.jumprelu_encode(
            sae_in,
            self.W_enc,
            self.b_enc,
            self.threshold,
            float(self.cfg.jumprelu_bandwidth),
            compact=True,
        )
        x_hat = _sparse.sparse_decode(values, indices, self.W_dec, self.b_dec, offsets=offsets)
        sparsity = self.cfg.l0_coefficient * state.l1_scale * l0.mean()
        return x_hat, values, indices, sparsity, None


def _rectangle(u: torch.Tensor) -> torch.Tensor:
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class _JumpReLU(torch.autograd.Function):
    """``z * H(z - theta)``; d/dz = H(z - theta); d/dtheta = -(theta/eps) K((z - theta)/eps)."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, theta: torch.Tensor, eps: float) -> torch.Tensor:
        ctx.save_for_backward(z, theta)
        ctx.eps = eps
        return z * (z > theta)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        z, theta = ctx.saved_tensors
        eps = ctx.eps
        grad_z = grad * (z > theta)
        grad_theta = (-(theta / eps) * _rectangle((z - theta) / eps) * grad).sum(
            dim=tuple(range(grad.dim() - 1))
        )
        return grad_z, grad_theta, None


class _Step(torch.autograd.Function):
    """``H(z - theta)``; d/dz = 0; d/dtheta = -(1/eps) K((z - theta)/eps)."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, theta: torch.Tensor, eps: float) -> torch.Tensor:
        ctx.save_for_backward(z, theta)
        ctx.eps = eps
        return (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        z, theta = ctx.saved_tensors
        eps = ctx.eps
        grad_theta = (-(1.0 / eps) * _rectangle((z - theta) / eps) * grad).sum(
            dim=tuple(range(grad.dim() - 1))
        )
        return None, grad_theta, None


class BatchTopKSAE(SAE):
    """The ``k * batch`` largest activations over the batch while training (``"batchtopk"``).

    Inference (``encode``) is a JumpReLU with one threshold for every latent: the running mean
    of the smallest activation kept in training batches (``topk_threshold``), as SAELens.

    Parameters
    ----------
    cfg : SAEConfig
        Its shape and training objective (``cfg.architecture`` must be 'batchtopk').
    random_state : int, default 0
        Seed of the initial weights (see :class:`SAE`).

    Raises
    ------
    InvalidInputError
        ``encode`` of a tensor whose last axis is not ``d_in``, or of a non-tensor.

    Examples
    --------
    >>> import torch
    >>> cfg = wb.sae.SAEConfig(d_in=16, d_sae=64, architecture="batchtopk", k=4)
    >>> sae = wb.sae.BatchTopKSAE(cfg)
    >>> tuple(sae.threshold.shape), float(sae.topk_threshold)   # 0 until trained
    ((64,), 0.0)

    References
    ----------
    Bussmann, B., Leask, P. & Nanda, N. (2024). BatchTopK Sparse Autoencoders.
    arXiv:2412.06410.
    """

    def __init__(self, cfg: SAEConfig, *, random_state: int = 0) -> None:
        super().__init__(cfg, random_state=random_state)
        self.register_buffer("topk_threshold", torch.zeros((), dtype=self.W_enc.dtype))

    @property
    def threshold(self) -> torch.Tensor:
        """The inference threshold of every latent, shape (d_sae,)."""
        return self.topk_threshold.expand(self.d_sae)

    def _activation(self, pre: torch.Tensor) -> torch.Tensor:
        return torch.relu(pre) * (pre > self.topk_threshold)

    def _batch_topk(self, sae_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = sae_in.shape[0]
        acts = torch.relu(sae_in @ self.W_enc + self.b_enc)
        flat = acts.reshape(-1)
        top = torch.topk(flat, min(self.cfg.k * n, flat.numel()), sorted=False)
        mask = torch.zeros_like(flat, dtype=torch.bool)
        mask[top.indices] = True
        f = (acts.reshape(-1) * mask).reshape(n, self.d_sae)
        with torch.no_grad():
            kept = top.values[top.values > 0]
            if kept.numel():
                lr = self.cfg.topk_threshold_lr
                self.topk_threshold.mul_(1 - lr).add_(lr * kept.min())
        return f, acts, mask.reshape(n, self.d_sae)

    def _train_forward(
        self, sae_in: torch.Tensor, target: torch.Tensor, state: TrainState
    ) -> tuple:
        # sparse kernels (H-perf): the same selection as _batch_topk, no dense (n, d_sae)
        values, indices, offsets = _sparse.batchtopk_encode(
            sae_in, self.W_enc, self.b_enc, self.cfg.k, compact=True
        )
        with torch.no_grad():
            kept = values[values > 0]
            if kept.numel():
                lr = self.cfg.topk_threshold_lr
                self.topk_threshold.mul_(1 - lr).add_(lr * kept.min())
        x_hat = _sparse.sparse_decode(values, indices, self.W_dec, self.b_dec, offsets=offsets)
        return x_hat, values, indices, x_hat.new_zeros(()), None

    def _aux_loss(self, sae_in, target, x_hat, state, extra) -> torch.Tensor:
        return _auxk_loss(self, sae_in, target, x_hat, state)

    def to_jumprelu(self) -> JumpReLUSAE:
        """The inference model as a :class:`JumpReLUSAE` (one threshold on every latent)."""
        cfg = dataclasses.replace(self.cfg, architecture="jumprelu", k=None, matryoshka_widths=None)
        cfg.metadata = {**self.cfg.metadata, "trained_as": self.cfg.architecture, "k": self.cfg.k}
        out = JumpReLUSAE(cfg)
        with torch.no_grad():
            for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
                getattr(out, name).copy_(getattr(self, name))
            out.set_threshold_(self.threshold.clamp_min(1e-30))
        out.scaling_factor = self.scaling_factor
        return out


class MatryoshkaSAE(BatchTopKSAE):
    """BatchTopK whose loss adds the MSE of each nested prefix of latents (``"matryoshka"``).

    The first ``matryoshka_widths[i]`` latents alone are trained to reconstruct the input,
    so general features gather in the early latents (Bussmann et al. 2025); inference is
    :class:`BatchTopKSAE`'s.

    Parameters
    ----------
    cfg : SAEConfig
        Its shape and training objective (``cfg.architecture`` must be 'matryoshka').
    random_state : int, default 0
        Seed of the initial weights (see :class:`SAE`).

    Raises
    ------
    InvalidInputError
        ``encode`` of a tensor whose last axis is not ``d_in``, or of a non-tensor.

    Examples
    --------
    >>> cfg = wb.sae.SAEConfig(d_in=16, d_sae=64, architecture="matryoshka", k=4,
    ...                        matryoshka_widths=(16, 64))
    >>> sae = wb.sae.MatryoshkaSAE(cfg)
    >>> sae.cfg.matryoshka_widths, isinstance(sae, wb.sae.BatchTopKSAE)
    ((16, 64), True)

    References
    ----------
    Bussmann, B. et al. (2025). Learning Multi-Level Features with Matryoshka Sparse
    Autoencoders. arXiv:2503.17547.
    """

    def _train_forward(
        self, sae_in: torch.Tensor, target: torch.Tensor, state: TrainState
    ) -> tuple:
        f, _, _ = self._batch_topk(sae_in)
        inner = sae_in.new_zeros(())
        widths = self.cfg.matryoshka_widths or (self.d_sae,)
        for width in widths[:-1]:
            partial = f[:, :width] @ self.W_dec[:width] + self.b_dec
            inner = inner + (partial - target).pow(2).sum(dim=-1).mean()
        values, indices = _padded_nonzero(f.detach())
        values = f.gather(-1, indices)
        x_hat = _sparse.sparse_decode(values, indices, self.W_dec, self.b_dec)
        return x_hat, values, indices, x_hat.new_zeros(()), {"inner_mse": inner}


_CLASSES: dict[str, type[SAE]] = {
    "standard": StandardSAE,
    "topk": TopKSAE,
    "batchtopk": BatchTopKSAE,
    "jumprelu": JumpReLUSAE,
    "matryoshka": MatryoshkaSAE,
}
