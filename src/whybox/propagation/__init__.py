"""Relevance propagation through transformers and networks: attention rollout and flow
(:mod:`.rollout`), Chefer's gradient-weighted relevance (:mod:`.chefer`) and its LRP variant
(:mod:`.chefer_lrp`), LRP for networks (:mod:`.lrp`) and AttnLRP for transformers
(:mod:`.attnlrp`).

Import torch lazily: ``import whybox.propagation`` does not import torch.
"""

from __future__ import annotations

from whybox.propagation.chefer import CheferRelevance, chefer_relevance, explain_chefer
from whybox.propagation.chefer_lrp import CheferLRP, explain_chefer_lrp
from whybox.propagation.rollout import (
    AttentionFlow,
    AttentionRollout,
    RawAttention,
    attention_flow,
    attention_maps,
    explain_flow,
    explain_raw_attention,
    explain_rollout,
    fuse_heads,
    rollout,
)

__all__ = [
    "AttentionFlow",
    "AttentionRollout",
    "CheferLRP",
    "CheferRelevance",
    "RawAttention",
    "attention_flow",
    "attention_maps",
    "chefer_relevance",
    "explain_chefer",
    "explain_chefer_lrp",
    "explain_flow",
    "explain_raw_attention",
    "explain_rollout",
    "fuse_heads",
    "rollout",
]
