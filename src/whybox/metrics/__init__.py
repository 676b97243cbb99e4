"""Explanation-quality metrics: faithfulness, robustness, sanity and agreement.

* faithfulness: :func:`deletion`, :func:`insertion` (cores :func:`deletion_curve`,
  :func:`insertion_curve` on any game), :func:`faithfulness_correlation`, :func:`infidelity`;
* robustness: :func:`max_sensitivity`, :func:`stability`;
* sanity: :func:`model_randomisation` (torch models);
* agreement: :func:`agreement` (the disagreement problem);
* :func:`whybox.evaluate`: several metrics of one explanation as one table (also ``wb.evaluate``).
"""

from __future__ import annotations

from .agreement import agreement
from .evaluate import evaluate
from .faithfulness import (
    Curve,
    deletion,
    deletion_curve,
    faithfulness_correlation,
    infidelity,
    insertion,
    insertion_curve,
)
from .robustness import max_sensitivity, stability
from .sanity import model_randomisation

__all__ = [
    "Curve",
    "agreement",
    "deletion",
    "deletion_curve",
    "evaluate",
    "faithfulness_correlation",
    "infidelity",
    "insertion",
    "insertion_curve",
    "max_sensitivity",
    "model_randomisation",
    "stability",
]
