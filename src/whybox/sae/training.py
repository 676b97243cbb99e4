"""Train sparse autoencoders (and transcoders) on a model's activations.

:func:`train` runs the usual recipe: ``b_dec`` at the geometric median of the first batch,
decoder rows kept unit-norm with the gradient parallel to them removed, Adam, a learning rate
warmed up linearly then constant or cosine and decayed linearly at the end (as SAELens
schedules it), the L1 coefficient warmed up linearly, per-latent dead counters (tokens since a
latent last fired) feeding TopK's AuxK loss and, for the ReLU + L1 SAE, Anthropic's resampling of
dead latents; checkpoints that resume bit-for-bit on CPU, a progress bar with L0 / FVU / dead
fraction, and data parallelism under ``torchrun`` equal to one process at the same global batch.

Activations come from a model (``model`` + ``site`` + ``tokens``, streamed through hooks with a
shuffling buffer by :mod:`whybox.sae.activations`), from stored shards, from an in-memory array
``(n_tokens, d_in)`` (or a pair ``(x, y)`` for a transcoder), or from any iterable of such
arrays.

References
----------
Bricken, T. et al. (2023). Towards Monosemanticity: Decomposing Language Models With Dictionary
Learning. Transformer Circuits Thread (resampling of dead neurons, geometric-median ``b_dec``).
Gao, L. et al. (2024). Scaling and evaluating sparse autoencoders. arXiv:2406.04093 (TopK, AuxK,
dead latents, learning-rate scaling).
Conerly, T. et al. (2024). Circuits Updates - April 2024: Update on how we train SAEs.
Transformer Circuits Thread (L1 warm-up, final linear learning-rate decay).
Kingma, D. P. & Ba, J. (2015). Adam: A Method for Stochastic Optimization. ICLR.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from whybox._validation import check_int
from whybox.errors import InvalidInputError, InvalidParameterError, WhyboxError
from whybox.sae._train_steps import (
    _adam,
    _check_finite,
    _check_loss,
    _Progress,
    _resample_dead_,
)

__all__ = ["LR_SCHEDULES", "TensorActivations", "l1_scale_at", "lr_at", "main", "train"]

LR_SCHEDULES = ("constant", "cosine")
_SAE_OPTIONS = (
    *("aux_k", "aux_coefficient", "matryoshka_widths", "l0_coefficient", "jumprelu_bandwidth"),
    *("jumprelu_init_threshold", "apply_b_dec_to_input", "dtype", "model_name", "metadata"),
)


# ----------------------------------------------------------------------------- schedules
def lr_at(
    step: int,
    *,
    lr: float,
    total_steps: int,
    warmup_steps: int = 0,
    decay_steps: int = 0,
    lr_end: float = 0.0,
    schedule: str = "constant",
) -> float:
    """Learning rate used by optimizer step ``step`` (0-based), SAELens' schedule in closed form.

    Warm-up (``step < W``): ``lr * (1/W + (1 - 1/W) * step / W)``, torch's ``LinearLR`` from
    ``lr / W`` to ``lr``. Main phase up to ``T - D``: ``lr`` (``"constant"``) or the cosine from
    ``lr`` to ``lr_end`` over its ``T - W - D`` steps (``"cosine"``). Final decay
    (``step >= T - D``): linear from ``lr`` to ``lr_end``,
    ``lr * (1 + (lr_end / lr - 1) * (step - (T - D)) / D)``.
    """
    warm, decay = int(warmup_steps), int(decay_steps)
    start_decay = total_steps - decay
    if warm > 0 and step < warm:
        return lr * (1.0 / warm + (1.0 - 1.0 / warm) * step / warm)
    if decay > 0 and step >= start_decay:
        return lr * (1.0 + (lr_end / lr - 1.0) * min(step - start_decay, decay) / decay)
    if schedule == "cosine":
        span = max(start_decay - warm, 1)
        t = min(step - warm, span) / span
        return lr_end + (lr - lr_end) * 0.5 * (1.0 + math.cos(math.pi * t))
    return lr


def l1_scale_at(step: int, warmup_steps: int) -> float:
    """Factor on the sparsity coefficient at step ``step``: ``min(1, step / W)`` (1 if W = 0).

    The coefficient starts at 0 and reaches its value after ``W`` steps, as in SAELens and
    Conerly et al. (2024).
    """
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, step / warmup_steps)


# ----------------------------------------------------------------------------- activation streams
class TensorActivations:
    """Global batches drawn from in-memory activations, reshuffled each epoch (seeded).

    Parameters
    ----------
    x : array or tensor, shape (n_tokens, d_in)
        Activations (a numpy memmap works: rows are read batch by batch).
    y : array or tensor, shape (n_tokens, d_out), optional
        Transcoder targets, row-aligned with ``x``.
    shuffle : bool
        Draw rows in a fresh random order each epoch (else in order).
    random_state : int
        Seed of the epoch permutations (epoch ``e`` uses seed ``random_state * 1_000_003 + e``).
    """

    def __init__(self, x: Any, y: Any = None, *, shuffle: bool = True, random_state: int = 0):
        self.x, self.y, self.shuffle, self.random_state = x, y, bool(shuffle), int(random_state)
        if len(getattr(x, "shape", ())) != 2:
            raise InvalidInputError(
                f"activations must have shape (n_tokens, d_in), got shape "
                f"{tuple(getattr(x, 'shape', ()))}. Reshape to two dimensions, e.g. "
                "x.reshape(-1, x.shape[-1])."
            )
        if y is not None and (len(y.shape) != 2 or y.shape[0] != x.shape[0]):
            raise InvalidInputError(
                f"transcoder targets must have shape (n_tokens={x.shape[0]}, d_out), got "
                f"{tuple(y.shape)}. Pass row-aligned (x, y) pairs."
            )
        self.n = int(x.shape[0])
        self.epoch, self.pos, self._perm = 0, 0, None

    def _permutation(self):
        import torch

        if self._perm is None:
            if self.shuffle:
                g = torch.Generator().manual_seed(self.random_state * 1_000_003 + self.epoch)
                self._perm = torch.randperm(self.n, generator=g)
            else:
                self._perm = torch.arange(self.n)
        return self._perm

    def _rows(self, a, idx):
        import numpy as np
        import torch

        if isinstance(a, torch.Tensor):
            return a[idx]
        return torch.from_numpy(np.ascontiguousarray(np.asarray(a)[idx.numpy()]))

    def next_batch(self, batch_size: int):
        """The next ``batch_size`` rows: ``x`` or ``(x, y)``; rolls over epochs."""
        import torch

        parts, left = [], batch_size
        while left > 0:
            perm = self._permutation()
            take = perm[self.pos : self.pos + left]
            parts.append(take)
            self.pos += len(take)
            left -= len(take)
            if self.pos >= self.n:
                self.epoch, self.pos, self._perm = self.epoch + 1, 0, None
        idx = torch.cat(parts)
        if self.y is None:
            return self._rows(self.x, idx)
        return self._rows(self.x, idx), self._rows(self.y, idx)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.pos, self._perm = int(state["epoch"]), int(state["pos"]), None


class _IterActivations:
    """Re-chunks an iterable of arrays (or ``(x, y)`` pairs) into global batches.

    Its state is the number of rows consumed; resuming re-iterates and skips them, which needs
    an iterable that yields the same rows again (a list, or an object whose ``__iter__``
    restarts).
    """

    def __init__(self, source: Iterable):
        self.source, self.rows, self._it, self._buf = source, 0, None, []

    def _next_piece(self):
        import numpy as np
        import torch

        if self._it is None:
            self._it = iter(self.source)
        item = next(self._it)
        pair = item if isinstance(item, tuple) else (item, None)
        return tuple(
            None
            if a is None
            else (a if isinstance(a, torch.Tensor) else torch.from_numpy(np.asarray(a)))
            for a in pair
        )

    def next_batch(self, batch_size: int):
        import torch

        have = sum(p[0].shape[0] for p in self._buf)
        while have < batch_size:
            try:
                piece = self._next_piece()
            except StopIteration:
                raise InvalidInputError(
                    f"the activation source ran out after {self.rows + have} rows; training "
                    f"needs batches of {batch_size}. Pass a larger source or lower total_tokens."
                ) from None
            piece = tuple(None if a is None else a.reshape(-1, a.shape[-1]) for a in piece)
            self._buf.append(piece)
            have += piece[0].shape[0]
        xs = torch.cat([p[0] for p in self._buf])
        ys = None if self._buf[0][1] is None else torch.cat([p[1] for p in self._buf])
        rest = (xs[batch_size:], None if ys is None else ys[batch_size:])
        self._buf = [rest] if rest[0].shape[0] else []
        self.rows += batch_size
        return xs[:batch_size] if ys is None else (xs[:batch_size], ys[:batch_size])

    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict) -> None:
        target, self.rows, self._it, self._buf = int(state["rows"]), 0, None, []
        while self.rows < target:
            self.next_batch(min(65536, target - self.rows))


def _as_stream(activations: Any, batch_size: int, random_state: int):
    if hasattr(activations, "next_batch"):
        return activations
    if isinstance(activations, tuple) and len(activations) == 2:
        return TensorActivations(activations[0], activations[1], random_state=random_state)
    if hasattr(activations, "shape"):
        return TensorActivations(activations, random_state=random_state)
    if isinstance(activations, str | Path):
        from whybox.sae.activations import ShardActivations

        return ShardActivations(activations, batch_size=batch_size, random_state=random_state)
    if isinstance(activations, Iterable):
        return _IterActivations(activations)
    raise InvalidParameterError(
        f"activations must be an array (n_tokens, d_in), an (x, y) pair, a shard folder, an "
        f"activation source with next_batch(n) or an iterable of arrays; got "
        f"{type(activations).__name__}."
    )


def _split(batch):
    return batch if isinstance(batch, tuple) else (batch, None)


# ----------------------------------------------------------------------------- train
def train(
    model: Any = None,
    site: str | None = None,
    *,
    architecture: str = "topk",
    width: int | None = None,
    expansion_factor: int | None = None,
    k: int | None = None,
    tokens: Any = None,
    activations: Any = None,
    tokenizer: Any = None,
    site_out: str | None = None,
    total_tokens: int | None = None,
    batch_size: int = 4096,
    lr: float | None = None,
    lr_schedule: str = "constant",
    lr_warmup_steps: int = 0,
    lr_decay_steps: int | None = None,
    lr_end: float = 0.0,
    adam_betas: tuple[float, float] = (0.9, 0.999),
    l1_coefficient: float | None = None,
    l1_warmup_steps: int = 0,
    dead_tokens: int | None = None,
    resample_dead: bool | None = None,
    resample_every: int | None = None,
    normalize_activations: str = "none",
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool | str | Path = False,
    progress: bool = True,
    log_every: int | None = None,
    callback: Callable[[dict], Any] | None = None,
    random_state: int = 0,
    device: str | None = None,
    distributed: bool | None = None,
    activation_options: dict | None = None,
    **sae_options: Any,
):
    """Train a sparse autoencoder (or a transcoder) and return it.

    Parameters
    ----------
    model : torch.nn.Module, optional
        The model whose activations are read at ``site`` (with ``tokens``); omit it and pass
        ``activations`` to train on stored or in-memory activations.
    site : str, optional
        Site read: a standard name (``"blocks.3.resid_post"``) or a module path.
    architecture : {"standard", "topk", "batchtopk", "jumprelu", "matryoshka"}
        The SAE family (default "topk").
    width, expansion_factor : int, optional
        Number of latents ``d_sae``, or it as a multiple of ``d_in`` (default 8x).
    k : int, optional
        Active latents per token for the top-k family (default ``min(32, width)``).
    tokens : ids tensor (n_sequences, seq_len) or list of texts, optional
        What the model reads (texts need ``tokenizer``).
    activations : array (n, d_in), pair ``(x, y)``, shard folder, source or iterable, optional
        Activations to train on instead of ``model`` + ``tokens``. A source is an object with
        ``next_batch(n)`` (and ``state_dict`` / ``load_state_dict`` for exact resumes).
    tokenizer : tokenizer, optional
        Tokenizes text ``tokens`` (the model's own).
    site_out : str, optional
        Site a transcoder predicts (with ``model``).
    total_tokens : int, optional
        Training tokens; ``total_tokens // batch_size`` steps (default: one pass over
        in-memory activations).
    batch_size : int
        Tokens per optimizer step (the global batch under ``torchrun``).
    lr : float, optional
        Peak learning rate (default ``2e-4 / sqrt(width / 2**14)``, Gao et al. 2024).
    lr_schedule : {"constant", "cosine"}
        Between warm-up and final decay; see ``whybox.sae.training.lr_at``.
    lr_warmup_steps, lr_decay_steps : int
        Linear warm-up steps and final linear decay steps (default ``total_steps // 5``).
    lr_end : float
        Learning rate at the end of the decay / cosine.
    adam_betas : (float, float)
        Adam's betas (default (0.9, 0.999)).
    l1_coefficient : float, optional
        Sparsity penalty of "standard" (default 5.0); "jumprelu" takes ``l0_coefficient=``.
    l1_warmup_steps : int
        The sparsity penalty rises linearly from 0 over these steps
        (``whybox.sae.training.l1_scale_at``).
    dead_tokens : int, optional
        A latent that has not fired in this many tokens is dead (AuxK, resampling; default
        10M).
    resample_dead : bool, optional
        Resample dead latents every ``resample_every`` steps (default True for "standard",
        False otherwise); resampling stops when the final decay starts.
    resample_every : int, optional
        Default ``max(total_steps // 5, 1)``.
    normalize_activations : {"none", "expected_average_only_in"}
        Scale inputs by ``sqrt(d_in) / mean ||x||`` of the first batch (SAELens); folded
        into the weights on save.
    checkpoint_dir : path, optional
        Where ``checkpoint-<step>/`` folders go (weights and Adam state as safetensors,
        activation-source and RNG states, a hash of the configuration); one is written every
        ``checkpoint_every`` steps and at the end.
    checkpoint_every : int, optional
        Steps between checkpoints (None: only the final one).
    resume : bool or path
        Continue from the latest checkpoint in ``checkpoint_dir`` (or this checkpoint folder).
        The result equals an uninterrupted run bit for bit on CPU. A checkpoint of another
        configuration raises :class:`~whybox.InvalidParameterError`.
    progress : bool
        A Rich progress bar on stderr with L0, FVU, dead fraction and lr (rank 0 only).
    log_every : int, optional
        Steps between entries of ``sae.history`` (default ``max(total_steps // 100, 1)``).
    callback : callable, optional
        Called after every step with a dict (step, tokens, loss, mse, l0, fvu, dead_fraction,
        lr); returning True stops training (a checkpoint is written if ``checkpoint_dir``).
    random_state : int
        Seeds the initial weights, the shuffling of in-memory activations and resampling.
    device : str, optional
        Default ``cuda`` when available, else ``cpu``.
    distributed : bool, optional
        Under ``torchrun`` (None: detected), every rank trains on its slice of each global batch
        and gradients are averaged: equal to one process at the same ``batch_size``, except the
        batch-level top-k of "batchtopk" / "matryoshka", which each rank takes on its slice (the
        running threshold is averaged over ranks). With ``model`` each rank streams its own
        share of ``tokens`` (rows dealt round-robin) and the global batch is the ranks' shares
        together; with ``activations`` every rank draws the global batch and keeps its slice.
    activation_options : dict, optional
        Passed to :class:`whybox.sae.activations.ModelActivations` (buffer size, context...).
    **sae_options
        Other :class:`~whybox.sae.config.SAEConfig` fields: ``aux_k``, ``aux_coefficient``,
        ``matryoshka_widths``, ``l0_coefficient``, ``jumprelu_bandwidth``,
        ``jumprelu_init_threshold``, ``apply_b_dec_to_input``, ``dtype``, ``model_name``,
        ``metadata``.

    Returns
    -------
    SAE
        In eval mode, with ``sae.history`` (a list of metric dicts) and ``scaling_factor`` set
        when activations were normalised.

    Raises
    ------
    InvalidParameterError
        Bad sizes (``k > width``, a batch not divisible by the number of ranks...), unknown
        options, a resume from a checkpoint of another configuration, a diverging loss.
    InvalidInputError
        NaN or inf in the activations (the step, token and dimension are named, and
        ``err.step`` / ``err.row`` / ``err.dimension`` set); nothing is trained on that batch.

    Examples
    --------
    >>> model, tok = wb.zoo.tiny_lm()
    >>> texts = wb.zoo.tiny_lm_corpus("train")[:3]
    >>> sae = wb.sae.train(model, "blocks.2.resid_post", tokens=texts, tokenizer=tok,
    ...                    width=256, k=8, batch_size=256, total_tokens=2048, progress=False)
    >>> sae
    TopKSAE(architecture='topk', d_in=128, d_sae=256, k=8, hook_name='blocks.2.resid_post')
    >>> last = sae.history[-1]                      # logged metrics of the last step
    >>> last["tokens"], last["l0"], last["fvu"] < 1
    (2048, 8.0, True)

    References
    ----------
    Bricken, T. et al. (2023). Towards Monosemanticity: Decomposing Language Models With
    Dictionary Learning. Transformer Circuits Thread. Gao, L. et al. (2024). Scaling and
    evaluating sparse autoencoders. arXiv:2406.04093 (top-k, AuxK, the default learning rate).
    """
    import torch

    from whybox.sae import _ddp
    from whybox.sae.models import SAE, SAEConfig, TrainState, geometric_median

    unknown = sorted(set(sae_options) - set(_SAE_OPTIONS))
    if unknown:
        raise InvalidParameterError(
            f"train() got unknown options {unknown}. Accepted SAE options: {', '.join(_SAE_OPTIONS)}."
        )
    batch_size = check_int("batch_size", batch_size, minimum=1)
    lr_warmup_steps = check_int("lr_warmup_steps", lr_warmup_steps, minimum=0)
    l1_warmup_steps = check_int("l1_warmup_steps", l1_warmup_steps, minimum=0)
    if lr_schedule not in LR_SCHEDULES:
        raise InvalidParameterError(f"lr_schedule={lr_schedule!r}; expected one of {LR_SCHEDULES}.")
    if resume and checkpoint_dir is None and not isinstance(resume, str | Path):
        raise InvalidParameterError(
            "resume=True needs checkpoint_dir= (the folder of the checkpoints)."
        )
    if width is not None and expansion_factor is not None:
        raise InvalidParameterError("pass width= or expansion_factor=, not both.")

    ctx = _ddp.context(device, distributed)
    try:
        # with a model under torchrun each rank streams its own share of the tokens
        per_rank = activations is None and ctx.distributed
        draw = batch_size // ctx.world_size if per_rank else batch_size
        if activations is None:
            if model is None or site is None or tokens is None:
                raise InvalidParameterError(
                    "train() needs activations=, or model=, site= and tokens= to stream them from."
                )
            from whybox.sae.activations import ModelActivations

            opts = dict(activation_options or {})
            if site_out is not None:
                opts["site_out"] = site_out
            opts["batch_size"] = max(draw, 1)
            activations = ModelActivations(
                model, site, _ddp.shard_tokens(tokens, ctx.rank, ctx.world_size),
                tokenizer=tokenizer, random_state=random_state + ctx.rank, **opts,
            )  # fmt: skip
        stream = _as_stream(activations, batch_size, random_state)
        if batch_size % ctx.world_size:
            raise InvalidParameterError(
                f"batch_size={batch_size} must be divisible by the number of ranks "
                f"({ctx.world_size}); pass a multiple of {ctx.world_size}."
            )
        if total_tokens is None:
            n = getattr(stream, "n", None) or getattr(stream, "n_tokens", None)
            if n is None:
                raise InvalidParameterError(
                    "total_tokens is needed when the activation source has no known length."
                )
            total_tokens = int(n)
        total_tokens = check_int("total_tokens", total_tokens, minimum=1)
        total_steps = total_tokens // batch_size
        if total_steps < 1:
            raise InvalidParameterError(
                f"total_tokens={total_tokens} is less than one batch of {batch_size}; pass more "
                "tokens or a smaller batch_size."
            )

        def fetch(step_no: int, seen: int):
            """The next raw batch, checked; under per-rank streams every rank learns of a
            failure on any rank (so none waits forever in a collective)."""
            failure = batch = None
            try:
                x, y = _split(stream.next_batch(draw))
                x, y = torch.as_tensor(x), None if y is None else torch.as_tensor(y)
                _check_finite(x, "activations", step_no, seen)
                if y is not None:
                    _check_finite(y, "transcoder targets", step_no, seen)
                batch = (x, y)
            except WhyboxError as exc:
                if not per_rank:
                    raise
                failure = exc
            if per_rank and ctx.any_(failure is not None):
                raise failure or InvalidInputError(
                    f"another rank stopped at step {step_no} (its error is in its log); "
                    "training stopped on every rank."
                )
            return batch

        pending = fetch(0, 0)
        d_in = int(pending[0].shape[-1])
        d_out = None if pending[1] is None else int(pending[1].shape[-1])
        if width is None:
            width = d_in * check_int("expansion_factor", expansion_factor or 8, minimum=1)
        width = check_int("width", width, minimum=1)
        arch = SAEConfig(d_in=1, d_sae=1, architecture=architecture, k=1).architecture
        if arch in ("topk", "batchtopk", "matryoshka") and k is None:
            k = min(32, width)
        if model is not None and "model_name" not in sae_options:
            name = getattr(getattr(model, "config", None), "name_or_path", None)
            sae_options["model_name"] = name if isinstance(name, str) and name else None
        cfg = SAEConfig(
            d_in=d_in,
            d_sae=width,
            architecture=arch,
            k=k if arch in ("topk", "batchtopk", "matryoshka") else None,
            d_out=d_out,
            hook_name=site,
            hook_name_out=site_out,
            normalize_activations=normalize_activations,
            **({"l1_coefficient": float(l1_coefficient)} if l1_coefficient is not None else {}),
            **(
                {"dead_tokens": check_int("dead_tokens", dead_tokens, minimum=1)}
                if dead_tokens is not None
                else {}
            ),
            **sae_options,
        )
        lr = float(lr) if lr is not None else 2e-4 / math.sqrt(width / 2**14)
        if lr_decay_steps is None:
            lr_decay_steps = total_steps // 5
        lr_decay_steps = check_int("lr_decay_steps", lr_decay_steps, minimum=0)
        if lr_warmup_steps + lr_decay_steps > total_steps:
            raise InvalidParameterError(
                f"lr_warmup_steps + lr_decay_steps = {lr_warmup_steps + lr_decay_steps} exceeds "
                f"the {total_steps} training steps; shorten them or train longer."
            )
        if resample_dead is None:
            resample_dead = arch == "standard"
        resample_every = check_int(
            "resample_every", resample_every or max(total_steps // 5, 1), minimum=1
        )
        log_every = check_int("log_every", log_every or max(total_steps // 100, 1), minimum=1)

        sae = SAE.create(cfg, random_state=random_state).to(ctx.device)
        dev, dtype = sae.W_enc.device, sae.W_enc.dtype
        params = [p for p in sae.parameters() if p.requires_grad]
        opt = _adam(params, lr, tuple(adam_betas))
        gen = torch.Generator().manual_seed(int(random_state) + 7919)
        config = {
            "sae": {
                k_: v for k_, v in cfg.to_dict().items() if k_ not in ("metadata", "model_name")
            },
            "total_steps": total_steps,
            "batch_size": batch_size,
            "lr": lr,
            "lr_schedule": lr_schedule,
            "lr_warmup_steps": lr_warmup_steps,
            "lr_decay_steps": lr_decay_steps,
            "lr_end": float(lr_end),
            "adam_betas": list(adam_betas),
            "l1_warmup_steps": l1_warmup_steps,
            "resample": [bool(resample_dead), resample_every],
            "random_state": int(random_state),
            "source": type(stream).__name__,
            "ranks_stream": ctx.world_size if per_rank else 1,
        }
        dead = torch.zeros(width, dtype=torch.long, device=dev)
        step, tokens_seen, history = 0, 0, []
        ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        if resume:
            path = (
                Path(resume) if isinstance(resume, str | Path) else _ddp.latest_checkpoint(ckpt_dir)
            )
            if path is not None:
                if not (path / "state.json").is_file():
                    raise InvalidParameterError(f"{path} is not a whybox training checkpoint.")
                skip_from = stream.state_dict() if hasattr(stream, "state_dict") else None
                state, dead = _ddp.load_checkpoint(
                    path, sae, opt, stream, gen, config, ctx, per_rank
                )
                step, tokens_seen, history = state["step"], state["tokens"], state["history"]
                if skip_from is None:  # no source state: skip the batches already used
                    for _ in range(step - 1):
                        fetch(0, 0)
                else:
                    pending = None
        bar = _Progress(bool(progress) and ctx.is_main, total_steps, step)
        schedule = functools.partial(
            lr_at, lr=lr, total_steps=total_steps, warmup_steps=lr_warmup_steps,
            decay_steps=lr_decay_steps, lr_end=float(lr_end), schedule=lr_schedule,
        )  # fmt: skip
        decay_start = total_steps - lr_decay_steps
        try:
            while step < total_steps:
                x, y = pending if pending is not None else fetch(step, tokens_seen)
                pending = None
                x, y = x.to(dev, dtype), None if y is None else y.to(dev, dtype)
                if per_rank:  # the batch is this rank's share already
                    xl, yl = x, y
                else:
                    rows = ctx.local_slice(x.shape[0])
                    xl, yl = x[rows], None if y is None else y[rows]
                if step == 0:
                    xg, yg = (
                        (ctx.all_gather_rows(x), ctx.all_gather_rows(y)) if per_rank else (x, y)
                    )
                    with torch.no_grad():
                        if cfg.normalize_activations == "expected_average_only_in":
                            mean_norm = float(torch.linalg.vector_norm(xg.double(), dim=1).mean())
                            sae.scaling_factor = math.sqrt(d_in) / max(mean_norm, 1e-12)
                        if yg is None:
                            sae.init_b_dec_geometric_median_(xg)
                        else:
                            sae.b_dec.copy_(geometric_median(yg))
                lr_now = schedule(step)
                for group in opt.param_groups:
                    group["lr"] = lr_now
                ts = TrainState(step, total_steps, dead, l1_scale_at(step, l1_warmup_steps))
                parts = sae.training_loss(xl, yl, step_state=ts)
                stats = torch.tensor(
                    [float(parts.loss.detach()), float(parts.mse.detach()), parts.l0, parts.fvu],
                    dtype=torch.float64,
                    device=dev,
                )
                ctx.all_reduce_(stats, "mean")
                _check_loss(sae, float(stats[0]), step)
                opt.zero_grad(set_to_none=True)
                parts.loss.backward()
                ctx.all_reduce_grads_(params)
                if cfg.decoder_unit_norm:
                    sae.remove_gradient_parallel_to_decoder_()
                opt.step()
                if cfg.decoder_unit_norm:
                    sae.set_decoder_norm_to_unit_norm_()
                fired = ctx.all_reduce_(parts.fired.to(torch.int32), "max").bool()
                dead += batch_size
                dead[fired] = 0
                buf = getattr(sae, "topk_threshold", None)
                if buf is not None:
                    ctx.all_reduce_(buf.data, "mean")
                step += 1
                tokens_seen += batch_size
                if resample_dead and step % resample_every == 0 and step < decay_start:
                    mask = dead >= cfg.dead_tokens
                    xg, yg = (
                        (ctx.all_gather_rows(x), ctx.all_gather_rows(y)) if per_rank else (x, y)
                    )
                    if _resample_dead_(sae, opt, xg, yg, mask, gen):
                        dead[mask] = 0
                metrics = {
                    "step": step,
                    "tokens": tokens_seen,
                    "loss": float(stats[0]),
                    "mse": float(stats[1]),
                    "l0": float(stats[2]),
                    "fvu": float(stats[3]),
                    "dead_fraction": float((dead >= cfg.dead_tokens).double().mean()),
                    "lr": lr_now,
                }
                if step % log_every == 0 or step == total_steps:
                    history.append(metrics)
                    bar.update(step, metrics)
                stop = bool(callback(metrics)) if callback is not None else False
                due = (
                    stop
                    or step == total_steps
                    or (checkpoint_every and step % checkpoint_every == 0)
                )
                if ckpt_dir is not None and due:
                    _ddp.save_checkpoint(
                        ckpt_dir, step, sae, opt, stream, gen, dead, config, tokens_seen, history,
                        ctx, per_rank,
                    )  # fmt: skip
                if stop:
                    break
        finally:
            bar.close()
        ctx.barrier()
    finally:
        ctx.close()
    run = dict(tokens=tokens_seen, steps=step, lr=lr, batch_size=batch_size, seed=random_state)
    cfg.metadata = {**cfg.metadata, "training": run}
    sae.history = history
    return sae.eval()


def main(argv: list[str] | None = None) -> int:
    """``python -m whybox.sae.training --config cfg.json`` (also under ``torchrun``).

    The JSON holds :func:`train`'s keyword arguments plus ``"activations"`` (a ``.npy`` file,
    a ``.safetensors`` file with tensor ``"x"`` and optionally ``"y"``, or a shard folder),
    optionally ``"targets"`` (a ``.npy`` file of transcoder targets) and ``"out"``, the folder
    rank 0 saves the trained SAE to (SAELens layout). A JSON list of such objects trains them
    one after the other in the same process group (e.g. one SAE per layer).
    """
    import argparse
    import json

    from whybox.sae import _ddp

    parser = argparse.ArgumentParser(prog="python -m whybox.sae.training")
    parser.add_argument("--config", required=True, help="JSON file of train() arguments")
    args = parser.parse_args(argv)
    configs = json.loads(Path(args.config).read_text())
    configs = configs if isinstance(configs, list) else [configs]
    ctx = _ddp.context(None, None)  # one process group for every config
    try:
        for options in configs:
            out = options.pop("out", None)
            if out is None or "activations" not in options:
                raise InvalidParameterError(
                    'each config needs "activations" (a path) and "out" (a folder).'
                )
            acts = _load_activations(options.pop("activations"), options.pop("targets", None))
            if "adam_betas" in options:
                options["adam_betas"] = tuple(options["adam_betas"])
            sae = train(activations=acts, **options)
            if ctx.is_main:
                sae.save(Path(out))
            ctx.barrier()
    finally:
        ctx.close()
    return 0


def _load_activations(source: str, targets: str | None) -> Any:
    import numpy as np

    path = Path(source)
    if path.suffix == ".npy":
        x = np.load(path, mmap_mode="r")
        return x if targets is None else (x, np.load(targets, mmap_mode="r"))
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        data = load_file(str(path))
        return data["x"] if "y" not in data else (data["x"], data["y"])
    return str(path)


if __name__ == "__main__":  # pragma: no cover - exercised through torchrun in the tests
    raise SystemExit(main())
