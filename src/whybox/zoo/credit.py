r"""A synthetic credit-decision data set whose true model and true Shapley values are known.

:func:`credit` draws loan applicants from the generating process below and labels each with
``default`` (1 = the applicant defaults) drawn from a logistic model whose logit is known
exactly. Because the logit is a sum of univariate terms plus a single product interaction,
its exact interventional Shapley values have a closed form (:func:`credit_true_shap`), so
explainers can be checked against the truth rather than against each other.

Generating process
------------------
All draws come from one ``numpy.random.default_rng(random_state)`` generator, in this order,
independently per row (``N`` normal, ``U`` uniform, ``Beta``, ``Poisson``):

``age``
    ``round(N(42, 13))`` clipped to ``[18, 80]``; integer years (``int64``).
``income``
    annual income in USD, lognormal:
    ``exp(log(48_000) + 0.008 * (age - 42) + 0.55 * N(0, 1))`` rounded to the nearest 100, at
    least 100
    (median about 48k; older applicants earn a little more).
``months_employed``
    ``floor((age - 16) * 12 * Beta(2, 2.5))`` (``int64``): correlated with age and never more
    than ``(age - 16) * 12``.
``debt_to_income``
    ``0.8 * Beta(2, 5)`` rounded to 3 decimals; in ``[0, 0.8]``, mean about 0.23.
``late_payments``
    late payments in the last two years, ``Poisson(0.25 + 1.5 * credit_utilization)``
    (``int64``; ``credit_utilization`` is drawn first, see below).
``open_credit_lines``
    ``Poisson(2 + 0.06 * (age - 18))`` (``int64``).
``credit_utilization``
    ``Beta(1.5, 2.5)`` rounded to 3 decimals; in ``[0, 1]``.
``loan_amount``
    USD, ``base[purpose] * (income / 48_000) ** 0.4 * exp(0.45 * N(0, 1))`` rounded to the
    nearest 100 and at least 1 000, with ``base`` = car 15 000, debt_consolidation 12 000,
    education 18 000, home_improvement 20 000, small_business 35 000.
``loan_purpose``
    categorical with probabilities car 0.25, debt_consolidation 0.35, education 0.10,
    home_improvement 0.18, small_business 0.12.

The draw order is: age, income, months_employed, debt_to_income, credit_utilization,
late_payments, open_credit_lines, loan_purpose, loan_amount, and last the label
``default = int(U(0, 1) < sigmoid(f(x)))`` with ``f`` the true logit below.

True logit
----------
With ``dti = debt_to_income`` and ``util = credit_utilization``:

.. math::

    f(x) = -2.45
        - 0.9 \log(\mathrm{income} / 48000)
        + 1.2\,\mathrm{dti}
        + 0.0012\,(\mathrm{age} - 45)^2
        - 0.8\,(1 - e^{-\mathrm{months\_employed} / 36})
        + 1.8\,(1 - e^{-0.7\,\mathrm{late\_payments}})
        + 0.12 \max(0, \mathrm{open\_credit\_lines} - 5)
        + 0.8\,\mathrm{util}
        + 0.35 \log(\mathrm{loan\_amount} / 15000)
        + \mathrm{offset}[\mathrm{loan\_purpose}]
        + 4.0\,\mathrm{dti} \cdot \mathrm{util}

with ``offset`` = car 0.0, debt_consolidation 0.3, education 0.2, home_improvement -0.2,
small_business 0.6. The last term is the only interaction: ``u(dti) * w(util)`` with
``u(dti) = 4.0 * dti`` and ``w(util) = util``. There is no noise inside the logit;
``default ~ Bernoulli(sigmoid(f(x)))``. The default rate is about 27 %.

Exact interventional Shapley values
-----------------------------------
For a background set ``B`` (rows weighted uniformly), the value of a coalition ``S`` is
``v(S) = mean_{r in B} f(x_S, r_{-S})``. Each additive term ``g_j`` contributes
``g_j(x_j) - mean_r g_j(r_j)`` to feature ``j`` only. For the product term, with
``Ew = mean_r w(r_b)``, ``Eu = mean_r u(r_a)`` and ``Euw = mean_r u(r_a) w(r_b)`` (a joint
mean over the same rows):

.. math::

    \phi_a = \tfrac12\left[(u(x_a)\,E_w - E_{uw}) + (u(x_a) w(x_b) - E_u\,w(x_b))\right]

    \phi_b = \tfrac12\left[(E_u\,w(x_b) - E_{uw}) + (u(x_a) w(x_b) - u(x_a)\,E_w)\right]

so that ``sum(phi) = f(x) - mean_r f(r)`` exactly.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from whybox.errors import InvalidInputError, InvalidParameterError

__all__ = [
    "CREDIT_FEATURES",
    "LOAN_PURPOSES",
    "CreditData",
    "credit",
    "credit_true_logit",
    "credit_true_shap",
]

#: Column order of ``CreditData.X``.
CREDIT_FEATURES: tuple[str, ...] = (
    "income",
    "debt_to_income",
    "age",
    "months_employed",
    "late_payments",
    "open_credit_lines",
    "credit_utilization",
    "loan_amount",
    "loan_purpose",
)

#: Categories of ``loan_purpose``, in this order.
LOAN_PURPOSES: tuple[str, ...] = (
    "car",
    "debt_consolidation",
    "education",
    "home_improvement",
    "small_business",
)

_PURPOSE_PROBS = np.array([0.25, 0.35, 0.10, 0.18, 0.12])
_PURPOSE_BASE_AMOUNT = np.array([15_000.0, 12_000.0, 18_000.0, 20_000.0, 35_000.0])
_PURPOSE_OFFSET = np.array([0.0, 0.3, 0.2, -0.2, 0.6])

_INTERCEPT = -2.45
_INTERACTION = ("debt_to_income", "credit_utilization")

_FEATURE_DESCRIPTIONS: dict[str, str] = {
    "income": "annual income in USD",
    "debt_to_income": "monthly debt payments divided by monthly income (0 to 0.8)",
    "age": "age of the applicant in years (18 to 80)",
    "months_employed": "months with the current employer",
    "late_payments": "number of late payments in the last two years",
    "open_credit_lines": "number of open credit lines (cards, loans)",
    "credit_utilization": "share of revolving credit limits in use (0 to 1)",
    "loan_amount": "requested loan amount in USD",
    "loan_purpose": "what the loan is for (car, debt_consolidation, education, "
    "home_improvement, small_business)",
}

_DESCRIPTION = (
    "Synthetic credit-decision data: one row per loan applicant, target 'default' "
    "(1 = the applicant defaults). The true log-odds are a known sum of univariate terms "
    "(log income, debt-to-income, a U-shape in age, saturating terms in months employed and "
    "late payments, a hinge in open credit lines, credit utilization, log loan amount, a "
    "per-purpose offset) plus one interaction debt_to_income x credit_utilization. "
    "See whybox.zoo.credit's module docstring for the full generating process."
)


# ---------------------------------------------------------------------------------------------
# The true logit: univariate terms g_j and the product term u(a) * w(b)
# ---------------------------------------------------------------------------------------------


def _g_income(v: np.ndarray) -> np.ndarray:
    return -0.9 * np.log(v / 48_000.0)


def _g_debt_to_income(v: np.ndarray) -> np.ndarray:
    return 1.2 * v


def _g_age(v: np.ndarray) -> np.ndarray:
    return 0.0012 * (v - 45.0) ** 2


def _g_months_employed(v: np.ndarray) -> np.ndarray:
    return -0.8 * (1.0 - np.exp(-v / 36.0))


def _g_late_payments(v: np.ndarray) -> np.ndarray:
    return 1.8 * (1.0 - np.exp(-0.7 * v))


def _g_open_credit_lines(v: np.ndarray) -> np.ndarray:
    return 0.12 * np.maximum(0.0, v - 5.0)


def _g_credit_utilization(v: np.ndarray) -> np.ndarray:
    return 0.8 * v


def _g_loan_amount(v: np.ndarray) -> np.ndarray:
    return 0.35 * np.log(v / 15_000.0)


def _g_loan_purpose(codes: np.ndarray) -> np.ndarray:
    return _PURPOSE_OFFSET[codes]


def _u_interaction(dti: np.ndarray) -> np.ndarray:
    return 4.0 * dti


def _w_interaction(util: np.ndarray) -> np.ndarray:
    return util


_UNIVARIATE: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "income": _g_income,
    "debt_to_income": _g_debt_to_income,
    "age": _g_age,
    "months_employed": _g_months_employed,
    "late_payments": _g_late_payments,
    "open_credit_lines": _g_open_credit_lines,
    "credit_utilization": _g_credit_utilization,
    "loan_amount": _g_loan_amount,
    "loan_purpose": _g_loan_purpose,
}


def _columns(X: object, name: str) -> dict[str, np.ndarray]:
    """Validate ``X`` and return its columns as arrays (loan_purpose as category codes)."""
    if not isinstance(X, pd.DataFrame):
        raise InvalidInputError(
            f"{name} must be a pandas DataFrame with the credit columns "
            f"{list(CREDIT_FEATURES)}, got {type(X).__name__}. "
            f"Pass a DataFrame such as whybox.zoo.credit().X."
        )
    missing = [c for c in CREDIT_FEATURES if c not in X.columns]
    if missing:
        raise InvalidInputError(
            f"{name} is missing the column(s) {missing}; expected all of "
            f"{list(CREDIT_FEATURES)}. Pass a DataFrame with these columns "
            f"(extra columns are ignored)."
        )
    cols: dict[str, np.ndarray] = {}
    for c in CREDIT_FEATURES[:-1]:
        try:
            arr = np.asarray(X[c], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"column {c!r} of {name} must be numeric, got dtype {X[c].dtype}. "
                f"Convert it to numbers before calling."
            ) from exc
        if not np.all(np.isfinite(arr)):
            raise InvalidInputError(
                f"column {c!r} of {name} contains NaN or infinite values; expected finite "
                f"numbers. Drop or impute those rows first."
            )
        cols[c] = arr
    for c in ("income", "loan_amount"):
        if np.any(cols[c] <= 0):
            raise InvalidInputError(
                f"column {c!r} of {name} must be strictly positive (its logarithm enters the "
                f"logit), got minimum {cols[c].min()!r}. Remove rows with non-positive values."
            )
    purpose = X["loan_purpose"]
    known = pd.Index(list(LOAN_PURPOSES))
    if isinstance(purpose.dtype, pd.CategoricalDtype):
        # map the categories once, then look the codes up (-1, missing, stays -1)
        lookup = np.append(known.get_indexer(purpose.cat.categories.astype(object)), -1)
        codes = lookup[purpose.cat.codes.to_numpy()]
    else:
        codes = known.get_indexer(np.asarray(purpose, dtype=object))
    if np.any(codes < 0):
        bad = sorted({str(v) for v in np.asarray(purpose, dtype=object)[codes < 0]})
        raise InvalidInputError(
            f"column 'loan_purpose' of {name} contains unknown or missing values {bad}; "
            f"expected one of {list(LOAN_PURPOSES)}. Fix or drop those rows."
        )
    cols["loan_purpose"] = codes.astype(np.intp)
    return cols


def _logit_from_columns(cols: dict[str, np.ndarray]) -> np.ndarray:
    a, b = _INTERACTION
    out = np.full(len(cols["income"]), _INTERCEPT)
    for c, g in _UNIVARIATE.items():
        out += g(cols[c])
    out += _u_interaction(cols[a]) * _w_interaction(cols[b])
    return out


def credit_true_logit(X: pd.DataFrame) -> np.ndarray:
    """The true log-odds of default of the :func:`credit` data-generating process.

    Parameters
    ----------
    X : pandas.DataFrame, shape (n, >= 9)
        Rows with at least the columns of ``wb.zoo.CREDIT_FEATURES`` (any order; extra
        columns are ignored). ``loan_purpose`` may be categorical or plain strings.

    Returns
    -------
    numpy.ndarray, shape (n,)
        ``f(x)`` for each row, as in the module docstring. Equals ``credit(...).logit`` on
        ``credit(...).X``.

    Raises
    ------
    InvalidInputError
        If ``X`` is not a DataFrame, misses columns, has non-finite or non-numeric values,
        non-positive income or loan amount, or unknown loan purposes.

    Examples
    --------
    >>> data = wb.zoo.credit(n=1000, random_state=0)
    >>> logit = wb.zoo.credit_true_logit(data.X)
    >>> logit.shape, bool(np.allclose(logit, data.logit))
    ((1000,), True)
    """
    return _logit_from_columns(_columns(X, "X"))


def credit_true_shap(X: pd.DataFrame, background: pd.DataFrame) -> np.ndarray:
    """Exact interventional Shapley values of :func:`credit_true_logit`, in closed form.

    The value of a coalition ``S`` for row ``x`` is ``mean_r f(x_S, r_{-S})`` over the rows
    ``r`` of ``background``, uniformly weighted (see the module docstring for the formulas).

    Parameters
    ----------
    X : pandas.DataFrame, shape (n, >= 9)
        Rows to explain, with the columns of ``wb.zoo.CREDIT_FEATURES``.
    background : pandas.DataFrame, shape (m, >= 9)
        Background rows that fill in absent features, ``m >= 1``.

    Returns
    -------
    numpy.ndarray, shape (n, 9)
        Shapley values in the column order of ``wb.zoo.CREDIT_FEATURES``. Each row sums to
        ``credit_true_logit(x) - credit_true_logit(background).mean()``.

    Raises
    ------
    InvalidInputError
        If either frame is invalid (see :func:`credit_true_logit`) or ``background`` is empty.

    Examples
    --------
    The closed form agrees with exact Shapley values computed by brute force:

    >>> data = wb.zoo.credit(n=500, random_state=0)
    >>> X, bg = data.X.iloc[:2], data.X.iloc[:50]
    >>> phi = wb.zoo.credit_true_shap(X, bg)
    >>> exp = wb.ExactShap(wb.zoo.credit_true_logit, bg).explain(X)
    >>> phi.shape, bool(np.allclose(phi, exp.values))
    ((2, 9), True)
    """
    xc = _columns(X, "X")
    bc = _columns(background, "background")
    if len(bc["income"]) == 0:
        raise InvalidInputError(
            "background has no rows; expected at least one row to fill in absent features. "
            "Pass a non-empty background, e.g. a sample of the training data."
        )
    phi = np.empty((len(xc["income"]), len(CREDIT_FEATURES)))
    for j, c in enumerate(CREDIT_FEATURES):
        g = _UNIVARIATE[c]
        phi[:, j] = g(xc[c]) - g(bc[c]).mean()

    a, b = _INTERACTION
    ja, jb = CREDIT_FEATURES.index(a), CREDIT_FEATURES.index(b)
    ux, wx = _u_interaction(xc[a]), _w_interaction(xc[b])
    ub, wb = _u_interaction(bc[a]), _w_interaction(bc[b])
    e_u, e_w, e_uw = ub.mean(), wb.mean(), (ub * wb).mean()
    v_empty, v_a, v_b, v_ab = e_uw, ux * e_w, e_u * wx, ux * wx
    phi[:, ja] += 0.5 * ((v_a - v_empty) + (v_ab - v_b))
    phi[:, jb] += 0.5 * ((v_b - v_empty) + (v_ab - v_a))
    return phi


# ---------------------------------------------------------------------------------------------
# Data set
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CreditData:
    """A draw from :func:`credit`.

    Parameters
    ----------
    X : pandas.DataFrame, shape (n, 9)
        Features, columns in the order of ``wb.zoo.CREDIT_FEATURES``; ``loan_purpose`` is a
        pandas Categorical with categories ``wb.zoo.LOAN_PURPOSES``.
    y : pandas.Series, shape (n,)
        ``default`` (int64, 1 = the applicant defaults), ``Bernoulli(sigmoid(logit))``.
    logit : numpy.ndarray, shape (n,)
        The true log-odds of default of each row.
    description : str
        What the data set is, in a paragraph.
    feature_descriptions : dict[str, str]
        Plain-language description of each column of ``X``.

    Examples
    --------
    >>> data = wb.zoo.credit(n=1000, random_state=0)
    >>> data.X.shape, data.y.name, data.logit.shape
    ((1000, 9), 'default', (1000,))
    >>> list(data.feature_descriptions) == list(data.X.columns)
    True
    """

    X: pd.DataFrame
    y: pd.Series
    logit: np.ndarray
    description: str = _DESCRIPTION
    feature_descriptions: dict[str, str] = field(
        default_factory=lambda: dict(_FEATURE_DESCRIPTIONS)
    )

    def true_logit(self, X: pd.DataFrame) -> np.ndarray:
        """The true log-odds for any rows; see :func:`credit_true_logit`.

        Parameters
        ----------
        X : pandas.DataFrame, shape (n, >= 9)

        Returns
        -------
        numpy.ndarray, shape (n,)
        """
        return credit_true_logit(X)

    def true_shap(self, X: pd.DataFrame, background: pd.DataFrame | None = None) -> np.ndarray:
        """Exact interventional Shapley values; see :func:`credit_true_shap`.

        Parameters
        ----------
        X : pandas.DataFrame, shape (n, >= 9)
        background : pandas.DataFrame, shape (m, >= 9), optional
            Defaults to this data set's ``X``.

        Returns
        -------
        numpy.ndarray, shape (n, 9)
        """
        return credit_true_shap(X, self.X if background is None else background)


def _check_n(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise InvalidParameterError(
            f"n must be a positive integer (the number of applicants to draw), got {n!r}. "
            f"Pass an int such as n=5000."
        )
    return int(n)


def _check_random_state(random_state: object) -> int | None:
    if random_state is None:
        return None
    if (
        isinstance(random_state, bool)
        or not isinstance(random_state, numbers.Integral)
        or random_state < 0
    ):
        raise InvalidParameterError(
            f"random_state must be None or a non-negative integer seed, got {random_state!r}. "
            f"Pass an int such as random_state=0 for reproducible data, or None."
        )
    return int(random_state)


def credit(n: int = 5000, random_state: int | None = 0) -> CreditData:
    """Draw a synthetic credit-decision data set with a known true logit.

    The generating process and the true logit are documented in full in the docstring of
    :mod:`whybox.zoo.credit`.

    Parameters
    ----------
    n : int, default 5000
        Number of applicants (rows), at least 1.
    random_state : int or None, default 0
        Seed of ``numpy.random.default_rng``; the same seed gives identical data.
        ``None`` draws fresh entropy.

    Returns
    -------
    CreditData
        ``X`` (n, 9), ``y`` (n,) named ``"default"``, ``logit`` (n,), descriptions.

    Raises
    ------
    InvalidParameterError
        If ``n`` is not a positive integer or ``random_state`` is not None or a
        non-negative integer.

    Examples
    --------
    >>> from whybox.zoo import credit
    >>> data = credit(n=1000, random_state=0)
    >>> data.X.shape
    (1000, 9)
    """
    n = _check_n(n)
    rng = np.random.default_rng(_check_random_state(random_state))

    age = np.clip(np.round(rng.normal(42.0, 13.0, n)), 18, 80).astype(np.int64)
    income = np.round(
        np.exp(np.log(48_000.0) + 0.008 * (age - 42) + 0.55 * rng.standard_normal(n)), -2
    )
    income = np.maximum(income, 100.0)  # guard: keeps log(income) finite
    months_employed = np.floor((age - 16) * 12 * rng.beta(2.0, 2.5, n)).astype(np.int64)
    debt_to_income = np.round(0.8 * rng.beta(2.0, 5.0, n), 3)
    credit_utilization = np.round(rng.beta(1.5, 2.5, n), 3)
    late_payments = rng.poisson(0.25 + 1.5 * credit_utilization).astype(np.int64)
    open_credit_lines = rng.poisson(2.0 + 0.06 * (age - 18)).astype(np.int64)
    purpose_codes = rng.choice(len(LOAN_PURPOSES), size=n, p=_PURPOSE_PROBS)
    loan_amount = np.round(
        _PURPOSE_BASE_AMOUNT[purpose_codes]
        * (income / 48_000.0) ** 0.4
        * np.exp(0.45 * rng.standard_normal(n)),
        -2,
    )
    loan_amount = np.maximum(loan_amount, 1_000.0)

    cols = {
        "income": income,
        "debt_to_income": debt_to_income,
        "age": age.astype(np.float64),
        "months_employed": months_employed.astype(np.float64),
        "late_payments": late_payments.astype(np.float64),
        "open_credit_lines": open_credit_lines.astype(np.float64),
        "credit_utilization": credit_utilization,
        "loan_amount": loan_amount,
        "loan_purpose": purpose_codes.astype(np.intp),
    }
    logit = _logit_from_columns(cols)
    prob = 1.0 / (1.0 + np.exp(-logit))
    default = (rng.random(n) < prob).astype(np.int64)

    X = pd.DataFrame(
        {
            "income": income,
            "debt_to_income": debt_to_income,
            "age": age,
            "months_employed": months_employed,
            "late_payments": late_payments,
            "open_credit_lines": open_credit_lines,
            "credit_utilization": credit_utilization,
            "loan_amount": loan_amount,
            "loan_purpose": pd.Categorical.from_codes(purpose_codes, list(LOAN_PURPOSES)),
        },
        columns=list(CREDIT_FEATURES),
    )
    y = pd.Series(default, name="default")
    return CreditData(X=X, y=y, logit=logit)
