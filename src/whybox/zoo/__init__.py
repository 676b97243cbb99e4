"""Small reproducible data sets for demos and tests.

- :func:`credit`: a synthetic credit-decision data set whose true logit and exact
  interventional Shapley values are known in closed form (:func:`credit_true_logit`,
  :func:`credit_true_shap`).
- :func:`load_sklearn` and the named helpers :func:`breast_cancer`, :func:`diabetes`,
  :func:`digits`, :func:`iris`, :func:`wine`: scikit-learn's bundled data sets (no downloads).
- :func:`digits_cnn`: a small seeded CNN trained on the 8x8 digits (needs torch), cached.
- :func:`cached_model`: the cache behind the trained toy models: a trainer runs once per
  (name, code version, config, seed) and its weights are kept as safetensors (no pickle).
"""

from __future__ import annotations

from whybox.zoo.cache import cached_model
from whybox.zoo.cnn import DigitsData, digits_cnn  # not zoo/digits.py: it would shadow zoo.digits()
from whybox.zoo.credit import (
    CREDIT_FEATURES,
    LOAN_PURPOSES,
    CreditData,
    credit,
    credit_true_logit,
    credit_true_shap,
)
from whybox.zoo.datasets import (
    SKLEARN_DATASETS,
    breast_cancer,
    diabetes,
    digits,
    iris,
    load_sklearn,
    wine,
)

__all__ = [
    "CREDIT_FEATURES",
    "LOAN_PURPOSES",
    "SKLEARN_DATASETS",
    "CreditData",
    "DigitsData",
    "breast_cancer",
    "cached_model",
    "credit",
    "credit_true_logit",
    "credit_true_shap",
    "diabetes",
    "digits",
    "digits_cnn",
    "iris",
    "load_sklearn",
    "wine",
]
