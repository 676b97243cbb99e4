"""Gradient attribution for torch models (imports torch when first used).

* :mod:`.saliency`: :class:`Saliency`, :class:`InputXGradient`, :class:`SmoothGrad`,
  :class:`VarGrad`.
* :mod:`.integrated`: :class:`IntegratedGradients` (fixed and adaptive quadrature, layer IG),
  :class:`ExpectedGradients`.
* :mod:`.cam`: :class:`GradCam`, :class:`GradCamPlusPlus`, :class:`GuidedBackprop`,
  :class:`GuidedGradCam`.
"""

from __future__ import annotations

from whybox.gradients._base import GradientExplainer, TrainingModeWarning
from whybox.gradients.cam import GradCam, GradCamPlusPlus, GuidedBackprop, GuidedGradCam
from whybox.gradients.integrated import ExpectedGradients, IntegratedGradients, quadrature
from whybox.gradients.saliency import InputXGradient, Saliency, SmoothGrad, VarGrad

__all__ = [
    "ExpectedGradients",
    "GradCam",
    "GradCamPlusPlus",
    "GradientExplainer",
    "GuidedBackprop",
    "GuidedGradCam",
    "InputXGradient",
    "IntegratedGradients",
    "Saliency",
    "SmoothGrad",
    "TrainingModeWarning",
    "VarGrad",
    "quadrature",
]
