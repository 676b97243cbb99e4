"""Small reproducible data sets for demos and tests.

- :func:`credit`: a synthetic credit-decision data set whose true logit and exact
  interventional Shapley values are known in closed form (:func:`credit_true_logit`,
  :func:`credit_true_shap`).
- :func:`load_sklearn` and the named helpers :func:`breast_cancer`, :func:`diabetes`,
  :func:`digits`, :func:`iris`, :func:`wine`: scikit-learn's bundled data sets (no downloads).
- :func:`digits_cnn`: a small seeded CNN trained on the 8x8 digits (needs torch), cached.
- :func:`cached_model`: the cache behind the trained toy models: a trainer runs once per
  (name, code version, config, seed) and its weights are kept as safetensors (no pickle).
- Transformers that reproduce published mechanisms (need torch and transformers), cached:
  :func:`induction_model` (induction heads, Olsson et al. 2022) with :func:`repeated_tokens`
  and :func:`induction_scores`; :func:`modular_addition_model` (grokking, Nanda et al. 2023)
  with :func:`fourier_key_frequencies` and :func:`ablate_frequencies`; :func:`tiny_lm` (a
  small GPT-2 trained on pydoc's topics, loaded with ``from_pretrained``);
  :func:`sentiment_classifier` (all-MiniLM-L6-v2 with a sentiment head trained here on
  :func:`sentiment_sentences`, written for the project).
- :func:`toy_superposition_model` (Toy Models of Superposition, Elhage et al. 2022) with its
  geometry helpers (:func:`classify_geometry`, :func:`feature_dimensionality`, ...): the
  ground truth an SAE must recover.
- :func:`scratchpad_model`: two small transformers trained on a multi-step sum, one whose
  answer reads its scratchpad and one whose answer ignores it (chain-of-thought faithfulness).
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
from whybox.zoo.induction import (
    attention_patterns,
    induction_model,
    induction_scores,
    prefix_matching_score,
    previous_token_score,
    repeated_tokens,
)
from whybox.zoo.modular import (
    ablate_frequencies,
    fourier_key_frequencies,
    modular_addition_data,
    modular_addition_model,
)
from whybox.zoo.scratchpad import ScratchpadModel, scratchpad_model, scratchpad_questions
from whybox.zoo.sentiment import sentiment_classifier, sentiment_sentences
from whybox.zoo.superposition import (
    Geometry,
    ToyModel,
    classify_geometry,
    dimensions_per_feature,
    feature_angles,
    feature_dimensionality,
    feature_norms,
    sample_sparse_features,
    toy_superposition_model,
)
from whybox.zoo.tinylm import tiny_lm, tiny_lm_corpus, tiny_lm_path

__all__ = [
    "CREDIT_FEATURES",
    "LOAN_PURPOSES",
    "SKLEARN_DATASETS",
    "CreditData",
    "DigitsData",
    "Geometry",
    "ScratchpadModel",
    "ToyModel",
    "ablate_frequencies",
    "attention_patterns",
    "breast_cancer",
    "cached_model",
    "classify_geometry",
    "credit",
    "credit_true_logit",
    "credit_true_shap",
    "diabetes",
    "digits",
    "digits_cnn",
    "dimensions_per_feature",
    "feature_angles",
    "feature_dimensionality",
    "feature_norms",
    "fourier_key_frequencies",
    "induction_model",
    "induction_scores",
    "iris",
    "load_sklearn",
    "modular_addition_data",
    "modular_addition_model",
    "prefix_matching_score",
    "previous_token_score",
    "repeated_tokens",
    "sample_sparse_features",
    "scratchpad_model",
    "scratchpad_questions",
    "sentiment_classifier",
    "sentiment_sentences",
    "tiny_lm",
    "tiny_lm_corpus",
    "tiny_lm_path",
    "toy_superposition_model",
    "wine",
]
