"""Steering vectors: add a direction to a model's activations while it runs.

A :class:`SteeringVector` is a direction in the activation space of one hook point per layer
(by default the residual stream after a block, ``blocks.{layer}.resid_post``). It is built

- from contrastive pairs: the mean activation over ``positive`` prompts minus the mean over
  ``negative`` ones, at the last token or averaged over tokens (:meth:`SteeringVector.from_pairs`;
  contrastive activation addition, Rimsky et al. 2024; the mean difference of ActAdd, Turner
  et al. 2023), or
- from any tensor (a probe's ``direction_``, a difference of two cached activations).

Applied as a context manager (:meth:`SteeringVector.apply`), it adds ``coef * vector`` to the
hook point's output at the chosen token positions; every hook is removed on exit, also when
the forward pass raises. :meth:`~SteeringVector.generate` generates under steering, and
:meth:`~SteeringVector.effect` measures what steering does: the change in a target token's
log-probability, or in a probe's score, for each coefficient of a sweep.

Positions
---------
``positions=None`` steers every position of every forward pass inside the block, including
each token produced during generation. Otherwise positions are *absolute* indices into the
token sequence (the columns of ``input_ids``): the prompt is ``0 .. P-1`` and the ``t``-th
generated token is ``P + t``. During generation with a key/value cache each forward pass
sees only the new tokens; their absolute positions are recovered from the cache's length
(``past_key_values.get_seq_length()``), so steering ``positions=slice(3, None)`` touches
exactly the tokens a full recomputation would. Negative indices and negative slice bounds
count from the end of the *prompt* (the first forward pass of a sequence, one without a
cache): ``-1`` is the last prompt token, ``slice(-2, None)`` the last two prompt tokens and
every generated one. A slice without ``stop`` runs through all generated tokens.

References
----------
Turner, A. M., Thiergart, L., Leech, G., Udell, D., Vazquez, J. J., Mini, U. & MacDiarmid, M.
(2023). Steering language models with activation engineering (ActAdd). arXiv:2308.10248.
Rimsky, N., Gabrieli, N., Schulz, J., Tong, M., Hubinger, E. & Turner, A. M. (2024).
Steering Llama 2 via contrastive activation addition. ACL.
Zou, A. et al. (2023). Representation engineering: a top-down approach to AI transparency.
arXiv:2310.01405.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from whybox.errors import (
    InvalidInputError,
    InvalidParameterError,
    MissingDependencyError,
    UnsupportedModelError,
)
from whybox.internals._probe_support import check_layer, collect, sequences
from whybox.internals.hooks import model_device

__all__ = ["SteeringEffect", "SteeringVector"]

_FORMAT = "whybox.SteeringVector"
_VERSION = "1"
#: sites whose activation is a d_model-wide residual-stream vector
_RESIDUAL_SITES = ("resid_pre", "resid_mid", "resid_post", "attn.out", "mlp.out")


def _torch() -> Any:
    from whybox.internals.hooks import require_torch

    return require_torch("steering vectors")


def _anatomy(model: Any, anatomy: Any) -> Any:
    from whybox.internals.anatomy import Anatomy

    return Anatomy.for_model(model, anatomy)


@dataclass(frozen=True)
class SteeringEffect:
    """What steering did, per coefficient of a sweep (:meth:`SteeringVector.effect`).

    Attributes
    ----------
    coefs : ndarray (n_coefs,)
    metric : str
        ``"logprob(<token>)"`` or ``"probe"``.
    baseline : ndarray (n,)
        The metric of each input without steering.
    values : ndarray (n_coefs, n)
        The metric of each input under each coefficient.
    """

    coefs: np.ndarray
    metric: str
    baseline: np.ndarray
    values: np.ndarray

    @property
    def change(self) -> np.ndarray:
        """Mean change over inputs from the unsteered run, (n_coefs,)."""
        return (self.values - self.baseline).mean(axis=1)

    @property
    def change_sem(self) -> np.ndarray:
        """Standard error of :attr:`change` over inputs (NaN for one input), (n_coefs,)."""
        diff = self.values - self.baseline
        n = diff.shape[1]
        return diff.std(axis=1, ddof=1) / math.sqrt(n) if n > 1 else np.full(len(diff), np.nan)

    def to_frame(self) -> pd.DataFrame:
        """One row per coefficient: mean metric, mean change and its standard error."""
        return pd.DataFrame(
            {
                "coef": self.coefs,
                self.metric: self.values.mean(axis=1),
                "change": self.change,
                "change_sem": self.change_sem,
            }
        ).set_index("coef")


class SteeringVector:
    """A direction added to a model's activations at one hook point per layer.

    Parameters
    ----------
    vector : tensor or array, shape (d,) or (n_layers, d)
        One direction for every layer in ``layer``, or one row per layer.
    layer : int, sequence of int, or None
        The block(s) to steer. ``None`` with a ``site`` that is a full hook name outside the
        blocks (``"embed"``) or a module path.
    site : str, default "resid_post"
        The hook name inside the block (``"resid_pre"``, ``"resid_mid"``, ``"resid_post"``,
        ``"attn.out"``, ``"mlp.out"`` ...); with ``layer=None``, a full hook name.
    meta : dict, optional
        Free-form description kept with the vector (saved with it).

    Attributes
    ----------
    vector : torch.Tensor (n_layers, d), float32
        One direction per steered layer.
    layers : tuple of int
        The steered blocks (empty with ``layer=None``).
    site : str
        The hook name inside each block.

    Raises
    ------
    InvalidParameterError
        A vector that is not 1-d or 2-d, or whose rows do not match ``layer``; from
        ``apply`` / ``generate``: a layer out of the model's range or a width that is not the
        hook's (``vec.width`` is ``d``).

    Examples
    --------
    >>> import torch
    >>> model, tok = wb.zoo.tiny_lm()
    >>> vec = wb.SteeringVector.from_pairs(model, ["The for statement", "A for loop"],
    ...                                    ["The while statement", "A while loop"],
    ...                                    layer=2, tokenizer=tok)     # mean difference
    >>> vec.layers, vec.width
    ((2,), 128)
    >>> ids = tok("The statement is used to", return_tensors="pt").input_ids
    >>> with vec.apply(model, coef=4.0):                 # steered inside the block only
    ...     steered = model(ids).logits
    >>> torch.equal(steered, model(ids).logits)
    False

    References
    ----------
    Rimsky, N. et al. (2024). Steering Llama 2 via Contrastive Activation Addition. ACL.
    Turner, A. et al. (2023). Activation Addition: Steering Language Models Without
    Optimization. arXiv:2308.10248.
    """

    def __init__(
        self,
        vector: Any,
        *,
        layer: int | Sequence[int] | None = None,
        site: str = "resid_post",
        meta: dict[str, Any] | None = None,
    ) -> None:
        torch = _torch()
        if not isinstance(site, str) or not site:
            raise InvalidParameterError(
                f"site must be a hook name such as 'resid_post', got {site!r}."
            )
        if layer is None:
            layers: tuple[int, ...] = ()
        elif isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
            layers = (int(layer),)
        elif isinstance(layer, Sequence) and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in layer
        ):
            layers = tuple(int(v) for v in layer)
        else:
            raise InvalidParameterError(
                f"layer must be an int, a sequence of ints or None, got {layer!r}."
            )
        if len(set(layers)) != len(layers):
            raise InvalidParameterError(f"layer lists a block twice: {list(layers)}.")
        if isinstance(vector, torch.Tensor):
            v = vector.detach().to("cpu", torch.float32)
        else:
            v = torch.as_tensor(np.asarray(vector, dtype=np.float32))
        rows = max(len(layers), 1)
        if v.ndim == 1:
            v = v.expand(rows, -1)
        if v.ndim != 2 or v.shape[0] != rows or v.shape[1] == 0:
            raise InvalidParameterError(
                f"the steering vector must have shape (d,) or ({rows}, d) for "
                f"{rows} layer(s), got shape {tuple(v.shape)}."
            )
        if not torch.isfinite(v).all():
            raise InvalidParameterError(
                "the steering vector holds NaN or infinite values; pass a finite vector."
            )
        self.vector = v.clone()
        self.layers = layers
        self.site = site
        self.meta = dict(meta or {})

    # ------------------------------------------------------------------ basics
    @property
    def width(self) -> int:
        """The vector's width ``d``."""
        return int(self.vector.shape[1])

    @property
    def layer(self) -> int | tuple[int, ...] | None:
        """The single steered layer, or the tuple of them (None for a site outside blocks)."""
        if not self.layers:
            return None
        return self.layers[0] if len(self.layers) == 1 else self.layers

    def __repr__(self) -> str:
        norms = ", ".join(f"{float(n):.3g}" for n in self.vector.norm(dim=1))
        where = self.site if not self.layers else f"blocks.{list(self.layers)}.{self.site}"
        return f"SteeringVector({where}, width={self.width}, norm=[{norms}])"

    def __neg__(self) -> SteeringVector:
        return SteeringVector(-self.vector, layer=self._layer_arg(), site=self.site, meta=self.meta)

    def __mul__(self, scale: float) -> SteeringVector:
        return SteeringVector(
            self.vector * float(scale), layer=self._layer_arg(), site=self.site, meta=self.meta
        )

    __rmul__ = __mul__

    def _layer_arg(self) -> Any:
        return list(self.layers) if self.layers else None

    def points(self, model: Any, anatomy: Any = None) -> list[Any]:
        """The hook points this vector steers in ``model``, one per layer.

        Raises
        ------
        InvalidParameterError
            A layer out of the model's range, or a width that is not the hook's.
        """
        anat = _anatomy(model, anatomy)
        if not self.layers:
            names = [self.site]
        else:
            names = [
                f"blocks.{check_layer(layer, anat.n_layers)}.{self.site}" for layer in self.layers
            ]
        points = [anat.point(n) for n in names]
        residual = self.site in _RESIDUAL_SITES if self.layers else self.site == "embed"
        if residual and self.width != anat.d_model:
            raise InvalidParameterError(_width_message(self.width, anat.d_model, names[0]))
        return points

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pairs(
        cls,
        model: Any,
        positive: Any,
        negative: Any,
        *,
        layer: int | Sequence[int],
        site: str = "resid_post",
        position: int | str = -1,
        tokenizer: Any = None,
        anatomy: Any = None,
        batch_size: int = 32,
    ) -> SteeringVector:
        """Mean difference of activations over contrastive pairs (CAA; Rimsky et al. 2024).

        ``vector[l] = mean_i act_l(positive_i) - mean_i act_l(negative_i)`` at
        ``blocks.{l}.{site}``, reading each prompt's activation at ``position``.

        Parameters
        ----------
        model : torch.nn.Module
        positive, negative : list of str, tensor of token ids (n, pos), list of token-id
            lists, or a BatchEncoding
            The same number of prompts on each side (pairs), e.g. the same question ending in
            the behaviour's answer letter and in the opposite one.
        layer : int or sequence of int
        site : str, default "resid_post"
        position : int or "mean", default -1
            The token whose activation is used (``-1``: the last one, as in CAA), or the mean
            over each prompt's tokens.
        tokenizer : tokenizer, optional
            Needed when the prompts are texts.
        anatomy : Anatomy, optional
        batch_size : int, default 32
            Prompts of equal length run together, unpadded.

        Returns
        -------
        SteeringVector
            With ``meta`` recording the number of pairs and the position.
        """
        anat = _anatomy(model, anatomy)
        if position == "all":
            raise InvalidParameterError(
                "position='all' does not define one activation per prompt; use an int (-1, "
                "the last token) or 'mean'."
            )
        layers = [layer] if isinstance(layer, (int, np.integer)) else list(layer)
        layers = [check_layer(v, anat.n_layers) for v in layers]  # -1: the last block
        points = cls(np.zeros(anat.d_model), layer=layers, site=site).points(model, anat)
        pos = sequences(positive, tokenizer, what="positive")
        neg = sequences(negative, tokenizer, what="negative")
        if len(pos) != len(neg):
            raise InvalidInputError(
                f"from_pairs needs as many positive as negative prompts (contrastive pairs), "
                f"got {len(pos)} positive and {len(neg)} negative."
            )
        kw = dict(batch_size=batch_size, vocab_size=anat.vocab_size)
        a_pos = collect(model, pos, points, position, **kw)
        a_neg = collect(model, neg, points, position, **kw)
        torch = _torch()
        rows = [a_pos[p.name].mean(dim=0) - a_neg[p.name].mean(dim=0) for p in points]
        vector = torch.stack(rows)
        meta = {"method": "mean_difference", "n_pairs": len(pos), "position": position}
        return cls(vector, layer=layers, site=site, meta=meta)

    # ------------------------------------------------------------------ steering
    @contextmanager
    def apply(
        self,
        model: Any,
        coef: float = 1.0,
        *,
        positions: int | Sequence[int] | slice | None = None,
        anatomy: Any = None,
    ) -> Iterator[SteeringVector]:
        """Add ``coef * vector`` to the steered activations while the block runs.

        Parameters
        ----------
        model : torch.nn.Module
        coef : float, default 1.0
            The multiple of the vector added (``0`` leaves outputs bit-for-bit unchanged;
            negative steers the other way).
        positions : None, int, sequence of int or slice
            Which token positions are steered; see the module's *Positions* section (absolute
            positions, negative ones counted from the end of the prompt, generated tokens
            included by ``None`` and open-ended slices).
        anatomy : Anatomy, optional

        Yields
        ------
        SteeringVector
            This vector. Every hook is removed on exit, also after an exception.
        """
        from whybox.internals import hooks

        torch = _torch()
        coef = _check_coef(coef)
        select = _position_selector(positions)
        points = self.points(model, anatomy)
        state = {"offset": 0, "prompt": None}

        def track(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            ids = kwargs.get("input_ids", args[0] if args else None)
            if ids is None:
                ids = kwargs.get("inputs_embeds")
            length = int(ids.shape[1]) if getattr(ids, "ndim", 0) >= 2 else None
            past = kwargs.get("past_key_values")
            offset = 0
            if past is not None and hasattr(past, "get_seq_length"):
                offset = int(past.get_seq_length())
            state["offset"] = offset
            if offset == 0:
                state["prompt"] = length

        def adder(row: Any, name: str) -> Any:
            def fn(t: Any) -> Any:
                if t.shape[-1] != row.shape[0]:
                    raise InvalidParameterError(
                        _width_message(row.shape[0], int(t.shape[-1]), name, "its last axis")
                    )
                if t.ndim < 2:
                    raise InvalidParameterError(
                        f"{name!r} gives a tensor of shape {tuple(t.shape)}; steering needs "
                        "(batch, pos, d) activations."
                    )
                n_pos = t.shape[1]
                prompt = state["prompt"] if state["prompt"] is not None else n_pos
                absolute = torch.arange(n_pos, device=t.device) + state["offset"]
                mask = select(absolute, prompt)
                add = (coef * row).to(device=t.device, dtype=t.dtype)
                if mask is None:
                    return t + add
                # unselected positions keep their values bit for bit
                return torch.where(mask.reshape(1, n_pos, *([1] * (t.ndim - 2))), t + add, t)

            return fn

        pairs = [(p, adder(self.vector[i], p.name)) for i, p in enumerate(points)]
        handle = model.register_forward_pre_hook(track, with_kwargs=True)
        with hooks.registered([handle]), hooks.on_points(model, pairs):
            yield self

    def generate(
        self,
        model: Any,
        tokenizer: Any,
        prompt: Any,
        *,
        coef: float = 1.0,
        max_new_tokens: int = 20,
        positions: int | Sequence[int] | slice | None = None,
        anatomy: Any = None,
        **gen_kwargs: Any,
    ) -> Any:
        """Generate under steering (greedy unless ``gen_kwargs`` say otherwise).

        Parameters
        ----------
        model : a ``transformers`` model with ``generate``
        tokenizer : tokenizer or None
            Encodes a text prompt and decodes the result; None with token-id prompts.
        prompt : str, list of str, or a tensor of token ids (pos,) / (1, pos)
            A list of prompts is generated one at a time (no padding).
        coef, positions : as :meth:`apply` (positions of the generated tokens are ``P + t``).
        max_new_tokens : int, default 20
        **gen_kwargs
            Passed to ``model.generate`` (``do_sample=True, temperature=...`` for sampling:
            seed torch yourself for reproducible samples).

        Returns
        -------
        str or list of str
            The decoded prompt and continuation (as TransformerLens' ``generate``); token ids
            (a LongTensor (1, pos + new)) when ``tokenizer`` is None.
        """
        torch = _torch()
        if isinstance(prompt, (list, tuple)) and prompt and isinstance(prompt[0], str):
            return [
                self.generate(
                    model,
                    tokenizer,
                    p,
                    coef=coef,
                    max_new_tokens=max_new_tokens,
                    positions=positions,
                    anatomy=anatomy,
                    **gen_kwargs,
                )
                for p in prompt
            ]
        if not hasattr(model, "generate"):
            raise InvalidParameterError(
                f"{type(model).__name__} has no generate(): steer a causal language model "
                "(AutoModelForCausalLM) to generate, or use apply() around your own loop."
            )
        if isinstance(prompt, str):
            if tokenizer is None:
                raise InvalidParameterError(
                    "the prompt is text, so a tokenizer is needed: pass the model's tokenizer."
                )
            ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        else:
            ids = torch.as_tensor(prompt).long()
            ids = ids.unsqueeze(0) if ids.ndim == 1 else ids
        from whybox.internals.hooks import as_model_inputs

        anat = _anatomy(model, anatomy)
        ids = as_model_inputs(model, ids.to(model_device(model)), vocab_size=anat.vocab_size)[
            "input_ids"
        ]
        kwargs = {"do_sample": False, "max_new_tokens": int(max_new_tokens)}
        kwargs.update(gen_kwargs)
        if "pad_token_id" not in kwargs:
            pad = getattr(tokenizer, "pad_token_id", None)
            if pad is None:
                pad = getattr(tokenizer, "eos_token_id", None)
            if pad is None:
                pad = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
            kwargs["pad_token_id"] = pad if pad is not None else 0
        kwargs.setdefault("attention_mask", torch.ones_like(ids))
        with self.apply(model, coef, positions=positions, anatomy=anat), torch.no_grad():
            out = model.generate(ids, **kwargs)
        if tokenizer is None:
            return out
        return tokenizer.decode(out[0], skip_special_tokens=True)

    def effect(
        self,
        model: Any,
        inputs: Any,
        *,
        target_token: int | str | None = None,
        probe: Any = None,
        coefs: Sequence[float] = (0.0, 1.0, 2.0, 4.0, 8.0),
        positions: int | Sequence[int] | slice | None = None,
        tokenizer: Any = None,
        probe_site: str | None = None,
        probe_position: int | str | None = None,
        anatomy: Any = None,
        batch_size: int = 32,
    ) -> SteeringEffect:
        """The measured effect of steering over a sweep of coefficients.

        One of:

        - ``target_token``: the log-probability of that token as the next token after each
          input (at its last position), under steering, minus without;
        - ``probe``: a fitted probe (``decision_function`` of a binary :class:`Probe`, or
          ``predict`` of a :class:`RegressionProbe`) read at ``probe_site`` (default: the
          probe's ``hook_name_``, set by :func:`~whybox.internals.probing.probe_layers`) and
          ``probe_position`` (default the probe's ``position_``, else -1). A probe reading a
          layer before the steered one sees no change.

        Parameters
        ----------
        model : torch.nn.Module
        inputs : list of str, token ids or a BatchEncoding (see :meth:`from_pairs`)
        target_token : int or str, optional
            A token id, or a text that the tokenizer encodes as exactly one token.
        probe : fitted probe, optional
        coefs : sequence of float, default (0, 1, 2, 4, 8)
        positions : as :meth:`apply`
        tokenizer, probe_site, probe_position, anatomy, batch_size : see above

        Returns
        -------
        SteeringEffect
            ``values`` (n_coefs, n inputs), ``baseline`` (n,), ``change`` per coefficient and
            ``to_frame()``.
        """
        torch = _torch()
        if (target_token is None) == (probe is None):
            raise InvalidParameterError(
                "effect() measures either a target token's log-probability (target_token=) or "
                "a probe's score (probe=): pass exactly one of them."
            )
        anat = _anatomy(model, anatomy)
        self.points(model, anat)  # layer range and width, before any forward pass
        seqs = sequences(inputs, tokenizer)
        coefs_arr = np.asarray([_check_coef(c) for c in coefs], dtype=float)
        if coefs_arr.size == 0:
            raise InvalidParameterError("coefs is empty: pass the coefficients to sweep.")
        kw = dict(batch_size=batch_size, vocab_size=anat.vocab_size)
        if target_token is not None:
            token = _token_id(target_token, tokenizer, anat.vocab_size)
            metric = f"logprob({target_token!r})"

            def measure(ctx: Any) -> np.ndarray:
                logits = collect(model, seqs, [], -1, context=ctx, logits=True, **kw)["logits"]
                if logits.shape[-1] != anat.vocab_size:
                    raise UnsupportedModelError(
                        f"the model outputs {logits.shape[-1]} values per token, not logits over "
                        f"its {anat.vocab_size}-token vocabulary (no language-model head). "
                        "Measure the effect with probe= instead, or load the model with its "
                        "head (AutoModelForCausalLM / AutoModelForMaskedLM)."
                    )
                return torch.log_softmax(logits.double(), dim=-1)[:, token].numpy()

        else:
            site = probe_site if probe_site is not None else getattr(probe, "hook_name_", None)
            if site is None:
                raise InvalidParameterError(
                    "the probe does not say where it reads (no hook_name_): pass probe_site= "
                    "the hook name it was fitted on, e.g. 'blocks.3.resid_post'."
                )
            where = probe_position
            if where is None:
                where = getattr(probe, "position_", -1)
            if where == "all":
                where = -1
            point = anat.point(site)
            score = _probe_scorer(probe)
            metric = "probe"

            def measure(ctx: Any) -> np.ndarray:
                acts = collect(model, seqs, [point], where, context=ctx, **kw)[point.name]
                return score(acts.numpy())

        baseline = measure(None)
        values = np.stack(
            [
                measure(lambda c=c: self.apply(model, c, positions=positions, anatomy=anat))
                for c in coefs_arr
            ]
        )
        return SteeringEffect(coefs=coefs_arr, metric=metric, baseline=baseline, values=values)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the vector, its layers, site and meta to a safetensors file (no pickle)."""
        save_file, _ = _safetensors()
        path = Path(path)
        metadata = {
            "format": _FORMAT,
            "version": _VERSION,
            "layers": json.dumps(list(self.layers)),
            "site": self.site,
            "meta": json.dumps(self.meta, default=str),
        }
        save_file({"vector": self.vector.contiguous()}, str(path), metadata=metadata)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SteeringVector:
        """Read a vector written by :meth:`save`."""
        _, safe_open = _safetensors()
        path = Path(path)
        if not path.is_file():
            raise InvalidInputError(f"no steering vector file at {str(path)!r}.")
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
                vector = fh.get_tensor("vector") if "vector" in fh.keys() else None
        except Exception as exc:
            raise InvalidInputError(
                f"{str(path)!r} is not a safetensors file ({exc}). Write steering vectors with "
                "SteeringVector.save."
            ) from exc
        if meta.get("format") != _FORMAT or vector is None:
            raise InvalidInputError(
                f"{str(path)!r} is a safetensors file but not a whybox steering vector (its "
                f"metadata format is {meta.get('format')!r}). Write it with SteeringVector.save."
            )
        layers = json.loads(meta.get("layers", "[]"))
        return cls(
            vector,
            layer=layers or None,
            site=meta.get("site", "resid_post"),
            meta=json.loads(meta.get("meta", "{}")),
        )


# ------------------------------------------------------------------ helpers
def _width_message(width: int, expected: int, name: str, what: str = "d_model") -> str:
    return (
        f"the steering vector has width {width}, but {name!r} of this model has width "
        f"{expected} ({what}). Build the vector from this model (SteeringVector.from_pairs) "
        f"or pass one of {expected} values."
    )


def _check_coef(coef: Any) -> float:
    try:
        value = float(coef)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or isinstance(coef, bool):
        raise InvalidParameterError(f"coef must be a finite number, got {coef!r}.")
    return value


def _position_selector(positions: Any) -> Any:
    """A function (absolute positions tensor, prompt length) -> bool mask, or None for all."""
    if positions is None:
        return lambda absolute, prompt: None
    if isinstance(positions, slice):
        if positions.step is not None and (
            not isinstance(positions.step, int) or positions.step < 1
        ):
            raise InvalidParameterError(
                f"a positions slice needs a positive int step, got {positions.step!r}."
            )
        for bound in (positions.start, positions.stop):
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int)):
                raise InvalidParameterError(f"slice bounds must be ints, got {positions!r}.")

        def by_slice(absolute: Any, prompt: int) -> Any:
            start = positions.start or 0
            start = start + prompt if start < 0 else start
            stop = positions.stop
            step = positions.step or 1
            mask = (absolute >= start) & ((absolute - start) % step == 0)
            if stop is not None:
                mask &= absolute < (stop + prompt if stop < 0 else stop)
            return mask

        return by_slice
    items = [positions] if isinstance(positions, (int, np.integer)) else list(positions)
    if not items or any(isinstance(p, bool) or not isinstance(p, (int, np.integer)) for p in items):
        raise InvalidParameterError(
            f"positions must be None (all), an int, a non-empty list of ints or a slice, got "
            f"{positions!r}."
        )

    def by_list(absolute: Any, prompt: int) -> Any:
        mask = absolute < 0
        for p in items:
            mask |= absolute == (int(p) + prompt if p < 0 else int(p))
        return mask

    return by_list


def _token_id(token: Any, tokenizer: Any, vocab_size: int | None) -> int:
    if isinstance(token, str):
        if tokenizer is None:
            raise InvalidParameterError(
                f"target_token={token!r} is text, so a tokenizer is needed: pass tokenizer=."
            )
        ids = tokenizer(token, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise InvalidParameterError(
                f"target_token={token!r} is {len(ids)} tokens ({ids}); the effect is measured on "
                "one next token. Pass a text that is a single token, or its id."
            )
        return int(ids[0])
    if isinstance(token, bool) or not isinstance(token, (int, np.integer)):
        raise InvalidParameterError(f"target_token must be a token id or a text, got {token!r}.")
    if token < 0 or (vocab_size is not None and token >= vocab_size):
        raise InvalidParameterError(
            f"target_token={token} is outside the model's vocabulary of {vocab_size} tokens."
        )
    return int(token)


def _probe_scorer(probe: Any) -> Any:
    fn = getattr(probe, "decision_function", None) or getattr(probe, "predict", None)
    if fn is None:
        raise InvalidParameterError(
            f"probe must be a fitted probe with decision_function or predict, got "
            f"{type(probe).__name__}."
        )

    def score(acts: np.ndarray) -> np.ndarray:
        out = np.asarray(fn(acts), dtype=float)
        if out.ndim != 1:
            raise InvalidParameterError(
                f"the probe gives {out.shape[1]} scores per example (a multi-class probe); "
                "the effect needs one: use a binary Probe or a RegressionProbe."
            )
        return out

    return score


def _safetensors() -> tuple[Any, Any]:
    try:
        from safetensors import safe_open
        from safetensors.torch import save_file
    except ImportError as exc:  # pragma: no cover - installed in the test env
        raise MissingDependencyError("safetensors", "torch", "saving steering vectors") from exc
    return save_file, safe_open
