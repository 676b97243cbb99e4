"""The tuned lens: one affine translator per layer, trained to match the model's own output.

The logit lens reads an intermediate residual stream ``h_l`` directly through the model's
final norm and unembedding. Early layers are often not in the unembedding's "language", so
the tuned lens first applies a learned affine map, ``h_l + A_l h_l + b_l``, initialised to
zero (so an untrained tuned lens *is* the logit lens) and trained to minimise the KL
divergence from the model's final distribution to the lens's, on activations cached from a
text corpus. The model and its unembedding stay frozen: only the translators are trained.

References
----------
.. [1] Belrose, Furman, Smith, Halawi, Ostrovsky, McKinney, Biderman & Steinhardt (2023),
       "Eliciting Latent Predictions from Transformers with the Tuned Lens",
       arXiv:2303.08112.
.. [2] nostalgebraist (2020), "interpreting GPT: the logit lens", LessWrong.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from whybox._persist import _atomic_write
from whybox._validation import check_in, check_int, check_random_state
from whybox.errors import (
    InvalidInputError,
    InvalidParameterError,
    MissingDependencyError,
    UnsupportedModelError,
)
from whybox.internals import hooks
from whybox.internals._lens_base import (
    _anatomy,
    _capture,
    _prepare_inputs,
    _readout,
    _reproduces,
    _select,
    _stack_names,
)
from whybox.internals.hooks import require_torch
from whybox.internals.lens import LogitLens, _kl

__all__ = ["TunedLens"]

_FORMAT = "whybox.tuned_lens"
_FORMAT_VERSION = 1
_WEIGHTS = "tuned_lens.safetensors"
_CONFIG = "tuned_lens.json"


def _sequences(data: Any, tokenizer: Any, max_length: int) -> list[list[int]]:
    """Token id lists (one per text or row, truncated to ``max_length``)."""
    torch = require_torch()
    if isinstance(data, str):
        data = [data]
    if isinstance(data, Mapping):
        if "input_ids" not in data:
            raise InvalidInputError(
                "a mapping of inputs must hold 'input_ids' (a tokenizer's BatchEncoding)."
            )
        ids = np.asarray(_numpy(data["input_ids"]))
        mask = data.get("attention_mask")
        mask = np.ones_like(ids) if mask is None else np.asarray(_numpy(mask))
        ids = ids[None] if ids.ndim == 1 else ids
        mask = mask[None] if mask.ndim == 1 else mask
        rows = [r[m.astype(bool)].tolist() for r, m in zip(ids, mask, strict=True)]
    elif isinstance(data, torch.Tensor | np.ndarray):
        arr = np.asarray(_numpy(data))
        if arr.dtype.kind not in "iu" or arr.ndim not in (1, 2):
            raise InvalidInputError(
                f"token ids must be integers of shape (n, pos) or (pos,), got dtype "
                f"{arr.dtype} and shape {arr.shape}."
            )
        rows = (arr[None] if arr.ndim == 1 else arr).tolist()
    elif isinstance(data, Sequence) and len(data) > 0 and all(isinstance(t, str) for t in data):
        if tokenizer is None:
            raise InvalidInputError(
                "the data are texts but no tokenizer was given: pass tokenizer=... (the "
                "model's own) or token ids."
            )
        rows = [list(tokenizer(t)["input_ids"]) for t in data]
    elif isinstance(data, Sequence) and len(data) > 0:
        rows = []
        for r in data:
            arr = np.asarray(_numpy(r))
            if arr.size == 0:
                continue
            if arr.ndim != 1 or arr.dtype.kind not in "iu":
                raise InvalidInputError(
                    "data must be texts, token ids (n, pos), or a list of 1-D token id lists; "
                    f"got an element of dtype {arr.dtype} and shape {arr.shape}."
                )
            rows.append(arr.tolist())
    else:
        raise InvalidInputError(
            f"data must be texts, token ids (n, pos) or a BatchEncoding, got "
            f"{type(data).__name__}{' (empty)' if hasattr(data, '__len__') else ''}."
        )
    rows = [r[:max_length] for r in rows if len(r) > 0]
    if not rows:
        raise InvalidInputError("the data hold no tokens: pass at least one non-empty text.")
    return rows


def _numpy(x: Any) -> Any:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else x


class TunedLens:
    """Affine translators per layer, trained with the KL objective of Belrose et al. (2023).

    Parameters
    ----------
    n_steps : int, default 250
        Optimiser steps (0 leaves the translators at the identity: the logit lens).
    optimizer : {"sgd", "adam"}, default "sgd"
        SGD with Nesterov momentum, as in the paper, or Adam.
    lr : float, optional
        Learning rate, decayed linearly to 0 over ``n_steps``. Default ``1 - momentum``
        (0.1) for SGD, as in the paper's code, and 1e-3 for Adam.
    momentum : float, default 0.9
        Nesterov momentum (SGD only).
    weight_decay : float, default 1e-3
        L2 penalty on the translators (it pulls them towards the identity).
    tokens_per_step : int, default 1024
        Tokens drawn (with replacement) from the cached activations per step.
    max_length : int, default 128
        Texts and rows are truncated to this many tokens.
    max_tokens : int, default 16384
        At most this many token positions are cached (a seeded random subset beyond).
    batch_size : int, default 8
        Sequences per forward pass while caching.
    random_state : int, numpy Generator or None, default 0
        Seeds the token subset and the draws of each step; equal seeds give equal lenses.

    Attributes
    ----------
    weight_ : Tensor (n_layers, d_model, d_model)
        ``A_l`` of each translator (float32, kept on the CPU and moved to the model's device
        when applied); the translator is ``h + h @ A_l.T + b_l``.
    bias_ : Tensor (n_layers, d_model)
    labels_ : list of str
        The entries translated: ``"embed"``, ``"L0"`` .. ``"L{n-2}"``; the last block's output
        ``"L{n-1}"`` is the model's own input to the unembedding and is read unchanged.
    history_ : list of float
        Training loss (mean KL in nats summed over the layers) per step.
    model_info_ : dict
        n_layers, d_model, vocab_size and the model's class, checked when the lens is used.

    Raises
    ------
    InvalidParameterError
        Checked by ``fit``: a non-positive ``tokens_per_step`` / ``max_length`` /
        ``max_tokens`` / ``batch_size``, a negative ``n_steps``, ``lr`` or ``weight_decay``,
        ``momentum`` outside [0, 1), an unknown ``optimizer``; ``logits`` / ``evaluate``
        before ``fit``.
    InvalidInputError
        Data that are neither texts, token ids nor a ``BatchEncoding``, or hold no tokens; a
        model other than the one the lens was fitted on.

    Examples
    --------
    >>> model, tok = wb.zoo.tiny_lm()
    >>> texts = wb.zoo.tiny_lm_corpus("train")[:10]
    >>> lens = wb.TunedLens(n_steps=20, tokens_per_step=256, max_tokens=2048)
    >>> lens = lens.fit(model, texts, tokenizer=tok)
    >>> kl = lens.evaluate(model, wb.zoo.tiny_lm_corpus("test")[:3], tokenizer=tok)
    >>> bool((kl.tuned_lens_kl < kl.logit_lens_kl).iloc[:-1].all())  # closer to the output
    True
    >>> ids = tok("The for statement is", return_tensors="pt").input_ids
    >>> tuple(lens.logits(model, ids).logits.shape)   # (entries, batch, pos, vocab)
    (5, 1, 4, 2048)

    References
    ----------
    .. [1] Belrose et al. (2023), "Eliciting Latent Predictions from Transformers with the
           Tuned Lens", arXiv:2303.08112.
    """

    def __init__(
        self,
        *,
        n_steps: int = 250,
        optimizer: str = "sgd",
        lr: float | None = None,
        momentum: float = 0.9,
        weight_decay: float = 1e-3,
        tokens_per_step: int = 1024,
        max_length: int = 128,
        max_tokens: int = 16384,
        batch_size: int = 8,
        random_state: Any = 0,
    ) -> None:
        self.n_steps = n_steps
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.tokens_per_step = tokens_per_step
        self.max_length = max_length
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.random_state = random_state

    def __repr__(self) -> str:
        state = f"{len(self.labels_)} translators" if self._fitted() else "not fitted"
        return f"TunedLens({state}, optimizer={self.optimizer!r}, n_steps={self.n_steps})"

    # ---------------------------------------------------------------- parameters ------
    def _hyper(self) -> dict[str, Any]:
        check_int("n_steps", self.n_steps, minimum=0)
        check_in("optimizer", self.optimizer, ("sgd", "adam"))
        for name in ("tokens_per_step", "max_length", "max_tokens", "batch_size"):
            check_int(name, getattr(self, name), minimum=1)
        lr = self.lr
        if lr is None:
            lr = 1.0 - float(self.momentum) if self.optimizer == "sgd" else 1e-3
        for name, value in (("lr", lr), ("momentum", self.momentum), ("wd", self.weight_decay)):
            if not isinstance(value, numbers.Real) or not np.isfinite(value) or value < 0:
                raise InvalidParameterError(
                    f"{'weight_decay' if name == 'wd' else name} must be a finite number >= 0, "
                    f"got {value!r}."
                )
        if not 0 <= float(self.momentum) < 1:
            raise InvalidParameterError(f"momentum must lie in [0, 1), got {self.momentum}.")
        return {"lr": float(lr)}

    def _fitted(self) -> bool:
        return hasattr(self, "weight_")

    def _check_fitted(self) -> None:
        if not self._fitted():
            raise InvalidParameterError(
                "this TunedLens is not fitted: call .fit(model, texts_or_ids) (n_steps=0 gives "
                "the identity translators, i.e. the logit lens) or TunedLens.load(path)."
            )

    def _check_model(self, anat: Any) -> None:
        info = self.model_info_
        got = {"n_layers": anat.n_layers, "d_model": anat.d_model, "vocab_size": anat.vocab_size}
        bad = {k: (info[k], v) for k, v in got.items() if info.get(k) != v}
        if bad:
            raise InvalidInputError(
                "this tuned lens was trained on another model: "
                + ", ".join(f"{k} {a} (lens) vs {b} (model)" for k, (a, b) in bad.items())
                + f". It was fitted on {info.get('model_class')}; fit a lens for this model."
            )

    # ---------------------------------------------------------------- activations -----
    def _cache(
        self, model: Any, anat: Any, data: Any, tokenizer: Any, rng: np.random.Generator
    ) -> Any:
        """Residual streams (n_layers + 1, N, d) at the real token positions of ``data``."""
        torch = require_torch()
        rows = _sequences(data, tokenizer, check_int("max_length", self.max_length, minimum=1))
        names, _ = _stack_names(anat, "resid_post")
        points = [anat.point(n) for n in names]
        device = hooks.model_device(model)
        chunks: list[Any] = []
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start : start + self.batch_size]
            width = max(len(r) for r in batch)
            ids = torch.zeros(len(batch), width, dtype=torch.long)
            mask = torch.zeros(len(batch), width, dtype=torch.long)
            for j, r in enumerate(batch):
                ids[j, : len(r)] = torch.as_tensor(r)
                mask[j, : len(r)] = 1
            kwargs = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
            if all(len(r) == width for r in batch):
                kwargs.pop("attention_mask")
            logits, store = _capture(model, kwargs, points)
            if start == 0 and not _reproduces(_readout(anat, store[names[-1]]), logits):
                raise UnsupportedModelError(
                    f"{type(model).__name__}'s logits are not its final norm and unembedding "
                    "applied to its last block's output (an encoder's prediction head, a logit "
                    "scale), so translators cannot be trained through them. The logit lens "
                    "(wb.logit_lens) reads such models by re-running their head."
                )
            keep = mask.to(device).bool()
            chunks.append(torch.stack([store[n][keep] for n in names]))
        acts = torch.cat(chunks, dim=1)
        n_tok = acts.shape[1]
        if n_tok > self.max_tokens:
            pick = np.sort(rng.choice(n_tok, size=self.max_tokens, replace=False))
            acts = acts[:, torch.as_tensor(pick, device=acts.device)]
        return acts

    # ---------------------------------------------------------------- translators -----
    def _translate(self, h: Any, layer: int, weight: Any = None, bias: Any = None) -> Any:
        """``h + h @ A.T + b`` in float32 (or wider), returned in ``h``'s dtype."""
        torch = require_torch()
        w = self.weight_[layer] if weight is None else weight
        b = self.bias_[layer] if bias is None else bias
        hw = h if h.dtype in (torch.float32, torch.float64) else h.float()
        out = hw + torch.nn.functional.linear(
            hw, w.to(hw.device, hw.dtype), b.to(hw.device, hw.dtype)
        )
        return out.to(h.dtype)

    def fit(
        self, model: Any, data: Any, *, tokenizer: Any = None, anatomy: Any = None
    ) -> TunedLens:
        """Train one translator per layer on activations of ``model`` over ``data``.

        Parameters
        ----------
        model : torch.nn.Module
            A language model with a final norm and unembedding (frozen: nothing in it
            changes).
        data : str, list of str, LongTensor (n, pos), list of id lists or BatchEncoding
            The training corpus (texts need ``tokenizer``).
        tokenizer : tokenizer, optional
        anatomy : Anatomy, optional

        Returns
        -------
        self
        """
        torch = require_torch("the tuned lens")
        hyper = self._hyper()
        anat = _anatomy(model, anatomy)
        if anat.unembed is None:
            anat.W_U()  # raises the anatomy's message
        rng = check_random_state(self.random_state)
        acts = self._cache(model, anat, data, tokenizer, rng)
        seed = int(rng.integers(0, 2**62))
        n, d = anat.n_layers, anat.d_model
        _, labels = _stack_names(anat, "resid_post")
        dev = acts.device
        weights = [torch.zeros(d, d, device=dev, requires_grad=True) for _ in range(n)]
        biases = [torch.zeros(d, device=dev, requires_grad=True) for _ in range(n)]
        params = [p for pair in zip(weights, biases, strict=True) for p in pair]
        lr = hyper["lr"]
        if self.optimizer == "sgd":
            opt = torch.optim.SGD(
                params,
                lr=lr,
                momentum=float(self.momentum),
                nesterov=float(self.momentum) > 0,
                weight_decay=float(self.weight_decay),
            )
        else:
            opt = torch.optim.Adam(params, lr=lr, weight_decay=float(self.weight_decay))
        gen = torch.Generator().manual_seed(seed)
        n_tok = acts.shape[1]
        history: list[float] = []
        for step in range(self.n_steps):
            for group in opt.param_groups:
                group["lr"] = lr * (1.0 - step / self.n_steps)
            idx = torch.randint(n_tok, (self.tokens_per_step,), generator=gen).to(acts.device)
            with torch.no_grad():
                final = torch.log_softmax(_readout(anat, acts[-1, idx]).float(), dim=-1)
                p_final = final.exp()
            total = 0.0
            for layer in range(n):
                with torch.enable_grad():
                    h = self._translate(acts[layer, idx], layer, weights[layer], biases[layer])
                    logq = torch.log_softmax(_readout(anat, h).float(), dim=-1)
                    loss = (p_final * (final - logq)).sum(-1).mean()
                    gw, gb = torch.autograd.grad(loss, [weights[layer], biases[layer]])
                weights[layer].grad, biases[layer].grad = gw, gb
                total += float(loss.detach())
            opt.step()
            opt.zero_grad(set_to_none=True)
            history.append(total)
        self.weight_ = torch.stack([w.detach() for w in weights]).cpu()
        self.bias_ = torch.stack([b.detach() for b in biases]).cpu()
        self.labels_ = labels[:-1]
        self.history_ = history
        self.n_tokens_ = int(n_tok)
        self.seed_ = seed
        self.model_info_ = {
            "n_layers": anat.n_layers,
            "d_model": anat.d_model,
            "vocab_size": anat.vocab_size,
            "model_class": type(model).__name__,
        }
        return self

    # ---------------------------------------------------------------- reading ---------
    def logits(
        self,
        model: Any,
        inputs: Any,
        *,
        anatomy: Any = None,
        layers: Any = None,
        target: Any = None,
        top_k: int = 5,
        tokenizer: Any = None,
    ) -> LogitLens:
        """The tuned lens on ``inputs``: a :class:`~whybox.internals.lens.LogitLens` whose
        entries (``"embed"``, ``"L0"`` .. ``"L{n-1}"``) are read through the translators.

        The last entry (the final norm's input) is not translated, so ``.logits[-1]`` is the
        model's own logits, as for the logit lens. Arguments as
        :func:`~whybox.internals.lens.logit_lens`.
        """
        torch = require_torch("the tuned lens")
        self._check_fitted()
        anat = _anatomy(model, anatomy)
        self._check_model(anat)
        kwargs, ids = _prepare_inputs(model, inputs, tokenizer, anat)
        names, labels = _stack_names(anat, "resid_post")
        chosen = _select(len(names), layers, labels)
        points = [anat.point(names[i]) for i in dict.fromkeys(chosen)]
        model_logits, store = _capture(model, kwargs, points)
        out = []
        with torch.no_grad():
            for i in chosen:
                h = store[names[i]]
                if i < len(self.labels_):
                    h = self._translate(h, i)
                out.append(_readout(anat, h))
        return LogitLens(
            torch.stack(out),
            labels=[labels[i] for i in chosen],
            names=[names[i] for i in chosen],
            input_ids=ids,
            model_logits=model_logits,
            tokenizer=tokenizer,
            target=target,
            top_k=top_k,
            method="tuned_lens",
        )

    def evaluate(self, model: Any, data: Any, *, tokenizer: Any = None, anatomy: Any = None) -> Any:
        """Mean KL(model || lens) in nats per entry on ``data``, tuned lens beside logit lens.

        Returns
        -------
        pandas.DataFrame
            Index: the entry labels; columns ``logit_lens_kl``, ``tuned_lens_kl``; one row
            per entry, the last (the model's own output) 0 for both.
        """
        import pandas as pd

        torch = require_torch("the tuned lens")
        self._check_fitted()
        anat = _anatomy(model, anatomy)
        self._check_model(anat)
        acts = self._cache(model, anat, data, tokenizer, check_random_state(self.random_state))
        _, labels = _stack_names(anat, "resid_post")
        rows = []
        with torch.no_grad():
            final = _readout(anat, acts[-1])

            def kl(h: Any) -> float:
                return float(_kl(final, _readout(anat, h)).mean())

            for i, label in enumerate(labels):
                plain = kl(acts[i])
                tuned = kl(self._translate(acts[i], i)) if i < len(self.labels_) else plain
                rows.append((label, plain, tuned))
        frame = pd.DataFrame(rows, columns=["label", "logit_lens_kl", "tuned_lens_kl"])
        return frame.set_index("label")

    # ---------------------------------------------------------------- persistence -----
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save to the folder ``path`` (created if missing): ``tuned_lens.safetensors``
        (the translators, no pickle) and ``tuned_lens.json`` (settings, model shape and the
        weights' SHA-256), each written to a temporary file and renamed."""
        self._check_fitted()
        save_file = _safetensors()[0]
        folder = Path(path)
        if folder.exists() and not folder.is_dir():
            raise InvalidParameterError(
                f"cannot save a tuned lens to {str(folder)!r}: it is a file, and a tuned lens "
                "is saved as a folder. Pass a folder path."
            )
        folder.mkdir(parents=False, exist_ok=True)
        tensors = {"weight": self.weight_.contiguous(), "bias": self.bias_.contiguous()}
        payload = save_file(tensors, metadata={"format": _FORMAT})
        _atomic_write(folder / _WEIGHTS, payload)
        config = {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "weights_sha256": hashlib.sha256(payload).hexdigest(),
            "labels": self.labels_,
            "model": self.model_info_,
            "history": self.history_,
            "n_tokens": self.n_tokens_,
            "seed": self.seed_,
            "params": {
                "n_steps": self.n_steps,
                "optimizer": self.optimizer,
                "lr": self.lr,
                "momentum": self.momentum,
                "weight_decay": self.weight_decay,
                "tokens_per_step": self.tokens_per_step,
                "max_length": self.max_length,
                "max_tokens": self.max_tokens,
                "batch_size": self.batch_size,
                "random_state": self.random_state
                if isinstance(self.random_state, int | type(None))
                else repr(self.random_state),
            },
        }
        _atomic_write(folder / _CONFIG, json.dumps(config, indent=1).encode())
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TunedLens:
        """Load a lens saved by :meth:`save` (checks the format and the weights' hash)."""
        load_bytes = _safetensors()[1]
        folder = Path(path)
        cfg_path, w_path = folder / _CONFIG, folder / _WEIGHTS
        if not cfg_path.is_file() or not w_path.is_file():
            raise InvalidInputError(
                f"{str(folder)!r} is not a saved tuned lens: expected {_CONFIG} and {_WEIGHTS} "
                "in it (written by TunedLens.save)."
            )
        try:
            config = json.loads(cfg_path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"{str(cfg_path)!r} is not valid JSON: {exc}.") from exc
        if not isinstance(config, dict) or config.get("format") != _FORMAT:
            raise InvalidInputError(
                f"{str(cfg_path)!r} is not a whybox tuned lens (format "
                f"{config.get('format') if isinstance(config, dict) else None!r})."
            )
        if config.get("format_version", 0) > _FORMAT_VERSION:
            raise InvalidInputError(
                f"{str(cfg_path)!r} was written by a newer whybox (format version "
                f"{config['format_version']} > {_FORMAT_VERSION}); upgrade whybox to read it."
            )
        payload = w_path.read_bytes()
        if hashlib.sha256(payload).hexdigest() != config.get("weights_sha256"):
            raise InvalidInputError(
                f"{str(w_path)!r} does not match its {_CONFIG} (SHA-256 differs): the folder "
                "holds files of two different saves, or the weights were changed. Save again."
            )
        tensors = load_bytes(payload)
        n, d = len(config["labels"]), config["model"]["d_model"]
        if tuple(tensors["weight"].shape) != (n, d, d) or tuple(tensors["bias"].shape) != (n, d):
            raise InvalidInputError(
                f"{str(w_path)!r} holds translators of shape {tuple(tensors['weight'].shape)}, "
                f"expected ({n}, {d}, {d})."
            )
        params = dict(config["params"])
        lens = cls(**params)
        lens.weight_ = tensors["weight"]
        lens.bias_ = tensors["bias"]
        lens.labels_ = list(config["labels"])
        lens.model_info_ = dict(config["model"])
        lens.history_ = list(config["history"])
        lens.n_tokens_ = int(config["n_tokens"])
        lens.seed_ = int(config["seed"])
        return lens


def _safetensors() -> tuple[Any, Any]:
    try:
        from safetensors.torch import load, save
    except ImportError as exc:  # pragma: no cover - safetensors ships with transformers
        raise MissingDependencyError("safetensors", "llm", "saving a tuned lens") from exc
    return save, load
