"""Modular addition learnt by a one-layer transformer that groks (Nanda et al. 2023).

:func:`modular_addition_model` trains (or loads from the cache) the model of "Progress
measures for grokking via mechanistic interpretability": inputs ``[a, b, =]`` with
``a, b in 0 .. p-1`` and ``=`` the token ``p``, target ``(a + b) mod p`` read at the last
position; one block, no layer norm; AdamW with heavy weight decay on a random 30 % of the
``p * p`` pairs, full batch. The model first memorises the training pairs, then - long after
its training loss is near zero - *groks*: test accuracy jumps to 100 %. The grokked model adds
on a circle: its embedding is sparse in the Fourier basis over token index, a handful of *key
frequencies* ``k`` (``cos(2 pi k a / p)``, ``sin(2 pi k a / p)``) carry the computation.

:func:`fourier_key_frequencies` finds them from the embedding's discrete Fourier transform, and
:func:`ablate_frequencies` projects the embedding onto (or away from) chosen frequencies and
measures the accuracy that remains.

The module layout is a standard transformer's, so hooks and anatomies address it by path::

    embed                  Embedding(p + 1, d_model)        token embedding (W_E)
    pos_embed              Embedding(3, d_model)            learned positions
    blocks.0.attn          q_proj, k_proj, v_proj, o_proj  (Linear, no bias), causal, n_heads;
                           returns (output, pattern (batch, n_heads, q, k)) as HF attention does
    blocks.0.mlp           fc_in Linear(d_model, d_mlp), act ReLU, fc_out Linear(d_mlp, d_model)
    unembed                Linear(d_model, p, bias=False)   (W_U)

``model(input_ids)`` returns logits of shape (batch, pos, p); the answer is at position 2.

References
----------
Nanda, N., Chan, L., Lieberum, T., Smith, J., & Steinhardt, J. (2023). Progress measures for
grokking via mechanistic interpretability. ICLR 2023. arXiv:2301.05217.
Power, A. et al. (2022). Grokking: Generalization beyond overfitting on small algorithmic
datasets. arXiv:2201.02177.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from whybox._validation import check_int
from whybox.errors import InvalidInputError, InvalidParameterError, UnsupportedModelError
from whybox.zoo._training import check_flag, require, training_scope
from whybox.zoo.cache import cached_model

__all__ = [
    "FourierAnalysis",
    "ModularInfo",
    "ablate_frequencies",
    "fourier_basis",
    "fourier_key_frequencies",
    "modular_addition_data",
    "modular_addition_model",
]

_VERSION = "1"  # bump when the architecture or the training recipe changes
_FEATURE = "the modular-addition toy model"
_EVAL_EVERY = 50  # steps between the test-accuracy checks kept in the history


# ------------------------------------------------------------------ the model


def _module_classes(torch: Any) -> Any:
    nn = torch.nn

    class Attention(nn.Module):
        """Causal multi-head attention with separate q/k/v/o projections (no biases)."""

        def __init__(self, d_model: int, n_heads: int) -> None:
            super().__init__()
            self.n_heads = n_heads
            self.d_head = d_model // n_heads
            self.q_proj = nn.Linear(d_model, d_model, bias=False)
            self.k_proj = nn.Linear(d_model, d_model, bias=False)
            self.v_proj = nn.Linear(d_model, d_model, bias=False)
            self.o_proj = nn.Linear(d_model, d_model, bias=False)

        def forward(self, x: Any, last_only: bool = False) -> Any:
            b, t, d = x.shape
            tq = 1 if last_only else t
            q = self.q_proj(x[:, t - tq :]).view(b, tq, self.n_heads, self.d_head)
            k = self.k_proj(x).view(b, t, self.n_heads, self.d_head)
            v = self.v_proj(x).view(b, t, self.n_heads, self.d_head)
            q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
            scores = q @ k.transpose(-1, -2) / math.sqrt(self.d_head)
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)[t - tq :]
            pattern = scores.masked_fill(mask, float("-inf")).softmax(-1)
            z = (pattern @ v).transpose(1, 2).reshape(b, tq, d)
            return self.o_proj(z), pattern  # as Hugging Face attention modules return

    class MLP(nn.Module):
        def __init__(self, d_model: int, d_mlp: int) -> None:
            super().__init__()
            self.fc_in = nn.Linear(d_model, d_mlp)
            self.act = nn.ReLU()
            self.fc_out = nn.Linear(d_mlp, d_model)

        def forward(self, x: Any) -> Any:
            return self.fc_out(self.act(self.fc_in(x)))

    class Block(nn.Module):
        def __init__(self, d_model: int, n_heads: int, d_mlp: int) -> None:
            super().__init__()
            self.attn = Attention(d_model, n_heads)
            self.mlp = MLP(d_model, d_mlp)

        def forward(self, x: Any, last_only: bool = False) -> Any:
            x = (x[:, -1:] if last_only else x) + self.attn(x, last_only)[0]
            return x + self.mlp(x)

    class ModularAdditionTransformer(nn.Module):
        """One-layer transformer without layer norm over ``[a, b, =]`` (Nanda et al. 2023)."""

        def __init__(self, p: int, d_model: int, n_heads: int, d_mlp: int) -> None:
            super().__init__()
            self.p = p
            self.config = ModularConfig(p, d_model, n_heads, d_mlp)
            self.embed = nn.Embedding(p + 1, d_model)
            self.pos_embed = nn.Embedding(3, d_model)
            self.blocks = nn.ModuleList([Block(d_model, n_heads, d_mlp)])
            self.unembed = nn.Linear(d_model, p, bias=False)
            for emb in (self.embed, self.pos_embed):  # N(0, 1 / d_model), as in the paper
                nn.init.normal_(emb.weight, std=d_model**-0.5)

        def forward(self, input_ids: Any) -> Any:
            """Logits of shape (batch, pos, p) for ``input_ids`` of shape (batch, pos <= 3)."""
            pos = torch.arange(input_ids.shape[1], device=input_ids.device)
            x = self.embed(input_ids) + self.pos_embed(pos)
            for block in self.blocks:
                x = block(x)
            return self.unembed(x)

        def last_logits(self, input_ids: Any) -> Any:
            """``forward(input_ids)[:, -1]`` (batch, p), computing the last position only.

            Exact for one block: the other positions enter only through keys and values.
            """
            pos = torch.arange(input_ids.shape[1], device=input_ids.device)
            x = self.embed(input_ids) + self.pos_embed(pos)
            return self.unembed(self.blocks[0](x, last_only=True))[:, 0]

    return ModularAdditionTransformer


@dataclass(frozen=True)
class ModularConfig:
    """The architecture, under the Hugging Face names that anatomies read."""

    p: int
    hidden_size: int
    num_attention_heads: int
    intermediate_size: int
    num_hidden_layers: int = 1

    @property
    def vocab_size(self) -> int:
        """Input tokens: ``0 .. p-1`` and ``=`` (= ``p``)."""
        return self.p + 1

    @property
    def max_position_embeddings(self) -> int:
        """Inputs are ``[a, b, =]``: three positions."""
        return 3


def _build(torch: Any, arch: dict[str, int]) -> Any:
    cls = _module_classes(torch)
    return cls(arch["p"], arch["d_model"], arch["n_heads"], arch["d_mlp"])


# ------------------------------------------------------------------ data


def modular_addition_data(p: int, frac_train: float = 0.3, seed: int = 0) -> dict[str, Any]:
    """Every pair ``(a, b)`` as ``[a, b, p]`` with its label ``(a + b) mod p``, split at random.

    Parameters
    ----------
    p : int
        The modulus (a prime >= 3 in the papers; any int >= 3 works).
    frac_train : float, default 0.3
        Fraction of the ``p * p`` pairs in the training split.
    seed : int, default 0
        Seed of the split's permutation (a private torch generator).

    Returns
    -------
    dict
        ``X`` (p*p, 3) and ``y`` (p*p,) in the order ``a * p + b``; ``train`` and ``test``:
        index tensors into them; ``X_train``, ``y_train``, ``X_test``, ``y_test``.

    Raises
    ------
    InvalidParameterError
        ``p`` below 3, ``frac_train`` outside (0, 1), a negative ``seed``.
    MissingDependencyError
        Without torch.

    Examples
    --------
    >>> data = wb.zoo.modular_addition_data(7)
    >>> tuple(data["X"].shape), tuple(data["X_train"].shape)   # 49 pairs, 30% for training
    ((49, 3), (15, 3))
    >>> data["X"][10].tolist(), int(data["y"][10])             # [a, b, "="]: (1 + 3) mod 7
    ([1, 3, 7], 4)

    References
    ----------
    Power, A. et al. (2022). Grokking: Generalization Beyond Overfitting on Small Algorithmic
    Datasets. arXiv:2201.02177. Nanda, N. et al. (2023). Progress measures for grokking via
    mechanistic interpretability. ICLR 2023.
    """
    torch = require("torch", "torch", _FEATURE)
    p = check_int("p", p, minimum=3)
    seed = check_int("seed", seed, minimum=0)
    if not isinstance(frac_train, (int, float)) or not 0.0 < float(frac_train) < 1.0:
        raise InvalidParameterError(
            f"frac_train must be a float strictly between 0 and 1, got {frac_train!r}."
        )
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    a, b = a.reshape(-1), b.reshape(-1)
    X = torch.stack([a, b, torch.full_like(a, p)], dim=1)
    y = (a + b) % p
    perm = torch.randperm(p * p, generator=torch.Generator().manual_seed(seed))
    n_train = round(float(frac_train) * p * p)
    train, test = perm[:n_train], perm[n_train:]
    return {
        "X": X,
        "y": y,
        "train": train,
        "test": test,
        "X_train": X[train],
        "y_train": y[train],
        "X_test": X[test],
        "y_test": y[test],
    }


# ------------------------------------------------------------------ training


def _positive(name: str, value: Any, *, zero_ok: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not zero_ok):
        raise InvalidParameterError(
            f"{name} must be a finite number {'>= 0' if zero_ok else '> 0'}, got {value!r}."
        )
    return float(value)


def _accuracy(torch: Any, model: Any, X: Any, y: Any) -> float:
    with torch.no_grad():
        return float((model.last_logits(X).argmax(-1) == y).double().mean())


def _train(config: dict[str, Any], seed: int) -> dict[str, np.ndarray]:
    torch = require("torch", "torch", _FEATURE)
    arch = config["architecture"]
    data = modular_addition_data(arch["p"], config["frac_train"], seed)
    X_tr, y_tr, X_te, y_te = data["X_train"], data["y_train"], data["X_test"], data["y_test"]
    steps_hist, loss_hist, train_hist, test_hist = [], [], [], []
    with training_scope(torch, seed):
        model = _build(torch, arch)
        opt = torch.optim.AdamW(
            model.parameters(),
            lr=config["lr"],
            weight_decay=config["weight_decay"],
            betas=(0.9, 0.98),
        )
        warmup = config["warmup"]
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))
        for step in range(1, config["steps"] + 1):
            model.train()
            loss = torch.nn.functional.cross_entropy(model.last_logits(X_tr), y_tr)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if step % _EVAL_EVERY == 0 or step == config["steps"]:
                model.eval()
                steps_hist.append(step)
                loss_hist.append(loss.item())
                train_hist.append(_accuracy(torch, model, X_tr, y_tr))
                test_hist.append(_accuracy(torch, model, X_te, y_te))
    weights = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    weights["history.step"] = np.asarray(steps_hist, dtype=np.int64)
    weights["history.train_loss"] = np.asarray(loss_hist, dtype=np.float64)
    weights["history.train_accuracy"] = np.asarray(train_hist, dtype=np.float64)
    weights["history.test_accuracy"] = np.asarray(test_hist, dtype=np.float64)
    return weights


@dataclass(frozen=True)
class ModularInfo:
    """The training run behind :func:`modular_addition_model`.

    Attributes
    ----------
    p : int
        The modulus.
    config : dict
        Architecture and training settings.
    data : dict
        :func:`modular_addition_data` of the run (the split the model was trained on).
    train_accuracy, test_accuracy : float
        Accuracy of the returned model on the two splits.
    history : dict of str to ndarray
        ``step``, ``train_loss``, ``train_accuracy``, ``test_accuracy``, every 50 steps.
    steps_to_grok : int or None
        First recorded step at which test accuracy exceeded 99 % (None if it never did).
    """

    p: int
    config: dict[str, Any]
    data: dict[str, Any] = field(repr=False)
    train_accuracy: float
    test_accuracy: float
    history: dict[str, np.ndarray] = field(repr=False)
    steps_to_grok: int | None


def modular_addition_model(
    p: int = 113,
    seed: int = 0,
    *,
    steps: int | None = None,
    frac_train: float = 0.3,
    lr: float = 5e-3,
    weight_decay: float = 3.0,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[Any, ModularInfo]:
    """A one-layer transformer trained to grok ``(a + b) mod p``, trained once then cached.

    Architecture (Nanda et al. 2023): d_model 128, 4 heads of 32, d_mlp 512, ReLU, no layer
    norm, learned positions, untied unembedding. Training: full batch on ``frac_train`` of
    the pairs, AdamW (learning rate 5e-3 after a 10-step warm-up, betas (0.9, 0.98), weight
    decay 3.0), one CPU thread, seeded. The paper's learning rate 1e-3 and weight decay 1.0
    grok too, an order of magnitude later; the faster decay keeps the first run short (p 113:
    groks near step 800, ~3 min for the 2000 steps on one core; p 59: ~1000-1300, ~50 s).

    Parameters
    ----------
    p : int, default 113
        The modulus (the paper's 113; the test suite uses 59).
    seed : int, default 0
        Seed of the split, the initialisation and the optimiser.
    steps : int, optional
        Optimiser steps (full-batch); default 2000.
    frac_train : float, default 0.3
        Fraction of the ``p * p`` pairs trained on.
    lr : float, default 5e-3
        AdamW learning rate.
    weight_decay : float, default 3.0
        AdamW (decoupled) weight decay.
    cache : bool, default True
        Load from / store to the cache.
    cache_dir : path, optional
        The cache folder (default ``$WHYBOX_CACHE`` or the user cache).

    Returns
    -------
    model : torch.nn.Module
        ``model(input_ids)`` -> logits (batch, pos, p); CPU, float32, eval mode.
    info : ModularInfo
        Split, accuracies, training history and the step at which it grokked.

    Raises
    ------
    InvalidParameterError
        ``p`` below 3, a negative seed, fewer than one step, a bad ``frac_train``, ``lr`` or
        ``weight_decay``.
    MissingDependencyError
        Without torch.

    Examples
    --------
    >>> model, info = wb.zoo.modular_addition_model(p=59, steps=1500)  # ~1 min once, cached
    >>> info.train_accuracy > 0.99, info.test_accuracy > 0.99   # grokked: it generalises
    (True, True)

    References
    ----------
    Nanda, N. et al. (2023). Progress measures for grokking via mechanistic
    interpretability. ICLR 2023.
    """
    torch = require("torch", "torch", _FEATURE)
    p = check_int("p", p, minimum=3)
    seed = check_int("seed", seed, minimum=0)
    steps = 2000 if steps is None else check_int("steps", steps, minimum=1)
    cache = check_flag("cache", cache)
    data = modular_addition_data(p, frac_train, seed)  # validates frac_train
    config = {
        "architecture": {"p": p, "d_model": 128, "n_heads": 4, "d_mlp": 512},
        "frac_train": float(frac_train),
        "steps": steps,
        "lr": _positive("lr", lr),
        "weight_decay": _positive("weight_decay", weight_decay, zero_ok=True),
        "warmup": 10,
    }
    arrays = cached_model(
        "modular_addition",
        _train,
        config,
        seed,
        version=_VERSION,
        cache_dir=cache_dir,
        cache=cache,
    )
    history = {k[len("history.") :]: v for k, v in arrays.items() if k.startswith("history.")}
    with torch.random.fork_rng(devices=[]):
        model = _build(torch, config["architecture"])
    model.load_state_dict(
        {k: torch.from_numpy(v.copy()) for k, v in arrays.items() if not k.startswith("history.")}
    )
    model.eval()
    grokked = np.flatnonzero(history["test_accuracy"] > 0.99)
    return model, ModularInfo(
        p=p,
        config=config,
        data=data,
        train_accuracy=_accuracy(torch, model, data["X_train"], data["y_train"]),
        test_accuracy=_accuracy(torch, model, data["X_test"], data["y_test"]),
        history=history,
        steps_to_grok=int(history["step"][grokked[0]]) if grokked.size else None,
    )


# ------------------------------------------------------------------ Fourier analysis


def fourier_basis(p: int) -> tuple[np.ndarray, list[str]]:
    """The orthonormal Fourier basis over ``0 .. p-1``: constant, then cos / sin per frequency.

    Returns
    -------
    basis : ndarray of shape (p, p)
        Row 0 is ``1 / sqrt(p)``; rows ``2k - 1`` and ``2k`` are ``cos(2 pi k x / p)`` and
        ``sin(2 pi k x / p)`` scaled to unit norm, for ``k = 1 .. (p - 1) // 2`` (and, for an
        even ``p``, a last row ``cos(pi x)`` of frequency ``p / 2``).
    labels : list of str
        ``"const"``, ``"cos 1"``, ``"sin 1"``, ...
    """
    p = check_int("p", p, minimum=3)
    x = np.arange(p)
    rows, labels = [np.full(p, 1.0)], ["const"]
    for k in range(1, p // 2 + 1):
        rows.append(np.cos(2 * np.pi * k * x / p))
        labels.append(f"cos {k}")
        if 2 * k != p:
            rows.append(np.sin(2 * np.pi * k * x / p))
            labels.append(f"sin {k}")
    basis = np.stack(rows)
    return basis / np.linalg.norm(basis, axis=1, keepdims=True), labels


def _frequency_rows(p: int, freqs: Iterable[int]) -> list[int]:
    rows = []
    n_freq = p // 2
    for k in freqs:
        k = check_int("frequency", k, minimum=1, maximum=n_freq)
        rows.append(2 * k - 1)
        if 2 * k != p:
            rows.append(2 * k)
    return rows


def _embedding(model: Any, p: int) -> np.ndarray:
    if hasattr(model, "embed") and hasattr(model.embed, "weight"):
        W = model.embed.weight.detach().to("cpu").double().numpy()
    elif hasattr(model, "detach") or isinstance(model, np.ndarray):
        W = np.asarray(model.detach().cpu() if hasattr(model, "detach") else model, float)
    else:
        raise UnsupportedModelError(
            f"expected the modular-addition model (with an .embed) or an embedding matrix of "
            f"shape (p or p + 1, d_model), got {type(model).__name__}."
        )
    if W.ndim != 2 or W.shape[0] not in (p, p + 1):
        raise InvalidInputError(
            f"the embedding has shape {W.shape}; expected (p, d_model) or (p + 1, d_model) with "
            f"p = {p}. Pass the p the model was trained for."
        )
    return W[:p]


@dataclass(frozen=True)
class FourierAnalysis:
    """The embedding in the Fourier basis and its key frequencies.

    Attributes
    ----------
    norms : ndarray of shape (p // 2 + 1,)
        ``norms[k]``: the norm of the embedding's component along frequency ``k`` (its cos and
        sin rows together; ``norms[0]`` is the constant component).
    key : list of int
        The key frequencies, largest norm first.
    fraction : float
        Share of the embedding's non-constant squared norm that the key frequencies carry.
    coefficients : ndarray of shape (p, d_model)
        ``fourier_basis(p)[0] @ W_E``.
    """

    norms: np.ndarray
    key: list[int]
    fraction: float
    coefficients: np.ndarray = field(repr=False)


def fourier_key_frequencies(
    model: Any, p: int, *, k: int | None = None, coverage: float = 0.9
) -> FourierAnalysis:
    """The frequencies that carry the embedding of a modular-addition model (Nanda et al. 2023).

    The token embedding ``W_E`` (p rows, the ``=`` row dropped) is written in the orthonormal
    Fourier basis over the token index; the norm of each frequency is that of its cos and sin
    coefficients together. A grokked model's norms are sparse: a handful of frequencies carry
    almost all of it.

    Parameters
    ----------
    model : the modular-addition model, or an embedding array of shape (p or p + 1, d_model)
        Its token embedding ``embed.weight`` is read.
    p : int
        The modulus.
    k : int, optional
        Return exactly the ``k`` largest frequencies.
    coverage : float, default 0.9
        Without ``k``: the fewest frequencies (largest first) whose squared norms sum to at
        least ``coverage`` of the non-constant squared norm.

    Returns
    -------
    FourierAnalysis

    Raises
    ------
    InvalidParameterError
        ``p`` below 3, ``coverage`` outside (0, 1], ``k`` outside ``1 .. p // 2``.
    InvalidInputError
        An embedding whose shape is not (p or p + 1, d_model).
    UnsupportedModelError
        Neither the modular-addition model nor an embedding array.

    Examples
    --------
    An embedding built from frequencies 3 and 5 alone (p = 13) has exactly those keys:

    >>> a = np.arange(13)
    >>> W_E = np.stack([np.cos(2 * np.pi * 3 * a / 13), np.sin(2 * np.pi * 3 * a / 13),
    ...                 np.cos(2 * np.pi * 5 * a / 13)], axis=1)      # (p, d_model)
    >>> fa = wb.zoo.fourier_key_frequencies(W_E, 13)
    >>> fa.key, round(fa.fraction, 3)
    ([3, 5], 1.0)

    References
    ----------
    Nanda, N. et al. (2023). Progress measures for grokking via mechanistic
    interpretability. ICLR 2023, section 4.
    """
    p = check_int("p", p, minimum=3)
    if not isinstance(coverage, (int, float)) or not 0.0 < float(coverage) <= 1.0:
        raise InvalidParameterError(f"coverage must be in (0, 1], got {coverage!r}.")
    W = _embedding(model, p)
    basis, _ = fourier_basis(p)
    coef = basis @ W
    n_freq = p // 2
    norms = np.zeros(n_freq + 1)
    norms[0] = np.linalg.norm(coef[0])
    for f in range(1, n_freq + 1):
        norms[f] = np.linalg.norm(coef[_frequency_rows(p, [f])])
    power = norms[1:] ** 2
    order = np.argsort(-power, kind="stable") + 1
    if k is not None:
        n_key = check_int("k", k, minimum=1, maximum=n_freq)
    else:
        cum = np.cumsum(power[order - 1]) / power.sum()
        n_key = int(np.searchsorted(cum, float(coverage) - 1e-12) + 1)
    key = [int(f) for f in order[:n_key]]
    return FourierAnalysis(
        norms=norms,
        key=key,
        fraction=float(power[np.asarray(key) - 1].sum() / power.sum()),
        coefficients=coef,
    )


def ablate_frequencies(
    model: Any,
    p: int,
    *,
    keep: Iterable[int] | None = None,
    remove: Iterable[int] | None = None,
    X: Any = None,
    y: Any = None,
) -> float:
    """Accuracy of the model after projecting its embedding onto chosen Fourier frequencies.

    The rows of ``W_E`` for ``0 .. p-1`` are replaced by their projection onto the constant
    and the cos / sin directions of the frequencies in ``keep`` (or of every frequency not in
    ``remove``); the ``=`` row is left as it is. The model passed in is not modified (a copy
    is evaluated).

    Parameters
    ----------
    model : the modular-addition model of :func:`modular_addition_model`
        It is not modified: a copy is evaluated.
    p : int
        The modulus.
    keep, remove : iterable of int
        Frequencies in ``1 .. p // 2``; pass exactly one of them.
    X, y : tensors, optional
        Inputs (n, 3) and labels; default all ``p * p`` pairs.

    Returns
    -------
    float
        Accuracy on ``X`` at the last position.

    Raises
    ------
    InvalidParameterError
        Both or neither of ``keep`` and ``remove``, a frequency outside ``1 .. p // 2``.
    UnsupportedModelError
        A model without the modular-addition model's ``.embed``.

    Examples
    --------
    >>> model, _ = wb.zoo.modular_addition_model(p=59, steps=1500)
    >>> key = wb.zoo.fourier_key_frequencies(model, 59).key      # a handful of frequencies
    >>> keep = wb.zoo.ablate_frequencies(model, 59, keep=key)
    >>> drop = wb.zoo.ablate_frequencies(model, 59, remove=key)
    >>> keep > 0.95, drop < 0.2                                   # they carry the algorithm
    (True, True)

    References
    ----------
    Nanda, N. et al. (2023). Progress measures for grokking via mechanistic
    interpretability. ICLR 2023, section 5 (ablations in the Fourier basis).
    """
    torch = require("torch", "torch", _FEATURE)
    p = check_int("p", p, minimum=3)
    if (keep is None) == (remove is None):
        raise InvalidParameterError(
            "pass exactly one of keep= (frequencies to keep) and remove= (frequencies to "
            "project out)."
        )
    if not (hasattr(model, "embed") and hasattr(model.embed, "weight")):
        raise UnsupportedModelError(
            f"ablate_frequencies needs the modular-addition model (with an .embed), got "
            f"{type(model).__name__}."
        )
    W = _embedding(model, p)
    basis, _ = fourier_basis(p)
    if keep is not None:
        chosen = set(_frequency_rows(p, keep)) | {0}
    else:
        chosen = set(range(p)) - set(_frequency_rows(p, remove))  # type: ignore[arg-type]
    B = basis[sorted(chosen)]
    projected = B.T @ (B @ W)
    ablated = copy.deepcopy(model)
    with torch.no_grad():
        weight = ablated.embed.weight
        weight[:p] = torch.as_tensor(projected, dtype=weight.dtype)
    if X is None or y is None:
        data = modular_addition_data(p)
        X, y = data["X"], data["y"]
    ablated.eval()
    return _accuracy(torch, ablated, X, y)
