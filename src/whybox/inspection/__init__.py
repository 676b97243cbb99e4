"""Model inspection as scikit-learn names it: partial dependence and ICE (``partial_dependence``),
accumulated local effects (``ale``), permutation and global importance (``importance``)."""
