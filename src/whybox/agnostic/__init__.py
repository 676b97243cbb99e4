"""Model-agnostic explainers users construct: ExactShap, PermutationShap, KernelShap, Banzhaf,
ShapleyInteractions, Lime and Occlusion, each applying a game of the core (``whybox.games``)."""
