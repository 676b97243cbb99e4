"""Glass-box models: interpretable estimators whose explanations are exact.

- :class:`ExplainableBoostingClassifier`, :class:`ExplainableBoostingRegressor`: explainable
  boosting machines (GA2M by cyclic boosting with FAST pair detection), scikit-learn
  estimators with ``explain_local`` / ``explain_global``.
"""

from __future__ import annotations

from whybox.glassbox.gam import ExplainableBoostingClassifier, ExplainableBoostingRegressor

__all__ = ["ExplainableBoostingClassifier", "ExplainableBoostingRegressor"]
