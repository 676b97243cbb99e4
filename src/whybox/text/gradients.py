r"""Gradient attributions on the token embeddings of Hugging Face text models.

Token ids are integers, so gradients are taken with respect to the output of a layer, by
default the token embedding module that :class:`whybox.internals.anatomy.Anatomy` finds
(``layer=`` accepts any module path, whose output is used, or a standard hook name such as
``"blocks.1.resid_pre"``, whose activation may be a module's input). The activation is
replaced through scoped hooks (:func:`whybox.internals.hooks.on_points`); the model's code is
never copied. Each text runs on its own (no padding), so a text's attribution does not depend on
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
from typing import Any

import numpy as np

from ..errors import InvalidParameterError
from ..explanation import Explanation
from ._gradient_base import (
    REDUCTIONS,
    _check_batch,
    _eval_mode,
    _TextGradient,
    _torch,
)

__all__ = [
    "GRADIENT_METHODS",
    "TextInputXGradient",
    "TextIntegratedGradients",
    "TextSaliency",
    "TextSmoothGrad",
    "explain_gradients",
    "explain_input_x_gradient",
    "explain_integrated_gradients",
    "explain_saliency",
    "explain_smoothgrad",
]


_COMMON = ("target", "granularity", "max_length", "truncate", "internal_batch_size")


class TextIntegratedGradients(_TextGradient):
    """Integrated Gradients on the token embeddings of a text model.

    Parameters
    ----------
    model : torch.nn.Module
        A Hugging Face sequence classifier or causal LM (explained in eval mode).
    tokenizer : Hugging Face tokenizer
    layer : str, optional
        What is attributed: the output of the module at this path, or a standard hook name
        of :class:`~whybox.internals.anatomy.Anatomy` (``"embed"``,
        ``"blocks.1.resid_pre"``, ...); default the token embedding that Anatomy finds.
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
    _EXPLAIN_KEYS = (*_COMMON, "baseline", "steps", "method", "tolerance", "progress")
    #: adaptive mode (tolerance=) doubles the steps of a text up to this many
    MAX_STEPS = 1024

    def _path_integral(
        self, job: Any, kind: str, value: str, steps: int, rule: str, rows: int
    ) -> np.ndarray:
        """Per-position IG (S,) of one text with ``steps`` nodes of ``rule``."""
        from ..gradients.integrated import quadrature

        torch = _torch()
        alphas, weights = quadrature(rule, steps)
        diff = job.end - job.start
        acc = torch.zeros_like(job.end)
        for s in range(0, len(alphas), rows):
            a = torch.as_tensor(alphas[s : s + rows], device=diff.device, dtype=diff.dtype)
            pts = job.start[None] + a.reshape(-1, *([1] * diff.ndim)) * diff[None]
            g, _ = self._grads(job, pts, kind, value)
            for r in range(g.shape[0]):  # fixed order: independent of the batch size
                acc = acc + float(weights[s + r]) * g[r]
        attr = (acc * diff).reshape(diff.shape[0], -1).sum(-1)
        return attr.detach().cpu().double().numpy()

    def explain(
        self,
        texts: str | Sequence[str],
        target: Any = None,
        *,
        baseline: Any = None,
        steps: int = 50,
        method: str = "gausslegendre",
        tolerance: float | None = None,
        granularity: str = "token",
        max_length: int | None = None,
        truncate: bool = False,
        internal_batch_size: int | None = None,
        progress: Any = None,
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
            Nodes of the quadrature (with ``tolerance``: the first try).
        method : str, default "gausslegendre"
            A rule of :data:`whybox.gradients.integrated.RULES`.
        tolerance : float, optional
            Adaptive steps: a text whose relative completeness gap
            ``|f(x) - f(b) - sum| / |f(x) - f(b)|`` exceeds it is recomputed with twice the
            steps, up to :attr:`MAX_STEPS`; ``exp.meta["steps"]`` gives the steps per text.
        granularity : {"token", "word", "sentence"}
        max_length, truncate : see :func:`whybox.text.tokens.tokenize`
        internal_batch_size : int, optional
            Path points per forward pass (default: about 4096 tokens per pass).
        progress : callable, optional
            ``progress(done, n)`` after each text.

        Returns
        -------
        Explanation
            Ragged: ``values[i]`` (n_players_i,); ``base_values`` (n,) f(baseline);
            ``predictions`` (n,) f(text); ``meta["completeness_gap"]`` (n,).
        """
        from ..gradients.integrated import RULES

        self._check_keywords(kwargs)
        if method not in RULES:
            raise InvalidParameterError(f"method={method!r} is not one of {list(RULES)}.")
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
            raise InvalidParameterError(f"steps must be a positive int, got {steps!r}.")
        if method == "riemann_trapezoid" and steps < 2:
            raise InvalidParameterError("the trapezoid rule needs steps >= 2.")
        if tolerance is not None and (
            isinstance(tolerance, bool)
            or not isinstance(tolerance, numbers.Real)
            or not tolerance > 0
        ):
            raise InvalidParameterError(
                f"tolerance must be a positive number (the relative completeness gap to "
                f"reach), got {tolerance!r}."
            )
        torch = _torch()
        with _eval_mode(self.model):
            jobs, kind, value = self._prepare(texts, target, granularity, max_length, truncate)
            per_pos, used, desc = [], [], ""
            for k, job in enumerate(jobs):
                self._end(job, kind, value)
                desc = self._baseline(job, baseline)
                with torch.no_grad():
                    logits = self._forward(job.ids, replace=job.start[None].clone())
                    job.f_b = float(self._readout(logits, job, kind, value)[0])
                rows = self._rows_per_batch(job, internal_batch_size)
                n_steps = int(steps)
                while True:
                    p = self._path_integral(job, kind, value, n_steps, method, rows)
                    total = job.f_x - job.f_b
                    rel = abs(total - float(p.sum())) / max(abs(total), 1e-12)
                    if tolerance is None or rel <= tolerance or 2 * n_steps > self.MAX_STEPS:
                        break
                    n_steps *= 2
                per_pos.append(p)
                used.append(n_steps)
                if progress is not None:
                    progress(k + 1, len(jobs))
        meta = self._gap_meta(jobs, per_pos, steps, tolerance, used)
        return self._assemble(
            jobs,
            [p[: j.n_prompt] for p, j in zip(per_pos, jobs, strict=True)],
            kind=kind,
            value=value,
            base=[j.f_b for j in jobs],
            params={
                "baseline": desc,
                "steps": int(steps),
                "rule": method,
                "tolerance": None if tolerance is None else float(tolerance),
            },
            meta=meta,
            n_evals=int(max(used)),
        )

    def _gap_meta(
        self,
        jobs: list[Any],
        per_pos: list[np.ndarray],
        steps: int,
        tolerance: float | None,
        used: list[int],
    ) -> dict[str, Any]:
        """Per-text completeness gaps (over every position); warn when one is large."""
        from ..gradients._base import GAP_TOLERANCE
        from ..gradients._outputs import output_scale

        gap = np.asarray(
            [j.f_x - j.f_b - float(p.sum()) for j, p in zip(jobs, per_pos, strict=True)]
        )
        total = np.asarray([j.f_x - j.f_b for j in jobs])
        rel = np.abs(gap) / np.maximum(np.abs(total), 1e-12)
        scale = output_scale(np.asarray([[j.f_x] for j in jobs]))[0]
        ratio = np.abs(gap) / scale
        if tolerance is not None:
            bad = np.flatnonzero(rel > tolerance)
            if len(bad):
                warnings.warn(
                    f"TextIntegratedGradients: {len(bad)} text(s) (first: {int(bad[0])}) "
                    f"stopped at {self.MAX_STEPS} steps with a relative completeness gap up "
                    f"to {float(rel[bad].max()):.3g}, above tolerance={tolerance:g}. Loosen "
                    "tolerance= or try method='gausslegendre'; exp.meta['steps'] and "
                    "exp.meta['relative_completeness_gap'] give them per text.",
                    UserWarning,
                    stacklevel=3,
                )
        elif ratio.max() > GAP_TOLERANCE:
            worst = int(np.argmax(ratio))
            warnings.warn(
                f"TextIntegratedGradients: the completeness gap f(x) - f(baseline) - "
                f"sum(values) reaches {float(np.abs(gap).max()):.3g} (text {worst}), "
                f"{float(ratio.max()):.1%} of the output scale {float(scale):.3g}, above the "
                f"{GAP_TOLERANCE:.0%} whybox accepts silently. Raise steps= (now {steps}) or "
                "pass tolerance= (e.g. 1e-3) to double the steps of each text until its gap "
                "is that small. exp.meta['completeness_gap'] gives it per text.",
                UserWarning,
                stacklevel=3,
            )
        return {
            "completeness_gap": gap.tolist(),
            "relative_completeness_gap": rel.tolist(),
            "mean_relative_completeness_gap": float(rel.mean()),
            "steps": list(used),
            "row_keys": ["completeness_gap", "relative_completeness_gap", "steps"],
        }


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
    _EXPLAIN_KEYS = (*_COMMON, "progress")
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
        progress: Any = None,
        **kwargs: Any,
    ) -> Explanation:
        """Attributions of each text (one forward and backward pass per text).

        Parameters as :meth:`TextIntegratedGradients.explain` (no baseline, steps or
        tolerance); ``progress(done, n)`` is called after each text.

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
            for k, job in enumerate(jobs):
                self._end(job, kind, value)
                g, _ = self._grads(job, job.end[None], kind, value)
                v = self._token_values(job.end[None], g)[0]
                per_pos.append(v.detach().cpu().double().numpy()[: job.n_prompt])
                if progress is not None:
                    progress(k + 1, len(jobs))
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
        progress: Any = None,
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
            for k, job in enumerate(jobs):
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
                if progress is not None:
                    progress(k + 1, len(jobs))
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


def _registry_entry(name: str) -> Any:
    """``fn(model, texts, *, target, random_state, progress, budget, tolerance, **kwargs)``
    as :func:`whybox.api.register_text_method` calls it."""

    def fn(
        model: Any,
        texts: Any,
        *,
        target: Any = None,
        random_state: Any = None,
        progress: Any = None,
        budget: Any = None,
        tolerance: Any = None,
        **kwargs: Any,
    ) -> Explanation:
        kw = dict(kwargs)
        if name == "smoothgrad" and random_state is not None:
            kw["random_state"] = random_state
        if tolerance is not None:
            if name != "integrated_gradients":
                raise InvalidParameterError(
                    f"tolerance= (adaptive steps) applies to method='integrated_gradients' "
                    f"only; method={name!r} has no quadrature to refine."
                )
            kw["tolerance"] = tolerance
        if budget is not None:
            raise InvalidParameterError(
                f"budget= (model calls) does not apply to method={name!r}: it costs "
                + (
                    "steps"
                    if name == "integrated_gradients"
                    else "n_samples"
                    if name == "smoothgrad"
                    else "one"
                )
                + " forward and backward pass(es) per text. Pass steps= / n_samples= instead."
            )
        tokenizer = kw.pop("tokenizer", None)
        return explain_gradients(
            model, texts, tokenizer=tokenizer, method=name, target=target, progress=progress, **kw
        )

    fn.__name__ = f"explain_{name}"
    fn.__qualname__ = fn.__name__
    return fn


#: ``wb.explain`` adapters, one per method (see :func:`whybox.api.register_text_method`)
explain_integrated_gradients = _registry_entry("integrated_gradients")
explain_saliency = _registry_entry("saliency")
explain_input_x_gradient = _registry_entry("input_x_gradient")
explain_smoothgrad = _registry_entry("smoothgrad")
