"""The ContextCite surrogate: a sparse linear model of the answer's logit-probability over
random source ablations, and its linear datamodeling score.

ContextCite (Cohen-Wang et al. 2024) explains a generated answer by

1. drawing ``m`` random ablation masks, each source kept independently with probability
   ``keep_prob`` (1/2);
2. reading, for each mask, the model's probability ``p`` of the answer given the kept
   sources and turning it into a **logit-probability** ``log(p / (1 - p))`` (with
   ``log p`` the summed token log-probabilities: ``log p - log(1 - exp(log p))``);
3. fitting a Lasso (L1-regularised least squares, ``alpha`` 0.01) of those outputs on the
   masks, the outputs divided by the answer's number of tokens before the fit and the
   weights multiplied back after, on standardised masks whose weights are then rescaled to
   the 0/1 masks;
4. reporting the weights as the sources' attributions (a weight is the change of the
   logit-probability when the source is removed, under the linear surrogate).

The **linear datamodeling score** (LDS, Park et al. 2023, used by ContextCite to evaluate
surrogates) is the Spearman rank correlation between the surrogate's predictions and the
actual outputs on held-out random masks.

Here the model is any :class:`~whybox.games.game.Game` whose value is the answer's
log-probability (:class:`~whybox.games.documents.DocumentGame`), so ContextCite runs next to
every Shapley estimator on the same game and is compared with them in one table.

References
----------
Cohen-Wang, B., Shah, H., Georgiev, K. and Madry, A. (2024). ContextCite: attributing model
generation to context. NeurIPS. arXiv:2409.00729.

Park, S. M., Georgiev, K., Ilyas, A., Leclerc, G. and Madry, A. (2023). TRAK: attributing
model behavior at scale. ICML. (The linear datamodeling score.)

Tibshirani, R. (1996). Regression shrinkage and selection via the lasso. JRSS B 58(1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import check_int
from ..errors import InvalidInputError, InvalidParameterError
from ..games.game import Game, as_value_matrix

__all__ = [
    "OUTPUTS",
    "ContextCiteFit",
    "ablation_masks",
    "context_cite",
    "fit_surrogate",
    "linear_datamodeling_score",
    "logit_probability",
]

#: How the game's value becomes the surrogate's target.
OUTPUTS = ("logit_prob", "log_prob", "raw")


def ablation_masks(
    n_sources: int, n_masks: int, rng: np.random.Generator, keep_prob: float = 0.5
) -> np.ndarray:
    """Random ablation masks: each source kept independently with probability ``keep_prob``.

    Returns
    -------
    ndarray of bool, shape (n_masks, n_sources)
    """
    check_int("n_masks", n_masks, minimum=1)
    if not 0.0 < float(keep_prob) < 1.0:
        raise InvalidParameterError(f"keep_prob must be in (0, 1), got {keep_prob!r}.")
    return rng.random((int(n_masks), int(n_sources))) < float(keep_prob)


def logit_probability(log_prob: Any) -> np.ndarray:
    """``log(p / (1 - p))`` from ``log p`` (ContextCite's sequence-level output).

    ``log p - log(1 - exp(log p))``, computed as ``-log(expm1(-log p))`` (exact near
    ``log p = 0``) and as ``log p - log1p(-exp(log p))`` for very negative ``log p``.

    Parameters
    ----------
    log_prob : array (...,), values <= 0

    Returns
    -------
    ndarray like ``log_prob``; ``+inf`` where ``log p = 0``.
    """
    lp = np.asarray(log_prob, dtype=float)
    if np.any(lp > 1e-9):
        raise InvalidInputError(
            "logit_probability needs log-probabilities (<= 0); got values above 0. Use "
            "output='raw' for values that are not log-probabilities."
        )
    lp = np.minimum(lp, 0.0)
    with np.errstate(divide="ignore", over="ignore"):
        near = -np.log(np.expm1(-lp))
        far = lp - np.log1p(-np.exp(lp))
    return np.where(lp > -30.0, near, far)


def _outputs(values: np.ndarray, output: str) -> np.ndarray:
    if output == "logit_prob":
        return logit_probability(values)
    return np.asarray(values, dtype=float)


def fit_surrogate(
    masks: np.ndarray, outputs: np.ndarray, *, alpha: float = 0.01, n_output_tokens: int = 1
) -> tuple[np.ndarray, float]:
    """ContextCite's Lasso surrogate of ``outputs`` on 0/1 ``masks``.

    The masks are standardised (mean 0, variance 1 per source; a constant source keeps
    scale 1), the outputs divided by ``n_output_tokens``, a Lasso with intercept fitted
    (scikit-learn, ``alpha``), and the weights mapped back to 0/1 masks and to the outputs'
    scale: ``w = T coef / scale``, ``b = T (intercept - mean / scale . coef)``.

    Parameters
    ----------
    masks : bool (m, n)
    outputs : float (m,)
    alpha : float
        Lasso penalty (ContextCite's default 0.01); 0 is ordinary least squares.
    n_output_tokens : int
        Tokens of the answer ``T`` (ContextCite averages per token before the fit).

    Returns
    -------
    weights : ndarray (n,)
    bias : float
    """
    from sklearn.linear_model import Lasso, LinearRegression

    X = np.asarray(masks, dtype=float)
    y = np.asarray(outputs, dtype=float).reshape(-1)
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise InvalidInputError(
            f"masks of shape {X.shape} and outputs of shape {y.shape} do not match: one output "
            "per mask."
        )
    if X.shape[0] < 2:
        raise InvalidParameterError("the surrogate needs at least two ablation masks.")
    if not np.all(np.isfinite(y)):
        raise InvalidInputError(
            "the surrogate's outputs are not all finite (a log-probability of 0 gives an "
            "infinite logit-probability); use output='log_prob'."
        )
    if not (np.isfinite(alpha) and alpha >= 0):
        raise InvalidParameterError(f"alpha must be >= 0, got {alpha!r}.")
    T = check_int("n_output_tokens", n_output_tokens, minimum=1)
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    Z = (X - mean) / scale
    if alpha == 0:
        model: Any = LinearRegression(fit_intercept=True)
    else:
        model = Lasso(alpha=float(alpha), fit_intercept=True, random_state=0)
    model.fit(Z, y / T)
    coef = np.asarray(model.coef_, dtype=float).reshape(-1)
    weights = coef / scale
    bias = float(model.intercept_) - float((mean / scale) @ coef)
    return weights * T, bias * T


def linear_datamodeling_score(
    weights: np.ndarray, bias: float, masks: np.ndarray, outputs: np.ndarray
) -> float:
    """Spearman correlation of the surrogate's predictions ``masks @ w + b`` with ``outputs``.

    Returns
    -------
    float
        NaN when the predictions or the outputs are constant.
    """
    from scipy.stats import spearmanr

    pred = np.asarray(masks, dtype=float) @ np.asarray(weights, dtype=float) + float(bias)
    y = np.asarray(outputs, dtype=float).reshape(-1)
    if np.ptp(pred) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(pred, y).statistic)


@dataclass
class ContextCiteFit:
    """What :func:`context_cite` returns.

    Attributes
    ----------
    weights : ndarray (n,)
        The attributions (in the units of ``output``).
    bias : float
    masks : bool (m, n)
        The ablation masks of the fit.
    outputs : ndarray (m,)
        The surrogate's targets on them.
    lds : float or None
        Linear datamodeling score on ``holdout`` fresh masks (None when ``holdout=0``).
    output : str
    """

    weights: np.ndarray
    bias: float
    masks: np.ndarray
    outputs: np.ndarray
    lds: float | None
    output: str

    def predict(self, masks: np.ndarray) -> np.ndarray:
        """The surrogate's output for masks: (m, n) -> (m,)."""
        return np.asarray(masks, dtype=float) @ self.weights + self.bias


def context_cite(
    game: Game,
    rng: np.random.Generator,
    *,
    budget: int = 64,
    alpha: float = 0.01,
    keep_prob: float = 0.5,
    output: str = "logit_prob",
    n_output_tokens: int = 1,
    holdout: int = 0,
    masks: np.ndarray | None = None,
) -> ContextCiteFit:
    """The ContextCite surrogate of a game whose value is a log-probability.

    Parameters
    ----------
    game : Game
        ``value`` of a coalition: the answer's log-probability (``output="logit_prob"`` or
        ``"log_prob"``) or any number (``"raw"``).
    rng : numpy Generator
    budget : int
        Ablation masks of the fit (ContextCite's ``num_ablations``, default 64).
    alpha, keep_prob, n_output_tokens
        ContextCite's ``lasso_alpha`` 0.01, ``ablation_keep_prob`` 0.5 and the answer's
        token count.
    output : {"logit_prob", "log_prob", "raw"}
    holdout : int
        Fresh masks on which the LDS is measured (extra model calls; 0: none).
    masks : bool (m, n), optional
        Use these masks instead of drawing ``budget`` of them.

    Returns
    -------
    ContextCiteFit
    """
    if output not in OUTPUTS:
        raise InvalidParameterError(f"output={output!r} is not one of {list(OUTPUTS)}.")
    n = int(game.n_players)
    if masks is None:
        budget = check_int("budget", budget, minimum=2)
        masks = ablation_masks(n, budget, rng, keep_prob)
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 2 or masks.shape[1] != n:
        raise InvalidInputError(f"masks must have shape (m, {n}), got {masks.shape}.")
    y = _outputs(as_value_matrix(game.value(masks), len(masks))[:, 0], output)
    w, b = fit_surrogate(masks, y, alpha=alpha, n_output_tokens=n_output_tokens)
    lds = None
    if check_int("holdout", holdout, minimum=0) >= 2:
        H = ablation_masks(n, holdout, rng, keep_prob)
        yh = _outputs(as_value_matrix(game.value(H), len(H))[:, 0], output)
        lds = linear_datamodeling_score(w, b, H, yh)
    return ContextCiteFit(w, b, masks, y, lds, output)
