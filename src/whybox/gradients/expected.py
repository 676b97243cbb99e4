"""Expected Gradients / GradientSHAP, with a sample count that adapts to a completeness
tolerance.

For each example ``x``, pairs (baseline ``b`` drawn uniformly from ``baselines``,
``alpha ~ U(0, 1)``) give the Monte-Carlo estimate ``mean[(x - b) * grad f(b + alpha (x - b))]``
of ``E_b[IG(x; b)]``, whose sum estimates ``f(x) - E_b f(b)`` (Erion et al., 2021; Lundberg
and Lee's GradientSHAP). The estimate is unbiased, so its completeness gap
``f(x) - E_b f(b) - sum(values)`` is Monte-Carlo error, which shrinks as
``1 / sqrt(n_samples)``.

Adaptive, stratified sample count (the default, ``n_samples=None``)
-------------------------------------------------------------------
Most of the Monte-Carlo error of i.i.d. pairs comes from which baselines happen to be drawn
(its size is the spread of ``f`` over the baselines divided by ``sqrt(n_samples)``: 30 pairs
leave gaps of half the output scale). By default each example therefore visits every
baseline the same number of times, in a random order of its own, so the mean of
``f(baseline)`` over its pairs is exactly ``E_b f(b)``; the ``j``-th visit of a baseline sits
at ``alpha = (u_b + v_j) mod 1`` with ``u_b`` a uniform shift drawn per baseline and
``v_j`` the base-2 van der Corput sequence (0, 1/2, 1/4, 3/4, ...), so 2^k visits are one per
stratum of [0, 1) (a randomly shifted lattice: still unbiased). Visits double (1, 2, 4, ...
per baseline) while the example's completeness gap exceeds ``tolerance`` times the output
scale, while the next round fits in ``max_samples`` pairs (a background larger than
``max_samples`` rows is sampled without replacement). The output scale is the standard
deviation of the explained output over ``baselines`` (the largest of ``|f(x)|`` and
``|E_b f(b)|`` where that is 0), so an example's values depend on it alone, never on the batch
it is explained in. An example still above the tolerance is reported in a ``UserWarning``
with its gap and the parameters that reduce it; ``exp.meta["n_samples"]`` records the pairs
used per example. ``exp.std`` is the i.i.d. standard error of the mean, an upper bound under
stratification.

A fixed ``n_samples`` draws i.i.d. pairs (GradientSHAP's scheme): per example, ``n_samples``
baseline indices, then ``n_samples`` positions, from its own stream.

References
----------
Erion, G., Janizek, J., Sturmfels, P., Lundberg, S., Lee, S.-I. (2021). Improving performance
of deep learning models with axiomatic attribution priors and expected gradients. Nature
Machine Intelligence 3, 620-631.
Lundberg, S., Lee, S.-I. (2017). A unified approach to interpreting model predictions
(GradientSHAP / expected gradients). NeurIPS.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np

from whybox._validation import check_int, check_random_state
from whybox.errors import InvalidInputError, InvalidParameterError
from whybox.explanation import ROW_KEYS, Explanation

from ._base import (
    GAP_TOLERANCE,
    GradientExplainer,
    batched,
    check_batch_size,
    default_batch_rows,
    eval_semantics,
    example_generators,
    gap_meta,
    gradients,
    same_layout,
    to_numpy,
    torch_module,
)

__all__ = ["ExpectedGradients"]

#: pairs drawn per example in the first round of the adaptive mode
FIRST_ROUND = 50


def _van_der_corput(j: np.ndarray) -> np.ndarray:
    """Base-2 van der Corput points of the indices ``j``: 0, 1/2, 1/4, 3/4, 1/8, ...; the
    first 2^k of them fall one in each of 2^k equal strata of [0, 1)."""
    j = np.asarray(j, dtype=np.int64).copy()
    out = np.zeros(j.shape)
    f = 0.5
    while np.any(j):
        out += f * (j & 1)
        j >>= 1
        f /= 2
    return out


class ExpectedGradients(GradientExplainer):
    """Expected Gradients / GradientSHAP: IG averaged over a distribution of baselines.

    For each example, pairs (baseline ``b`` drawn uniformly from ``baselines``,
    ``alpha ~ U(0, 1)``) give the Monte-Carlo estimate
    ``mean[(x - b) * grad f(b + alpha (x - b))]`` of ``E_b[IG(x; b)]``, whose sum
    approximates ``f(x) - E_b f(b)``.

    Parameters
    ----------
    model : torch.nn.Module
        The network, explained in eval mode on its own device and dtype.
    baselines : tensor or array of shape ``(m, *input_shape)``
        The baseline distribution (e.g. training images).
    n_samples : int, optional
        Pairs per example. None (default): stratified and adaptive, every baseline visited
        1, 2, 4, ... times until the example's completeness gap is within ``tolerance`` of
        the output scale, at most ``max_samples`` pairs (see the module notes). An int draws
        that many i.i.d. pairs and warns when the gap exceeds ``tolerance`` of the output
        scale.
    tolerance : float, default 0.01
        Completeness gap accepted, as a fraction of the output scale (the standard deviation
        of the explained output over ``baselines``).
    max_samples : int, default 2000
        Most pairs per example in adaptive mode.
    random_state : int, optional
        Seed of the draws: each example draws from its own numpy stream, seeded by
        ``random_state`` and the example's content, so its values do not depend on the batch
        it is explained in, the batch size or the device.
    output : int or str, optional
        The prediction in what the forward returns: index in a tuple, key in a dict (a dict
        or ``ModelOutput`` defaults to ``"logits"``; a tuple needs it).
    output_names : sequence of str, optional
        Names of the model outputs (e.g. class names), usable as ``target=``.

    Raises
    ------
    UnsupportedModelError
        If ``model`` is not a ``torch.nn.Module``.
    InvalidParameterError
        For an unknown ``target`` (an index out of range, a name not in ``output_names``), or
        an unknown keyword of ``explain``.

    Notes
    -----
    ``.explain(x, target=None)`` takes inputs ``(n, *input_shape)`` and returns values of
    that shape (plus an output axis for several outputs). ``base_values`` is the mean of f
    over all of ``baselines``, so ``completeness_gap()`` measures the Monte-Carlo error;
    ``std`` holds the standard errors of the values.

    Examples
    --------
    >>> model, data = wb.zoo.digits_cnn()
    >>> x, y = data.X_test[:2], data.y_test[:2]
    >>> exp = wb.ExpectedGradients(model, data.X_train[:50]).explain(x, target=y)
    >>> exp.values.shape, exp.std.shape
    ((2, 1, 8, 8), (2, 1, 8, 8))
    >>> # values add up to f(x) - E f(baseline), up to the Monte-Carlo error
    >>> change = exp.predictions - exp.base_values
    >>> bool(np.all(np.abs(exp.completeness_gap()) < 0.02 * np.abs(change)))
    True

    References
    ----------
    Erion et al. (2021), Improving performance of deep learning models with axiomatic
    attribution priors and expected gradients. Nature Machine Intelligence.
    Lundberg, Lee (2017), A unified approach to interpreting model predictions. NeurIPS.
    """

    method = "expected_gradients"

    def __init__(
        self,
        model: Any,
        baselines: Any,
        *,
        n_samples: int | None = None,
        tolerance: float = GAP_TOLERANCE,
        max_samples: int = 2000,
        random_state: int | None = 0,
        output: Any = None,
        output_names: Any = None,
    ) -> None:
        super().__init__(model, output=output, output_names=output_names)
        self.baselines = self._inputs(baselines, name="baselines")
        self.n_samples = None if n_samples is None else check_int("n_samples", n_samples, minimum=1)
        if (
            isinstance(tolerance, bool)
            or not isinstance(tolerance, numbers.Real)
            or not np.isfinite(tolerance)
            or tolerance <= 0
        ):
            raise InvalidParameterError(
                f"tolerance must be a positive number (the completeness gap accepted, as a "
                f"fraction of the output scale), got {tolerance!r}."
            )
        self.tolerance = float(tolerance)
        self.max_samples = check_int("max_samples", max_samples, minimum=1)
        check_random_state(random_state)
        self.random_state = random_state

    def _inputs(self, x: Any, *, allow_integer: bool = False, name: str = "x") -> Any:
        from ._base import as_input_tensor, device_dtype

        device, dtype = device_dtype(self.model)
        return as_input_tensor(x, device, dtype, allow_integer=allow_integer, name=name)

    def _prepare_kwargs(self, x: Any, **kwargs: Any) -> dict[str, Any]:
        super()._prepare_kwargs(x, **kwargs)
        if self.n_samples is None:
            raise InvalidParameterError(
                "SmoothGrad / VarGrad over ExpectedGradients needs a fixed sample count: pass "
                "ExpectedGradients(model, baselines, n_samples=50)."
            )
        return {}

    def _round(
        self,
        x: Any,
        index: Any,
        batch_rows: int,
        active: np.ndarray,
        idx: np.ndarray,
        alpha: np.ndarray,
        total: Any,
        total_sq: Any,
        rows: np.ndarray,
    ) -> None:
        """Add the contributions of one round (``idx``, ``alpha`` (|active|, R)) in place."""
        torch = torch_module()
        dev = x.device
        A, R = len(active), idx.shape[1]
        act = torch.as_tensor(active, device=dev)
        # sample-major rows: row r -> sample r // A, example active[r % A]
        ex = act.repeat(R)
        ex_np = np.tile(active, R)
        b_idx = torch.as_tensor(idx.T.reshape(-1), device=dev)
        al = torch.as_tensor(alpha.T.reshape(-1), device=dev).to(x.dtype)
        for s, e in batched(A * R, batch_rows):
            xb, bb = x[ex[s:e]], self.baselines[b_idx[s:e]]
            a = al[s:e].reshape(-1, *([1] * (x.ndim - 1)))
            point = same_layout(bb + a * (xb - bb), x)
            g, _ = gradients(
                self.model, point, index[ex[s:e]], output=self.output, rows=rows[ex_np[s:e]]
            )
            contrib = g * (xb - bb)[..., None]
            r = s
            while r < e:  # contiguous runs of one sample, summed in sample order
                sample = r // A
                stop = min(e, (sample + 1) * A)
                c = contrib[r - s : stop - s]
                sel = act[r - sample * A : stop - sample * A]
                total[sel] += c
                total_sq[sel] += c * c
                r = stop

    def _attribute(
        self,
        x: Any,
        index: Any,
        batch_rows: int,
        *,
        rows: Any = None,
        gap_of: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Values (n, *shape, T) and info; ``gap_of(total, counts) -> gap ratio (n,)`` drives
        the stratified rounds (None: one round of i.i.d. pairs)."""
        torch = torch_module()
        n = x.shape[0]
        if x.shape[1:] != self.baselines.shape[1:]:
            raise InvalidInputError(
                f"inputs of shape {tuple(x.shape[1:])} per row do not match the baselines "
                f"of shape {tuple(self.baselines.shape[1:])} per row."
            )
        ids = np.arange(n) if rows is None else np.asarray(rows)
        m = self.baselines.shape[0]
        gens = example_generators(self.random_state, x)
        total = torch.zeros((n, *x.shape[1:], index.shape[1]), dtype=x.dtype, device=x.device)
        total_sq = torch.zeros_like(total)
        counts = np.zeros(n, dtype=np.int64)
        if self.n_samples is not None or gap_of is None:  # one round of i.i.d. pairs
            S = self.n_samples if self.n_samples is not None else FIRST_ROUND
            idx = np.stack([g.integers(0, m, size=S) for g in gens])
            alpha = np.stack([g.random(S) for g in gens])
            self._round(x, index, batch_rows, np.arange(n), idx, alpha, total, total_sq, ids)
            counts[:] = S
        else:  # stratified rounds: every baseline once per visit, van der Corput positions
            used = min(m, self.max_samples)
            order = np.stack([g.permutation(m)[:used] for g in gens])  # (n, used)
            shift = np.stack([g.random(used) for g in gens])  # (n, used)
            active, visits = np.arange(n), 0
            while len(active):
                new = 1 if visits == 0 else visits  # doubles the visits per baseline
                js = np.arange(visits, visits + new)
                idx = np.tile(order[active], (1, new))
                alpha = (shift[active][:, None, :] + _van_der_corput(js)[None, :, None]) % 1.0
                alpha = alpha.reshape(len(active), -1)
                self._round(x, index, batch_rows, active, idx, alpha, total, total_sq, ids)
                counts[active] += new * used
                visits += new
                ratio = gap_of(total, counts)
                keep = ratio[active] > self.tolerance
                if 2 * visits * used > self.max_samples:
                    break
                active = active[keep]
        S = torch.as_tensor(counts, device=x.device).to(x.dtype)
        S = S.reshape(-1, *([1] * (total.ndim - 1)))
        mean = total / S
        var = (total_sq / S - mean * mean).clamp_min(0)
        std = (var * S / (S - 1).clamp_min(1)).sqrt() / S.sqrt()
        return mean, {"n_evals": int(counts.max()), "std": std, "counts": counts}

    def explain(
        self, x: Any, target: Any = None, *, internal_batch_size: int | None = None, **kwargs: Any
    ) -> Explanation:
        """Expected gradients of ``x``.

        Parameters
        ----------
        x : tensor or array of shape (n, *input_shape)
        target : int, str, list, "all" or tensor / array of shape (n,)
            Explained output(s); a tensor or array gives one output per example.
        internal_batch_size : int, optional
            Path points per forward/backward pass; results do not depend on it.

        Returns
        -------
        Explanation
            ``values`` (n, *input_shape[, k]) with standard errors in ``std``;
            ``meta["n_samples"]`` the pairs drawn per example.

        Warns
        -----
        UserWarning
            When an example's completeness gap stays above ``tolerance`` of the output scale
            (at ``max_samples`` in adaptive mode, or at a fixed ``n_samples``).
        """
        self._check_keywords(kwargs, ["target", "internal_batch_size"])
        rows_arg = check_batch_size(internal_batch_size)
        xt = self._inputs(x)
        rows = rows_arg or default_batch_rows(int(np.prod(xt.shape[1:])))
        torch = torch_module()
        with eval_semantics(self.model):
            preds = self._outputs(xt, rows)
            targets = self._targets(target, preds.shape[1], xt.shape[0], xt.device)
            bg_out = self._outputs(self.baselines, rows, of="the baselines")
            sel_pred = preds.gather(1, targets.index)  # (n, T)
            bg_sel = bg_out[:, targets.index.reshape(-1)].reshape(
                bg_out.shape[0], *targets.index.shape
            )  # (m, n, T): f over the baselines, for each row's targets
            base = bg_sel.mean(0)
            scale = ((bg_sel - base) ** 2).mean(0).sqrt()
            fallback = torch.maximum(sel_pred.abs(), base.abs())
            scale = torch.where(scale > 0, scale, fallback)
            scale = torch.where(scale > 0, scale, torch.ones_like(scale))
            feat = tuple(range(1, xt.ndim))

            def gap_ratio(total: Any, counts: np.ndarray) -> np.ndarray:
                c = torch.as_tensor(counts, device=xt.device).to(total.dtype)[:, None]
                gap = sel_pred - base - total.sum(dim=feat) / c
                return to_numpy((gap.abs() / scale).amax(dim=1))

            values, info = self._attribute(xt, targets.index, rows, gap_of=gap_ratio)
        counts = info["counts"]
        meta = gap_meta(values, sel_pred, base, targets.single)
        meta["n_samples"] = counts.tolist()
        meta[ROW_KEYS] = [*meta[ROW_KEYS], "n_samples"]
        gaps = np.abs(np.asarray(meta["completeness_gap"], dtype=float).reshape(len(counts), -1))
        self._warn_samples((gaps / to_numpy(scale)).max(axis=1), meta, to_numpy(scale))
        exp = self._explanation(
            values,
            x=xt,
            targets=targets,
            predictions=preds,
            base_values=base,
            params={
                "n_samples": self.n_samples if self.n_samples is not None else "adaptive",
                "tolerance": self.tolerance,
                "max_samples": self.max_samples if self.n_samples is None else None,
                "baseline": "distribution",
                "background_rows": int(self.baselines.shape[0]),
            },
            n_evals=info["n_evals"],
            meta=meta,
            random_state=self.random_state,
        )
        std = to_numpy(info["std"])
        exp.std = std[..., 0] if targets.single else std
        return exp

    def _warn_samples(self, ratio: np.ndarray, meta: dict[str, Any], scale: np.ndarray) -> None:
        bad = np.flatnonzero(ratio > self.tolerance)
        if not len(bad):
            return
        gaps = np.abs(np.asarray(meta["completeness_gap"], dtype=float).reshape(len(ratio), -1))
        worst = int(bad[np.argmax(ratio[bad])])
        shown = ", ".join(str(int(i)) for i in bad[:10]) + (", ..." if len(bad) > 10 else "")
        if self.n_samples is None:
            where = (
                f"after max_samples={self.max_samples} pairs per example. The Monte-Carlo "
                "error shrinks as 1/sqrt(samples): raise max_samples= (4x the samples halve "
                "the gap) or loosen tolerance="
            )
        else:
            where = (
                f"with n_samples={self.n_samples} pairs per example. Pass n_samples=None (the "
                "default) to draw until the gap is within tolerance=, or raise n_samples= "
                "(4x the samples halve the gap)"
            )
        warnings.warn(
            f"ExpectedGradients: the completeness gap f(x) - E f(baseline) - sum(values) of "
            f"{len(bad)} of {len(ratio)} example(s) (rows [{shown}]) stays above "
            f"tolerance={self.tolerance:g} of the output scale: up to "
            f"{float(gaps[worst].max()):.3g} (row {worst}) on a scale of "
            f"{float(scale[worst].max()):.3g} (the std of the output over the baselines), "
            f"{where}. exp.completeness_gap() and exp.std give the errors per row.",
            UserWarning,
            stacklevel=3,
        )
