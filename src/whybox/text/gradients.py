r"""Gradient attributions on the token embeddings of Hugging Face text models.

Token ids are integers, so gradients are taken with respect to the output of a layer, by
default the token embedding module that :class:`whybox.internals.anatomy.Anatomy` finds
(``layer=`` accepts any module path or standard hook name). The layer's output is replaced
through scoped hooks (:func:`whybox.internals.hooks.on_points`); the model's code is never
copied. Each text runs on its own (no padding), so a text's attribution does not depend on
the other texts or on ``internal_batch_size`` beyond float rounding.

Explained value
---------------
* Sequence classifiers (logits of shape (1, n_classes)): ``target`` is a class index or label
  (default: the predicted class); the value is its logit (``value="logit"``, the default),
  probability or log-probability.
* Causal language models (logits of shape (1, n_ids, vocab)): ``target`` is the next token
  (an id, or a string of one token; default: the model's most likely next token) or a
  continuation (a string or a list of ids): the continuation is appended to the text and the
  value is the sum of its tokens' log-probabilities (``value="logprob"``, the default, as
  Captum's ``LLMGradientAttribution``), or the sum of their logits, or its probability.
  The continuation's own embeddings are never moved and never players.

Methods (per layer position ``t``; ``e_t`` the layer output, ``b_t`` the baseline, ``g_t``
the gradient of the value, all vectors over the embedding dimension)
---------------------------------------------------------------------
* :class:`TextIntegratedGradients`: ``(e_t - b_t) . int_0^1 g_t(b + alpha (e - b)) dalpha``
  with the quadrature rules of :func:`whybox.gradients.integrated.quadrature`; the sum over
  positions completes to ``f(e) - f(b)`` (the gap is reported per text).
* :class:`TextSaliency`: a reduction of ``g_t`` over the embedding dimension:
  ``reduce="l2"`` (default; the gradient norm), ``"l1"`` (sum of ``|g|``: Captum's
  ``Saliency`` summed over the embedding) or ``"sum"`` (signed sum of ``g``: Captum's
  ``LayerGradientXActivation(multiply_by_inputs=False)`` summed).
* :class:`TextInputXGradient`: ``e_t . g_t`` (Captum's ``LayerGradientXActivation`` summed
  over the embedding dimension).
* :class:`TextSmoothGrad`: the mean of saliency or input x gradient over Gaussian-noised
  embeddings (noise on the player positions only); ``exp.std`` is its standard error.

Baselines (``baseline=``): ``"pad"`` (the pad token's embedding; default when the tokenizer
has one, else ``"zero"``), ``"mask"`` (the mask token's), ``"zero"`` or a token id. Special
tokens ([CLS], [SEP], <bos>) keep their own ids in the baseline, so they are never
interpolated and receive 0; for ``"pad"`` / ``"mask"`` / an id the baseline is the layer's
output on the text with every non-special token replaced by that id (Captum's
``LayerIntegratedGradients`` with baseline ids), for ``"zero"`` it is 0 at non-special
positions and the layer's own output elsewhere.

A player's value is the sum of its tokens' values (:class:`whybox.text.tokens.TokenizedText`
players: tokens, words or sentences).

References
----------
Sundararajan, M., Taly, A., Yan, Q. (2017). Axiomatic attribution for deep networks. ICML.
Simonyan, K., Vedaldi, A., Zisserman, A. (2014). Deep inside convolutional networks:
visualising image classification models and saliency maps. ICLR workshop.
Li, J., Chen, X., Hovy, E., Jurafsky, D. (2016). Visualizing and understanding neural models
in NLP. NAACL (gradient saliency of word embeddings).
Shrikumar, A., Greenside, P., Shcherbina, A., Kundaje, A. (2016). Not just a black box.
arXiv:1605.01713 (input x gradient).
Smilkov, D., Thorat, N., Kim, B., Viegas, F., Wattenberg, M. (2017). SmoothGrad: removing
noise by adding noise. arXiv:1706.03825.
Kokhlikyan, N. et al. (2020). Captum: a unified and generic model interpretability library
for PyTorch. arXiv:2009.07896.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidParameterError, UnsupportedModelError, WhyboxError
from ..explanation import Explanation
from .tokens import TokenizedText, text_explanation, tokenize

__all__ = [
    "GRADIENT_METHODS",
    "TextInputXGradient",
    "TextIntegratedGradients",
    "TextSaliency",
    "TextSmoothGrad",
    "explain_gradients",
]

VALUES = ("logit", "prob", "logprob")
REDUCTIONS = ("l2", "l1", "sum")
#: default bound on the tokens of one forward pass (path points x text length)
DEFAULT_TOKENS_PER_BATCH = 4096


def _torch() -> Any:
    from ..internals import hooks

    return hooks.require_torch("gradient attributions on text")


@dataclass
class _Job:
    """One text ready for gradients: ids (1, S) with the continuation appended."""

    row: TokenizedText
    ids: Any  # (1, S) long
    n_prompt: int
    cont: list[int]  # continuation ids (causal LM), empty for classifiers
    target: int  # class index (classifier) or -1
    move: Any  # bool (S,): positions whose embedding moves (non-special prompt tokens)
    end: Any = None  # (S, *d) layer output on the text
    start: Any = None  # (S, *d) baseline layer output
    f_x: float = 0.0
    f_b: float = 0.0
    name: str = ""


def _check_batch(internal_batch_size: Any) -> int:
    if (
        isinstance(internal_batch_size, bool)
        or not isinstance(internal_batch_size, numbers.Integral)
        or internal_batch_size < 1
    ):
        raise InvalidParameterError(
            f"internal_batch_size must be a positive int, got {internal_batch_size!r}."
        )
    return int(internal_batch_size)


class _TextGradient:
    """Common plumbing: model kind, layer, targets, hooked forward passes, assembly."""

    method = ""
    _EXPLAIN_KEYS: tuple[str, ...] = ()

    def __init__(
        self,
        model: Any,
        *,
        tokenizer: Any,
        layer: str | None = None,
        value: str | None = None,
    ) -> None:
        torch = _torch()
        if not isinstance(model, torch.nn.Module):
            raise UnsupportedModelError(
                f"gradients on embeddings need a torch.nn.Module (a Hugging Face model), got "
                f"{type(model).__name__}. For other models use a perturbation method such as "
                "method='kernel' or 'occlusion'."
            )
        if tokenizer is None:
            raise InvalidParameterError(
                "tokenizer= is required: pass the model's Hugging Face tokenizer."
            )
        if value is not None and value not in VALUES:
            raise InvalidParameterError(
                f"value={value!r} is not one of {list(VALUES)} (None: 'logit' for "
                "classifiers, 'logprob' for causal LMs)."
            )
        self.model, self.tokenizer, self.value = model, tokenizer, value
        self.layer = self._resolve_layer(layer)

    # -- set-up ------------------------------------------------------------------------
    def _resolve_layer(self, layer: str | None) -> str:
        from ..internals import hooks
        from ..internals.anatomy import Anatomy

        if layer is None:
            return Anatomy.of(self.model).embed_path
        if not isinstance(layer, str):
            raise InvalidParameterError(
                f"layer= must be a module path or a hook name such as 'embed', got "
                f"{type(layer).__name__}."
            )
        if layer in dict(self.model.named_modules()):
            return layer
        if layer in ("embed", "hook_embed"):
            return Anatomy.of(self.model).embed_path
        hooks.get_module(self.model, layer)  # raises naming the closest paths
        return layer

    def _device(self) -> Any:
        torch = _torch()
        for p in self.model.parameters():
            return p.device
        return torch.device("cpu")

    def _forward(self, ids: Any, replace: Any = None, capture: list | None = None) -> Any:
        """Logits of ``ids`` (m, S); the layer's output replaced by ``replace`` (m, S, *d)
        or recorded into ``capture``."""
        torch = _torch()
        from ..internals import hooks

        point = hooks.HookPoint(self.layer, self.layer)

        def fn(view: Any) -> Any:
            if not isinstance(view, torch.Tensor) or not view.is_floating_point():
                raise InvalidParameterError(
                    f"the output of layer {self.layer!r} is not one floating-point tensor; "
                    "choose the token embedding module (the default) or another layer."
                )
            if view.ndim < 2 or view.shape[:2] != ids.shape:
                raise InvalidParameterError(
                    f"the output of layer {self.layer!r} has shape {tuple(view.shape)}; "
                    f"gradients on text need one vector per token, shape {tuple(ids.shape)} "
                    "+ (d,). Pass the token embedding module (the default) or a block."
                )
            if capture is not None:
                capture.append(view)
            return replace

        mask = torch.ones_like(ids)
        with hooks.on_points(self.model, [(point, fn)]):
            out = self.model(input_ids=ids, attention_mask=mask)
        return hooks.output_logits(out)

    def _kind(self, logits: Any) -> str:
        if logits.ndim == 2:
            return "classifier"
        if logits.ndim == 3:
            from ..internals.anatomy import Anatomy

            try:
                causal = bool(Anatomy.of(self.model).is_causal)
            except WhyboxError:  # a model Anatomy cannot read: trust its class name
                causal = "CausalLM" in type(self.model).__name__
            if not causal:
                raise UnsupportedModelError(
                    f"{type(self.model).__name__} returns one logit vector per token but is "
                    "not a causal language model (it sees later tokens), so a next-token or "
                    "continuation target means nothing for it. Explain a sequence "
                    "classifier (logits (1, n_classes)) or a causal LM."
                )
            return "lm"
        raise UnsupportedModelError(
            f"{type(self.model).__name__} returns logits of shape {tuple(logits.shape)}; "
            "gradients on text need (1, n_classes) (sequence classifier) or (1, n_ids, vocab) "
            "(causal LM)."
        )

    # -- targets -----------------------------------------------------------------------
    def _per_row(self, target: Any, n: int) -> list[Any]:
        if isinstance(target, (list, tuple)) and len(target) == n and n > 1:
            return list(target)
        if isinstance(target, (list, tuple)) and len(target) == 1 and n == 1:
            return list(target)
        if hasattr(target, "tolist") and not isinstance(target, str):
            t = target.tolist()
            if isinstance(t, list) and len(t) == n:
                return t
        return [target] * n

    def _class_target(self, t: Any, logits: Any, i: int) -> tuple[int, str]:
        n_classes = logits.shape[-1]
        labels = getattr(getattr(self.model, "config", None), "id2label", None) or {}
        labels = {int(k): str(v) for k, v in dict(labels).items()}
        if t is None:
            c = int(logits[0].argmax())
        elif isinstance(t, str):
            hits = [k for k, v in labels.items() if v == t]
            if not hits:
                raise InvalidParameterError(
                    f"target={t!r} (text {i}) is not a label of the model; its labels are "
                    f"{sorted(labels.values())}. Pass a class index or one of these."
                )
            c = hits[0]
        elif isinstance(t, numbers.Integral) and not isinstance(t, bool):
            c = int(t)
            if not 0 <= c < n_classes:
                raise InvalidParameterError(
                    f"target={c} (text {i}) is out of range: the model has {n_classes} "
                    f"classes (0 to {n_classes - 1})."
                )
        else:
            raise InvalidParameterError(
                f"target for text {i} must be a class index or label, got {t!r}."
            )
        return c, labels.get(c, f"class {c}")

    def _continuation(self, t: Any, logits: Any, i: int) -> list[int]:
        vocab = logits.shape[-1]
        if t is None:
            ids = [int(logits[0, -1].argmax())]
        elif isinstance(t, str):
            ids = [int(v) for v in self.tokenizer.encode(t, add_special_tokens=False)]
            if not ids:
                raise InvalidParameterError(
                    f"target={t!r} (text {i}) tokenises to nothing; pass a non-empty string."
                )
        elif isinstance(t, numbers.Integral) and not isinstance(t, bool):
            ids = [int(t)]
        elif (
            isinstance(t, (list, tuple))
            and t
            and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in t)
        ):
            ids = [int(v) for v in t]
        else:
            raise InvalidParameterError(
                f"target for text {i} must be a next-token id, a string (the next token or a "
                f"continuation) or a list of token ids; got {t!r}."
            )
        bad = [v for v in ids if not 0 <= v < vocab]
        if bad:
            raise InvalidParameterError(
                f"target token id(s) {bad} (text {i}) are not in the model's vocabulary of "
                f"{vocab} ids."
            )
        return ids

    # -- explained value ---------------------------------------------------------------
    def _readout(self, logits: Any, job: _Job, kind: str, value: str) -> Any:
        """The explained value (m,) of a batch of logits."""
        torch = _torch()
        if kind == "classifier":
            z = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
            if value == "logit":
                return z[:, job.target]
            lp = torch.log_softmax(z, dim=-1)[:, job.target]
            return lp if value == "logprob" else lp.exp()
        L = job.n_prompt
        pos = torch.arange(L - 1, L - 1 + len(job.cont), device=logits.device)
        tok = torch.as_tensor(job.cont, device=logits.device)
        z = logits[:, pos, :]
        if value == "logit":
            return z[:, torch.arange(len(job.cont)), tok].sum(-1)
        lp = torch.log_softmax(z, dim=-1)[:, torch.arange(len(job.cont)), tok].sum(-1)
        return lp if value == "logprob" else lp.exp()

    # -- the shared driver -------------------------------------------------------------
    def _prepare(
        self, texts: Any, target: Any, granularity: str, max_length: Any, truncate: bool
    ) -> tuple[list[_Job], str, str]:
        torch = _torch()
        rows = tokenize(
            texts,
            self.tokenizer,
            granularity=granularity,
            max_length=max_length,
            truncate=truncate,
            model=self.model,
        )
        dev = self._device()
        targets = self._per_row(target, len(rows))
        jobs: list[_Job] = []
        kind = ""
        for i, (row, t) in enumerate(zip(rows, targets, strict=True)):
            ids = torch.as_tensor([row.input_ids], device=dev)
            with torch.no_grad():
                logits = self._forward(ids)
            kind = kind or self._kind(logits)
            move = torch.as_tensor(~row.special, device=dev)
            if kind == "classifier":
                c, label = self._class_target(t, logits, i)
                jobs.append(_Job(row, ids, ids.shape[1], [], c, move, name=label))
            else:
                cont = self._continuation(t, logits, i)
                full = torch.as_tensor([row.input_ids + cont], device=dev)
                move = torch.cat([move, torch.zeros(len(cont), dtype=torch.bool, device=dev)])
                text = self.tokenizer.decode(cont)
                jobs.append(_Job(row, full, len(row.input_ids), cont, -1, move, name=text))
        value = self.value or ("logit" if kind == "classifier" else "logprob")
        return jobs, kind, value

    def _end(self, job: _Job, kind: str, value: str) -> None:
        """The layer output on the text and f(x)."""
        torch = _torch()
        box: list[Any] = []
        with torch.no_grad():
            logits = self._forward(job.ids, capture=box)
            job.f_x = float(self._readout(logits, job, kind, value)[0])
        job.end = box[0][0].detach().clone()

    def _baseline(self, job: _Job, baseline: Any) -> str:
        """Fill ``job.start`` (S, *d); return the baseline's description."""
        torch = _torch()
        kind, tok_id = self._baseline_id(baseline)
        mv = job.move.reshape(-1, *([1] * (job.end.ndim - 1)))
        if kind == "zero":
            job.start = torch.where(mv, torch.zeros_like(job.end), job.end)
            return "zero"
        ids = job.ids.clone()
        ids[0, job.move] = tok_id
        box: list[Any] = []
        with torch.no_grad():
            self._forward(ids, capture=box)
        job.start = box[0][0].detach().clone()
        return kind

    def _baseline_id(self, baseline: Any) -> tuple[str, int]:
        tok = self.tokenizer
        if baseline is None:
            return ("pad", int(tok.pad_token_id)) if tok.pad_token_id is not None else ("zero", -1)
        if isinstance(baseline, str):
            if baseline in ("zero", "zeros"):
                return "zero", -1
            if baseline in ("pad", "mask"):
                tid = getattr(tok, f"{baseline}_token_id", None)
                if tid is None:
                    raise InvalidParameterError(
                        f"baseline={baseline!r} needs the tokenizer's {baseline} token, but "
                        f"{type(tok).__name__} has none. Pass baseline='zero', the other of "
                        "'pad' / 'mask', or a token id."
                    )
                return baseline, int(tid)
            raise InvalidParameterError(
                f"baseline={baseline!r} is not one of 'pad', 'mask', 'zero' or a token id."
            )
        if isinstance(baseline, numbers.Integral) and not isinstance(baseline, bool):
            return f"token({int(baseline)})", int(baseline)
        raise InvalidParameterError(
            f"baseline must be 'pad', 'mask', 'zero' or a token id, got {baseline!r}."
        )

    def _grads(self, job: _Job, points: Any, kind: str, value: str) -> tuple[Any, Any]:
        """Gradients (m, S, *d) of the value at layer outputs ``points`` (m, S, *d), and
        the values (m,)."""
        torch = _torch()
        with torch.enable_grad():
            wrt = points.detach().requires_grad_(True)
            ids = job.ids.expand(points.shape[0], -1)
            logits = self._forward(ids, replace=wrt.clone())
            f = self._readout(logits, job, kind, value)
            (g,) = torch.autograd.grad(f.sum(), wrt)
        if not bool(torch.isfinite(g).all()):
            from ..errors import ModelCallError

            raise ModelCallError(
                f"the gradients of text {job.row.text[:40]!r} contain NaN or inf; check the "
                "model (half precision overflow?)."
            )
        return g.detach(), f.detach()

    def _rows_per_batch(self, job: _Job, internal_batch_size: Any) -> int:
        if internal_batch_size is None:
            return max(1, DEFAULT_TOKENS_PER_BATCH // job.ids.shape[1])
        return _check_batch(internal_batch_size)

    def _players(self, job: _Job, per_pos: np.ndarray) -> np.ndarray:
        """Per-player values: the sum of their tokens' values."""
        return np.array([per_pos[idx].sum() for idx in job.row.players], dtype=float)

    def _describe(self, kind: str, value: str) -> str:
        if kind == "classifier":
            return f"{value} of the target class"
        return {
            "logprob": "sum of the target tokens' log-probabilities",
            "logit": "sum of the target tokens' logits",
            "prob": "probability of the target tokens",
        }[value]

    def _assemble(
        self,
        jobs: list[_Job],
        per_pos: list[np.ndarray],
        *,
        kind: str,
        value: str,
        base: list[float],
        params: dict[str, Any],
        meta: dict[str, Any],
        std: list[np.ndarray] | None = None,
        n_evals: int | None = None,
        random_state: Any = None,
    ) -> Explanation:
        values = [self._players(j, p) for j, p in zip(jobs, per_pos, strict=True)]
        meta = dict(meta)
        meta["token_values"] = [p.tolist() for p in per_pos]
        meta["targets"] = [j.name for j in jobs]
        if kind == "lm":
            meta["target_ids"] = [list(j.cont) for j in jobs]
        keys = ["token_values", "targets", *(["target_ids"] if kind == "lm" else [])]
        meta["row_keys"] = sorted({*meta.get("row_keys", []), *keys})
        return text_explanation(
            [j.row for j in jobs],
            values,
            base_values=np.asarray(base, dtype=float),
            predictions=np.asarray([j.f_x for j in jobs], dtype=float),
            output_names=[self._describe(kind, value)],
            std=std,
            method=self.method,
            params={
                "layer": self.layer,
                "value": value,
                "model_kind": "sequence_classifier" if kind == "classifier" else "causal_lm",
                "model_type": type(self.model).__name__,
                **params,
            },
            meta=meta,
            n_evals=n_evals,
            random_state=random_state,
        )

    def _check_keywords(self, kwargs: dict[str, Any]) -> None:
        if kwargs:
            allowed = ", ".join(self._EXPLAIN_KEYS)
            raise InvalidParameterError(
                f"{type(self).__name__}.explain got unknown keyword(s) {sorted(kwargs)}; it "
                f"takes {allowed}."
            )


def _eval_mode(model: Any) -> Any:
    from ..gradients._base import eval_semantics

    return eval_semantics(model)


_COMMON = ("target", "granularity", "max_length", "truncate", "internal_batch_size")


class TextIntegratedGradients(_TextGradient):
    """Integrated Gradients on the token embeddings of a text model.

    Parameters
    ----------
    model : torch.nn.Module
        A Hugging Face sequence classifier or causal LM (explained in eval mode).
    tokenizer : Hugging Face tokenizer
    layer : str, optional
        Module path (or ``"embed"``) whose output is attributed; default the token embedding.
    value : {"logit", "prob", "logprob"}, optional
        The explained value (default ``"logit"`` for classifiers, ``"logprob"`` for LMs).

    Notes
    -----
    ``exp.base_values`` are ``f(baseline)``, ``exp.predictions`` ``f(text)``;
    ``exp.meta["completeness_gap"][i] = f(x) - f(b) - sum(token values)`` (over every
    position, so a layer other than the embedding, whose special positions move, still
    completes). A gap above 1 % of the output scale warns, as
    :class:`whybox.gradients.IntegratedGradients` does: raise ``steps=``.

    References
    ----------
    Sundararajan, Taly, Yan (2017). Axiomatic attribution for deep networks. ICML.
    """

    method = "integrated_gradients"
    _EXPLAIN_KEYS = (*_COMMON, "baseline", "steps", "method")

    def explain(
        self,
        texts: str | Sequence[str],
        target: Any = None,
        *,
        baseline: Any = None,
        steps: int = 50,
        method: str = "gausslegendre",
        granularity: str = "token",
        max_length: int | None = None,
        truncate: bool = False,
        internal_batch_size: int | None = None,
        **kwargs: Any,
    ) -> Explanation:
        """Integrated Gradients of each text.

        Parameters
        ----------
        texts : str or sequence of str, length n
        target : class index / label (classifier); next-token id, string or list of ids
            (causal LM); or a list with one such entry per text. Default: the prediction.
        baseline : {"pad", "mask", "zero"} or int, optional
            Default "pad" when the tokenizer has a pad token, else "zero".
        steps : int, default 50
        method : str, default "gausslegendre"
            A rule of :data:`whybox.gradients.integrated.RULES`.
        granularity : {"token", "word", "sentence"}
        max_length, truncate : see :func:`whybox.text.tokens.tokenize`
        internal_batch_size : int, optional
            Path points per forward pass (default: about 4096 tokens per pass).

        Returns
        -------
        Explanation
            Ragged: ``values[i]`` (n_players_i,); ``base_values`` (n,) f(baseline);
            ``predictions`` (n,) f(text); ``meta["completeness_gap"]`` (n,).
        """
        from ..gradients._outputs import output_scale
        from ..gradients.integrated import RULES, quadrature

        self._check_keywords(kwargs)
        if method not in RULES:
            raise InvalidParameterError(f"method={method!r} is not one of {list(RULES)}.")
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
            raise InvalidParameterError(f"steps must be a positive int, got {steps!r}.")
        if method == "riemann_trapezoid" and steps < 2:
            raise InvalidParameterError("the trapezoid rule needs steps >= 2.")
        torch = _torch()
        alphas, weights = quadrature(method, int(steps))
        with _eval_mode(self.model):
            jobs, kind, value = self._prepare(texts, target, granularity, max_length, truncate)
            per_pos, base, gaps, desc = [], [], [], ""
            for job in jobs:
                self._end(job, kind, value)
                desc = self._baseline(job, baseline)
                with torch.no_grad():
                    logits = self._forward(job.ids, replace=job.start[None].clone())
                    job.f_b = float(self._readout(logits, job, kind, value)[0])
                diff = job.end - job.start
                acc = torch.zeros_like(job.end)
                rows = self._rows_per_batch(job, internal_batch_size)
                for s in range(0, len(alphas), rows):
                    a = torch.as_tensor(alphas[s : s + rows], device=diff.device, dtype=diff.dtype)
                    pts = job.start[None] + a.reshape(-1, *([1] * diff.ndim)) * diff[None]
                    g, _ = self._grads(job, pts, kind, value)
                    for r in range(g.shape[0]):  # fixed order: independent of the batch size
                        acc = acc + float(weights[s + r]) * g[r]
                attr = (acc * diff).reshape(diff.shape[0], -1).sum(-1)
                p = attr.detach().cpu().double().numpy()[: job.n_prompt]
                per_pos.append(p)
                base.append(job.f_b)
                gaps.append(job.f_x - job.f_b - float(p.sum()))
        gap = np.asarray(gaps)
        total = np.asarray([j.f_x - j.f_b for j in jobs])
        rel = np.abs(gap) / np.maximum(np.abs(total), 1e-12)
        scale = output_scale(np.asarray([[j.f_x] for j in jobs]))[0]
        ratio = np.abs(gap) / scale
        from ..gradients._base import GAP_TOLERANCE

        if ratio.max() > GAP_TOLERANCE:
            worst = int(np.argmax(ratio))
            warnings.warn(
                f"TextIntegratedGradients: the completeness gap f(x) - f(baseline) - "
                f"sum(values) reaches {float(np.abs(gap).max()):.3g} (text {worst}), "
                f"{float(ratio.max()):.1%} of the output scale {float(scale):.3g}, above the "
                f"{GAP_TOLERANCE:.0%} whybox accepts silently. Raise steps= (now {steps}). "
                "exp.meta['completeness_gap'] gives it per text.",
                UserWarning,
                stacklevel=2,
            )
        meta = {
            "completeness_gap": gap.tolist(),
            "relative_completeness_gap": rel.tolist(),
            "mean_relative_completeness_gap": float(rel.mean()),
            "row_keys": ["completeness_gap", "relative_completeness_gap"],
        }
        return self._assemble(
            jobs,
            per_pos,
            kind=kind,
            value=value,
            base=base,
            params={"baseline": desc, "steps": int(steps), "rule": method},
            meta=meta,
            n_evals=int(steps),
        )


class TextSaliency(_TextGradient):
    """Gradient saliency of each token: the gradient of the value w.r.t. its embedding,
    reduced over the embedding dimension.

    Parameters
    ----------
    model, tokenizer, layer, value : as :class:`TextIntegratedGradients`
    reduce : {"l2", "l1", "sum"}, default "l2"
        ``||g_t||_2`` (non-negative), ``sum |g_t|`` (Captum's ``Saliency`` with
        ``abs=True`` summed over the embedding) or the signed ``sum g_t``.

    References
    ----------
    Simonyan, Vedaldi, Zisserman (2014). Deep inside convolutional networks. ICLR workshop.
    Li, Chen, Hovy, Jurafsky (2016). Visualizing and understanding neural models in NLP.
    """

    method = "saliency"
    _EXPLAIN_KEYS = _COMMON
    _multiply = False

    def __init__(
        self,
        model: Any,
        *,
        tokenizer: Any,
        layer: str | None = None,
        value: str | None = None,
        reduce: str = "l2",
    ) -> None:
        super().__init__(model, tokenizer=tokenizer, layer=layer, value=value)
        if reduce not in REDUCTIONS:
            raise InvalidParameterError(f"reduce={reduce!r} is not one of {list(REDUCTIONS)}.")
        self.reduce = reduce

    def _token_values(self, e: Any, g: Any) -> Any:
        """Per-position values (m, S) from layer outputs ``e`` and gradients ``g`` (m, S, *d)."""
        m, S = g.shape[:2]
        if self._multiply:
            return (e * g).reshape(m, S, -1).sum(-1)
        flat = g.reshape(m, S, -1)
        if self.reduce == "l2":
            return flat.norm(dim=-1)
        if self.reduce == "l1":
            return flat.abs().sum(-1)
        return flat.sum(-1)

    def _params(self) -> dict[str, Any]:
        return {} if self._multiply else {"reduce": self.reduce}

    def explain(
        self,
        texts: str | Sequence[str],
        target: Any = None,
        *,
        granularity: str = "token",
        max_length: int | None = None,
        truncate: bool = False,
        internal_batch_size: int | None = None,
        **kwargs: Any,
    ) -> Explanation:
        """Attributions of each text (one forward and backward pass per text).

        Parameters as :meth:`TextIntegratedGradients.explain` (no baseline or steps).

        Returns
        -------
        Explanation
            Ragged ``values[i]`` (n_players_i,); base values 0; predictions f(text).
        """
        self._check_keywords(kwargs)
        if internal_batch_size is not None:
            _check_batch(internal_batch_size)
        per_pos = []
        with _eval_mode(self.model):
            jobs, kind, value = self._prepare(texts, target, granularity, max_length, truncate)
            for job in jobs:
                self._end(job, kind, value)
                g, _ = self._grads(job, job.end[None], kind, value)
                v = self._token_values(job.end[None], g)[0]
                per_pos.append(v.detach().cpu().double().numpy()[: job.n_prompt])
        return self._assemble(
            jobs,
            per_pos,
            kind=kind,
            value=value,
            base=[0.0] * len(jobs),
            params=self._params(),
            meta={},
            n_evals=1,
        )


class TextInputXGradient(TextSaliency):
    """Input x gradient on the token embeddings: ``e_t . g_t`` per token (Captum's
    ``LayerGradientXActivation`` on the embedding, summed over its dimension).

    Parameters
    ----------
    model, tokenizer, layer, value : as :class:`TextIntegratedGradients`

    References
    ----------
    Shrikumar et al. (2016). Not just a black box. arXiv:1605.01713.
    """

    method = "input_x_gradient"
    _multiply = True

    def __init__(
        self, model: Any, *, tokenizer: Any, layer: str | None = None, value: str | None = None
    ) -> None:
        super().__init__(model, tokenizer=tokenizer, layer=layer, value=value)


class TextSmoothGrad(TextSaliency):
    """SmoothGrad on the token embeddings: the mean of saliency (or input x gradient) over
    ``n_samples`` copies of the embeddings with Gaussian noise on the player positions.

    Parameters
    ----------
    model, tokenizer, layer, value : as :class:`TextIntegratedGradients`
    inner : {"saliency", "input_x_gradient"}, default "saliency"
    reduce : {"l2", "l1", "sum"}, default "l2"
        Reduction of the saliency of each sample (see :class:`TextSaliency`).
    noise : float, default 0.15
        Noise standard deviation: a fraction of the range ``max - min`` of the text's
        embedding entries at player positions (``relative=True``, as the paper) or in
        embedding units.
    n_samples : int, default 50
    random_state : int, optional
        Seed; each text draws its noise from ``whybox.parallel.row_generator(random_state,
        input_ids)`` (``standard_normal((n_samples, n_ids, *d))``), so it does not depend on
        the other texts or the batch size.
    relative : bool, default True

    Notes
    -----
    ``exp.std[i]`` is the standard error of the mean over the samples.

    References
    ----------
    Smilkov et al. (2017). SmoothGrad: removing noise by adding noise. arXiv:1706.03825.
    """

    method = "smoothgrad"

    def __init__(
        self,
        model: Any,
        *,
        tokenizer: Any,
        layer: str | None = None,
        value: str | None = None,
        inner: str = "saliency",
        reduce: str = "l2",
        noise: float = 0.15,
        n_samples: int = 50,
        random_state: int | None = 0,
        relative: bool = True,
    ) -> None:
        super().__init__(model, tokenizer=tokenizer, layer=layer, value=value, reduce=reduce)
        if inner not in ("saliency", "input_x_gradient"):
            raise InvalidParameterError(f"inner={inner!r} is not 'saliency' or 'input_x_gradient'.")
        if (
            isinstance(noise, bool)
            or not isinstance(noise, numbers.Real)
            or not np.isfinite(noise)
            or noise < 0
        ):
            raise InvalidParameterError(f"noise must be a non-negative number, got {noise!r}.")
        if (
            isinstance(n_samples, bool)
            or not isinstance(n_samples, numbers.Integral)
            or (n_samples < 1)
        ):
            raise InvalidParameterError(f"n_samples must be a positive int, got {n_samples!r}.")
        self.inner, self._multiply = inner, inner == "input_x_gradient"
        self.noise, self.n_samples = float(noise), int(n_samples)
        self.random_state, self.relative = random_state, bool(relative)

    def explain(
        self,
        texts: str | Sequence[str],
        target: Any = None,
        *,
        granularity: str = "token",
        max_length: int | None = None,
        truncate: bool = False,
        internal_batch_size: int | None = None,
        **kwargs: Any,
    ) -> Explanation:
        """Smoothed attributions of each text; parameters as :meth:`TextSaliency.explain`.

        Returns
        -------
        Explanation
            Ragged ``values[i]`` and ``std[i]`` (standard error) of shape (n_players_i,).
        """
        from ..parallel import row_generator

        torch = _torch()
        self._check_keywords(kwargs)
        per_pos, per_se = [], []
        with _eval_mode(self.model):
            jobs, kind, value = self._prepare(texts, target, granularity, max_length, truncate)
            for job in jobs:
                self._end(job, kind, value)
                e = job.end
                mv = job.move.reshape(-1, *([1] * (e.ndim - 1))).to(e.dtype)
                if self.relative:
                    sel = e[job.move]
                    sigma = self.noise * float(sel.max() - sel.min())
                else:
                    sigma = self.noise
                rng = row_generator(self.random_state, np.asarray(job.row.input_ids, float))
                eps = rng.standard_normal((self.n_samples, *e.shape))
                eps_t = torch.as_tensor(eps, device=e.device).to(e.dtype)
                noisy = e[None] + sigma * eps_t * mv[None]
                rows = self._rows_per_batch(job, internal_batch_size)
                samples = []
                for s in range(0, self.n_samples, rows):
                    pts = noisy[s : s + rows]
                    g, _ = self._grads(job, pts, kind, value)
                    samples.append(self._token_values(pts, g))
                v = torch.cat(samples).detach().cpu().double().numpy()[:, : job.n_prompt]
                per_pos.append(v.mean(axis=0))
                se = v.std(axis=0, ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0 * v[0]
                per_se.append(se)
        std = [
            np.sqrt([float((s[idx] ** 2).sum()) for idx in j.row.players])
            for j, s in zip(jobs, per_se, strict=True)
        ]
        return self._assemble(
            jobs,
            per_pos,
            kind=kind,
            value=value,
            base=[0.0] * len(jobs),
            params={
                "inner": self.inner,
                **({} if self._multiply else {"reduce": self.reduce}),
                "noise": self.noise,
                "relative_noise": self.relative,
                "n_samples": self.n_samples,
            },
            meta={},
            std=std,
            n_evals=self.n_samples,
            random_state=self.random_state,
        )


GRADIENT_METHODS: dict[str, type[_TextGradient]] = {
    "integrated_gradients": TextIntegratedGradients,
    "saliency": TextSaliency,
    "input_x_gradient": TextInputXGradient,
    "smoothgrad": TextSmoothGrad,
}


def explain_gradients(
    model: Any, texts: str | Sequence[str], *, tokenizer: Any, method: str, **kwargs: Any
) -> Explanation:
    """``wb.explain``'s entry for the gradient methods on texts.

    Parameters
    ----------
    model, texts, tokenizer
    method : {"integrated_gradients", "saliency", "input_x_gradient", "smoothgrad"}
    **kwargs
        Split between the class's constructor (``layer``, ``value``, ``reduce``, ``noise``,
        ``n_samples``, ``random_state``, ``relative``, ``inner``) and its ``explain``
        (``target``, ``baseline``, ``steps``, ``method`` as ``rule=``, ``granularity``, ...).
        ``rule=`` names IG's quadrature rule (``method=`` names the attribution method here).

    Returns
    -------
    Explanation
    """
    import inspect

    if method not in GRADIENT_METHODS:
        raise InvalidParameterError(
            f"method={method!r} is not a gradient method on texts; one of {list(GRADIENT_METHODS)}."
        )
    cls = GRADIENT_METHODS[method]
    ctor = set(inspect.signature(cls.__init__).parameters) - {"self", "model", "tokenizer"}
    kw = dict(kwargs)
    if "rule" in kw:
        if cls is not TextIntegratedGradients:
            raise InvalidParameterError("rule= (the quadrature rule) applies to IG only.")
        kw["method"] = kw.pop("rule")
    init = {k: kw.pop(k) for k in list(kw) if k in ctor}
    return cls(model, tokenizer=tokenizer, **init).explain(texts, **kw)
