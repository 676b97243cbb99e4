"""Recourse for a decision: counterfactuals under immutable features, ranges and monotone
constraints (``counterfactuals``), and adverse-action reason codes (``reasons``)."""
