"""Sparse autoencoders: train, evaluate, load published ones, analyse their features [1]_ [2]_.

``wb.sae.load(folder)`` reads SAELens folders, Gemma Scope ``params.npz`` files and sparsify
folders; ``wb.sae.train(model, site=..., architecture="topk", ...)`` trains on activations
streamed from the user's own model through scoped hooks (or read from stored shards), with
the top-k family of [3]_ among the architectures;
``wb.sae.evaluate`` reports L0, FVU, CE-loss recovered and KL with the reconstruction spliced
into the model; :func:`~whybox.sae.feature_data` gathers what a feature page shows. Names are
imported on first use, so ``import whybox.sae`` needs no torch.

References
----------
.. [1] Bricken, T. et al. (2023). "Towards Monosemanticity: Decomposing Language Models With
   Dictionary Learning." Transformer Circuits Thread.
.. [2] Cunningham, H. et al. (2024). "Sparse Autoencoders Find Highly Interpretable Features in
   Language Models." ICLR 2024.
.. [3] Gao, L. et al. (2024). "Scaling and evaluating sparse autoencoders." arXiv:2406.04093.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ARCHITECTURES": "whybox.sae.models",
    "SAE": "whybox.sae.models",
    "SAEConfig": "whybox.sae.models",
    "StandardSAE": "whybox.sae.models",
    "TopKSAE": "whybox.sae.models",
    "BatchTopKSAE": "whybox.sae.models",
    "JumpReLUSAE": "whybox.sae.models",
    "MatryoshkaSAE": "whybox.sae.models",
    "load": "whybox.sae.io",
    "train": "whybox.sae.training",
    "evaluate": "whybox.sae.evaluation",
    "SAEEvaluation": "whybox.sae.evaluation",
    "ModelActivations": "whybox.sae.activations",
    "ShardActivations": "whybox.sae.activations",
    "feature_data": "whybox.sae.features",
    "FeatureData": "whybox.sae.features",
    "demo_sae": "whybox.sae.demo",
    "concept_features": "whybox.sae.demo",
    "edit_features": "whybox.sae.steering",
    "ablate_features": "whybox.sae.steering",
    "clamp_features": "whybox.sae.steering",
    "add_feature": "whybox.sae.steering",
    "run_with_features": "whybox.sae.steering",
    "generate_with_features": "whybox.sae.steering",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'whybox.sae' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
