"""Model-agnostic explainers users construct: ExactShap, PermutationShap, KernelShap, Banzhaf,
ShapleyInteractions and Lime, each applying an estimator of the game core (``whybox.games``)."""
