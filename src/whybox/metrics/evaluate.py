"""``wb.evaluate``: explanation-quality metrics of one explanation, as one table.

Each metric is computed per row by :mod:`whybox.metrics` and summarised by its mean, standard
deviation (ddof=1) and number of rows with a defined value, with the direction that is better
and one plain-language sentence reading the number. Deletion and insertion are summarised by
the pooled normalised AUC (rows weighted by ``|f(x) - v(empty)|``, see
:class:`whybox.metrics.Curve`) and the correspondingly weighted standard deviation.

References
----------
See :mod:`whybox.metrics.faithfulness`, :mod:`whybox.metrics.robustness` and
:mod:`whybox.metrics.agreement` for the papers behind each metric.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._validation import check_in
from ..errors import InvalidParameterError
from ..explanation import Explanation
from ._inputs import default_image_masker, is_image_batch
from .agreement import agreement
from .faithfulness import Curve, deletion, faithfulness_correlation, insertion
from .infidelity import infidelity
from .robustness import max_sensitivity, stability

__all__ = ["DEFAULT_METRICS", "IMAGE_METRICS", "METRICS", "default_metrics", "evaluate"]

DEFAULT_METRICS = ("deletion", "insertion", "faithfulness_correlation", "infidelity")
#: the default metrics of image explanations: pixels (or the explanation's segments) are
#: removed, inserted, or perturbed with Gaussian noise (infidelity over pixels)
IMAGE_METRICS = ("deletion", "insertion", "faithfulness_correlation", "infidelity")


def default_metrics(exp: Any, X: Any = None) -> tuple[str, ...]:
    """The metrics that apply to an explanation's kind, for ``metrics=None``.

    Tabular rows: :data:`DEFAULT_METRICS`, without infidelity when no feature is numeric
    (it adds noise to numeric inputs). Images: :data:`IMAGE_METRICS`.
    """
    if is_image_batch(exp, X):
        return IMAGE_METRICS
    data = X if X is not None else getattr(exp, "data", None)
    if isinstance(data, pd.DataFrame) and not any(
        pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t) for t in data.dtypes
    ):
        return tuple(m for m in DEFAULT_METRICS if m != "infidelity")
    return DEFAULT_METRICS


@dataclass(frozen=True)
class _Spec:
    statistic: str
    higher_is_better: bool
    needs: str | None  # "explain_fn" or "other"
    fn: Callable[..., Any]


METRICS: dict[str, _Spec] = {
    "deletion": _Spec("pooled normalised AUC of the deletion curve", False, None, deletion),
    "insertion": _Spec("pooled normalised AUC of the insertion curve", True, None, insertion),
    "faithfulness_correlation": _Spec(
        "Pearson correlation (Bhatt et al. 2020)", True, None, faithfulness_correlation
    ),
    "infidelity": _Spec("mean squared error (Yeh et al. 2019)", False, None, infidelity),
    "max_sensitivity": _Spec(
        "relative max-sensitivity (Yeh et al. 2019)", False, "explain_fn", max_sensitivity
    ),
    "stability": _Spec("mean Spearman correlation across seeds", True, "explain_fn", stability),
    "agreement": _Spec("Spearman correlation with the other explanation", True, "other", agreement),
}


def _accepted(fn: Callable[..., Any]) -> set[str]:
    return {
        name for name, p in inspect.signature(fn).parameters.items() if p.kind is p.KEYWORD_ONLY
    }


def _summary(v: np.ndarray) -> tuple[float, float, int]:
    v = np.asarray(v, dtype=float)
    ok = v[np.isfinite(v)]
    if ok.size == 0:
        return float("nan"), float("nan"), 0
    std = float(ok.std(ddof=1)) if ok.size > 1 else float("nan")
    return float(ok.mean()), std, int(ok.size)


def _curve_summary(curve: Curve) -> tuple[float, float, int]:
    """Pooled normalised AUC, the weighted std of the rows' normalised AUCs, rows used."""
    w = curve.weights
    used = w > 0
    if not used.any():
        return float("nan"), float("nan"), 0
    mean = curve.pooled_normalized_auc
    a = curve.normalized_auc[used]
    ww = w[used] / w[used].sum()
    n = int(used.sum())
    var = float((ww * (a - mean) ** 2).sum()) * n / (n - 1) if n > 1 else float("nan")
    return mean, float(np.sqrt(var)) if n > 1 else float("nan"), n


def _reading(name: str, mean: float, extra: dict[str, Any]) -> str:
    if not np.isfinite(mean):
        return "Not defined for any row (the output or the attributions did not vary)."
    if name == "deletion":
        speed = (
            "quickly"
            if mean < 0.35
            else "somewhat faster than a random ranking would"
            if mean < 0.5
            else "no faster than a random ranking would"
        )
        over = (
            " Below 0: removing the top features first carries the output past its background "
            "level, because the features left pull the other way."
            if mean < 0
            else ""
        )
        return (
            f"Removing the features the explanation ranks highest first moves the output "
            f"{speed} to its background level (normalised AUC {mean:.2f}; 0.5 is what a random "
            f"ranking gives an additive model, lower is better).{over}"
        )
    if name == "insertion":
        speed = (
            "quickly"
            if mean > 0.65
            else "somewhat faster than a random ranking would"
            if mean > 0.5
            else "no faster than a random ranking would"
        )
        over = (
            " Above 1: adding the top features first carries the output past the prediction, "
            "because the features still absent pull the other way."
            if mean > 1
            else ""
        )
        return (
            f"Adding the features the explanation ranks highest first recovers the prediction "
            f"{speed} (normalised AUC {mean:.2f}; 0.5 is what a random ranking gives an "
            f"additive model, higher is better).{over}"
        )
    if name == "faithfulness_correlation":
        return (
            f"When random subsets of features are removed, the drop in output correlates at "
            f"{mean:.2f} on average with the attributions of the removed features (1 is "
            "perfectly faithful, 0 unrelated)."
        )
    if name == "infidelity":
        return (
            f"Under small random perturbations the change the attributions predict misses the "
            f"model's actual change by a mean squared error of {mean:.3g} (0 is exact, lower "
            "is better)."
        )
    if name == "max_sensitivity":
        return (
            f"Perturbing each input slightly changes its explanation by up to {mean:.0%} of the "
            "explanation's size on average (lower is more robust)."
        )
    if name == "stability":
        return (
            f"Explaining the same rows with different seeds gives attributions whose rankings "
            f"correlate at {mean:.2f} on average (1 is identical, higher is better)."
        )
    return (  # agreement
        f"The two explanations rank the features with a Spearman correlation of {mean:.2f} "
        f"and share {extra.get('feature_agreement', float('nan')):.0%} of their top-"
        f"{extra.get('k', 5)} features on average (1 and 100% is full agreement)."
    )


def evaluate(
    exp: Any,
    model: Any,
    X: Any = None,
    *,
    metrics: Sequence[str] | None = None,
    background: Any = None,
    target: Any = None,
    link: str | None = None,
    random_state: int | None = 0,
    explain_fn: Callable[..., Any] | None = None,
    other: Any = None,
    allow_nan: bool = False,
    **options: Any,
) -> pd.DataFrame:
    """Score one explanation with several quality metrics; one table row per metric.

    Parameters
    ----------
    exp : Explanation
        The explanation scored: tabular rows or images.
    model : object
        The explained model.
    X : DataFrame, array or image batch, optional
        The explained rows (default: ``exp.data``).
    metrics : sequence of str, optional
        Any of ``"deletion"``, ``"insertion"``, ``"faithfulness_correlation"``,
        ``"infidelity"``, ``"max_sensitivity"`` and ``"stability"`` (these two need
        ``explain_fn``), and ``"agreement"`` (needs ``other``). Default: the metrics that
        apply to the explanation's kind (``default_metrics(exp)``): deletion, insertion,
        faithfulness correlation and infidelity (tabular rows without a numeric feature:
        no infidelity; images: over pixels).
    background : optional
        What a removed feature becomes (see :func:`whybox.metrics.deletion`): rows, a
        baseline value, any masker (``wb.Baseline(0.0)``, ``wb.Independent``, ``wb.kmeans``,
        ``wb.ImageMasker``). Images default to every pixel removed to 0 (or the
        explanation's own segments and fill).
    target, link : optional
        The output scored; default: the one the explanation explains, read from it (the
        class explained; one target per row when each row explains its own, as
        ``meta["targets"]`` records; an explanation of every class is scored for each row's
        predicted class, ``target="predicted"``).
    random_state : int or None
        Seed of every sampled metric.
    explain_fn : callable, optional
        ``explain_fn(X, random_state=0) -> Explanation``: the method that produced ``exp``,
        for max-sensitivity (called with perturbed X) and stability (called with each seed).
    other : Explanation, optional
        A second explanation of the same rows, for ``"agreement"``.
    allow_nan : bool, default False
        Accept missing values (NaN) in X for models that handle them (XGBoost, LightGBM,
        HistGradientBoosting); without it they are refused with a message naming this option.
    **options
        Options of the metrics: a keyword that some metric accepts (``n_steps=``,
        ``n_samples=``, ``noise=``, ...) goes to every metric that accepts it; a dict under a
        metric's name (``deletion={"n_steps": 5}``) goes to that metric only.

    Returns
    -------
    DataFrame indexed by metric, with columns ``mean``, ``std``, ``n`` (rows with a defined
    value), ``higher_is_better``, ``statistic`` (what the number is) and ``reading`` (one
    sentence).

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> X, y = wb.zoo.diabetes()
    >>> model = LinearRegression().fit(X, y)
    >>> bg = X.iloc[:50]
    >>> exp = wb.explain(model, X.iloc[:5], background=bg)  # exact Shapley values
    >>> table = wb.evaluate(exp, model, background=bg)
    >>> table.index.tolist()
    ['deletion', 'insertion', 'faithfulness_correlation', 'infidelity']
    >>> round(float(table.loc["faithfulness_correlation", "mean"]), 3)
    1.0
    """
    if metrics is None:
        metrics = default_metrics(exp, X)
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    if not names:
        raise InvalidParameterError(f"metrics is empty; name at least one of {list(METRICS)}.")
    for name in names:
        check_in("metrics", name, list(METRICS))
    per_metric = {k: options.pop(k) for k in list(options) if k in METRICS}
    for k, v in per_metric.items():
        if not isinstance(v, dict):
            raise InvalidParameterError(
                f"option {k}= must be a dict of that metric's options, e.g. "
                f"{k}={{'n_samples': 20}}; got {type(v).__name__}."
            )
    accepted = {name: _accepted(METRICS[name].fn) for name in METRICS}
    unknown = [k for k in options if not any(k in accepted[m] for m in names)]
    if unknown:
        raise InvalidParameterError(
            f"option(s) {unknown} are not accepted by any of the metrics {names}. Check the "
            "spelling, or pass a metric's own options as a dict under its name."
        )
    if (
        background is None
        and is_image_batch(exp, X)
        and any(METRICS[m].needs is None for m in names)
    ):
        background = default_image_masker(exp, X)
    rows = []
    for name in names:
        spec = METRICS[name]
        common = {
            "background": background,
            "target": target,
            "link": link,
            "random_state": random_state,
            "allow_nan": allow_nan,
        }
        kw = {k: v for k, v in {**common, **options}.items() if k in accepted[name]}
        kw.update(per_metric.get(name, {}))
        extra: dict[str, Any] = {}
        if spec.needs == "explain_fn":
            if explain_fn is None:
                raise InvalidParameterError(
                    f"metric {name!r} re-runs the explanation method, so it needs "
                    "explain_fn=, e.g. explain_fn=lambda X, random_state=0: "
                    "wb.KernelShap(model, bg, random_state=random_state).explain(X)."
                )
            Xr = (exp.data if isinstance(exp, Explanation) else None) if X is None else X
            if Xr is None:
                raise InvalidParameterError(
                    f"metric {name!r} re-explains the rows, and X is None while the "
                    "explanation holds no data; pass the explained rows as X."
                )
            if name == "max_sensitivity":
                values = spec.fn(lambda Z: explain_fn(Z), Xr, **kw)
            else:
                values = spec.fn(explain_fn, Xr, **kw)["rank_correlation"].to_numpy()
        elif spec.needs == "other":
            if other is None:
                raise InvalidParameterError(
                    "metric 'agreement' compares two explanations of the same rows; pass the "
                    "second one as other=."
                )
            table = spec.fn(exp, other, **kw)
            values = table["spearman"].to_numpy()
            extra = {
                "feature_agreement": float(np.nanmean(table["feature_agreement"])),
                "k": kw.get("k", 5),
            }
        else:
            result = spec.fn(exp, model, X, **kw)
            values = result
        if isinstance(values, Curve):
            mean, std, n = _curve_summary(values)
        else:
            mean, std, n = _summary(values)
        rows.append(
            {
                "metric": name,
                "mean": mean,
                "std": std,
                "n": n,
                "higher_is_better": spec.higher_is_better,
                "statistic": spec.statistic,
                "reading": _reading(name, mean, extra),
            }
        )
    return pd.DataFrame(rows).set_index("metric")
