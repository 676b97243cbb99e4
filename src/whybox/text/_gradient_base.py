"""Plumbing of the gradient attributions on text (:mod:`whybox.text.gradients`).

The model kind (sequence classifier or causal LM), the attributed layer, the targets, the
explained value, forward passes with the layer's output recorded or replaced through scoped
hooks, baselines, and the assembly of the ragged Explanation.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidParameterError, UnsupportedModelError, WhyboxError
from ..explanation import Explanation
from ..internals.hooks import model_device
from .tokens import TokenizedText, text_explanation, tokenize

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
        """The attributed activation: a module path (its output) or a standard hook name of
        :class:`~whybox.internals.anatomy.Anatomy` (``"embed"``, ``"blocks.1.resid_pre"``,
        ...); sets ``self._point`` and returns the name recorded in ``params["layer"]``."""
        from ..internals import hooks
        from ..internals.anatomy import Anatomy

        if layer is None:
            self._point = Anatomy.of(self.model).point("embed")
            return self._point.path
        if not isinstance(layer, str):
            raise InvalidParameterError(
                f"layer= must be a module path or a hook name such as 'embed', got "
                f"{type(layer).__name__}."
            )
        if layer in dict(self.model.named_modules()):
            self._point = hooks.HookPoint(layer, layer)
            return layer
        try:
            anatomy = Anatomy.of(self.model)
        except WhyboxError:
            hooks.get_module(self.model, layer)  # raises naming the closest module paths
            raise
        self._point = anatomy.point(layer)  # raises naming the closest names
        return self._point.path if layer in ("embed", "hook_embed") else layer

    def _forward(self, ids: Any, replace: Any = None, capture: list | None = None) -> Any:
        """Logits of ``ids`` (m, S); the layer's output replaced by ``replace`` (m, S, *d)
        or recorded into ``capture``."""
        torch = _torch()
        from ..internals import hooks

        point = self._point

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
                    f"{sorted(labels.values())}. Pass a class index or one of these (a "
                    "sequence classifier does not generate text: for a continuation target "
                    "explain a causal LM)."
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
            unk = getattr(self.tokenizer, "unk_token_id", None)
            if unk is not None and unk in ids:
                raise InvalidParameterError(
                    f"target={t!r} (text {i}) contains text the tokenizer cannot spell (it "
                    f"becomes the unknown token {self.tokenizer.unk_token!r}); its log-"
                    "probability would be that of the unknown token. Pass a target made of "
                    "the vocabulary's tokens, or token ids."
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
        if logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()  # log-softmax and sums in float32
        if kind == "classifier":
            z = logits
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
        dev = model_device(self.model)
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
