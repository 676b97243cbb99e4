"""Sanity checks: the model-parameter randomisation test for torch models.

An explanation that does not change when the model's weights are destroyed cannot be
explaining the model (Adebayo et al. 2018). :func:`model_randomisation` re-initialises the
layers of a deep copy of the model, from the output layer down ("cascading": each step keeps
the earlier randomisations) or one layer at a time ("independent"), explains the same rows
with each randomised model and reports the similarity of each explanation to the original
one. A method that passes shows similarities that fall towards 0 as more layers are
randomised.

Layers are the modules with parameters of their own and a ``reset_parameters`` method (torch's
default initialisation of that layer), in ``model.named_modules()`` order reversed for the
top-down cascade; the same definition as Quantus's MPRT.

References
----------
Adebayo, J., Gilmer, J., Muelly, M., Goodfellow, I., Hardt, M. and Kim, B. (2018). Sanity
checks for saliency maps. NeurIPS.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from .._validation import check_in
from ..errors import InvalidParameterError, UnsupportedModelError
from ..internals.hooks import require_torch
from ..models import is_torch_module
from ._inputs import call_explain_fn, output_values
from .agreement import _pearson_rows, spearman_rows

__all__ = ["model_randomisation", "randomisable_layers"]

SIMILARITIES = ("spearman", "pearson")


def randomisable_layers(model: Any) -> list[str]:
    """Names of the layers that can be re-initialised, in forward (``named_modules``) order."""
    return [
        name
        for name, module in model.named_modules()
        if hasattr(module, "reset_parameters")
        and any(True for _ in module.parameters(recurse=False))
    ]


def _similarity(a: np.ndarray, b: np.ndarray, kind: str) -> np.ndarray:
    return spearman_rows(a, b) if kind == "spearman" else _pearson_rows(a, b)


def model_randomisation(
    explain_fn: Callable[[Any, Any], Any],
    model: Any,
    X: Any,
    *,
    order: str = "cascading",
    similarity: str = "spearman",
    abs: bool = True,
    random_state: int = 0,
    per_row: bool = False,
) -> pd.DataFrame:
    """Model-parameter randomisation test of Adebayo et al. (2018).

    Parameters
    ----------
    explain_fn : callable
        ``explain_fn(model, X) -> Explanation or array (n, ...)``: the method under test,
        called with the original model and with each randomised copy.
    model : torch.nn.Module
        The model; it is never modified (randomisation happens on deep copies).
    X : array or tensor of shape (n, ...)
        Inputs to explain.
    order : {"cascading", "independent"}
        ``"cascading"``: randomise from the output layer down, keeping earlier
        randomisations. ``"independent"``: randomise one layer at a time in the original.
    similarity : {"spearman", "pearson"}
        Similarity of each row's flattened attributions to the original ones.
    abs : bool
        Compare attribution magnitudes (Adebayo et al.'s and Quantus's default).
    random_state : int
        Seed of the re-initialisations (torch's global random state is left untouched).
    per_row : bool
        Return the similarity of every row (columns) for each layer instead of the summary.

    Returns
    -------
    DataFrame indexed by ``"original"`` (the original explanation against a fresh one of the
    original model: 1 for deterministic methods) and then the randomised layers in the order
    they were randomised, with columns ``mean``, ``std`` and ``n`` (or one column per row with
    ``per_row=True``). Lower similarity after randomisation is what a faithful method shows.

    Examples
    --------
    >>> model, data = wb.zoo.digits_cnn()
    >>> x, y = data.X_test[:4], data.y_test[:4]
    >>> table = wb.metrics.model_randomisation(lambda m, Z: wb.Saliency(m).explain(Z, target=y), model, x)
    >>> table.index.tolist()  # randomised from the output layer down
    ['original', 'fc', 'features.3', 'features.0']
    >>> bool(table.loc["original", "mean"] == 1.0), bool(table.loc["fc", "mean"] < 0.9)
    (True, True)
    """
    torch = require_torch("model_randomisation")
    if not is_torch_module(model):
        raise UnsupportedModelError(
            f"model_randomisation re-initialises the layers of a torch.nn.Module; got "
            f"{type(model).__name__}. Pass the torch model itself."
        )
    check_in("order", order, ("cascading", "independent"))
    check_in("similarity", similarity, SIMILARITIES)
    if (
        isinstance(random_state, bool)
        or not isinstance(random_state, (int, np.integer))
        or random_state < 0
    ):
        raise InvalidParameterError(
            f"random_state must be a non-negative int, got {random_state!r}."
        )
    layers = randomisable_layers(model)[::-1]  # output layer first
    if not layers:
        raise InvalidParameterError(
            "the model has no layer with parameters and a reset_parameters() method, so there "
            "is nothing to randomise."
        )
    n = int(X.shape[0]) if hasattr(X, "shape") else len(X)

    def explain(m: Any) -> np.ndarray:
        a = output_values(call_explain_fn(explain_fn, "explain_fn", m, X), n, "explain_fn")
        return np.abs(a) if abs else a

    original = explain(model)
    seeds = np.random.SeedSequence(int(random_state)).generate_state(len(layers), dtype=np.uint64)
    scores = {"original": _similarity(original, explain(model), similarity)}
    current = copy.deepcopy(model)
    for seed, name in zip(seeds, layers, strict=True):
        if order == "independent":
            current = copy.deepcopy(model)
        module = current.get_submodule(name)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed) % (2**63))
            module.reset_parameters()
        scores[name] = _similarity(original, explain(current), similarity)
    table = pd.DataFrame(scores).T
    table.index.name = "layer"
    if per_row:
        return table
    vals = table.to_numpy()
    finite = np.isfinite(vals)
    count = finite.sum(axis=1)
    mean = np.divide(
        np.where(finite, vals, 0).sum(axis=1),
        count,
        out=np.full(len(table), np.nan),
        where=count > 0,
    )
    dev = np.where(finite, vals - mean[:, None], 0.0)
    std = np.sqrt(
        np.divide((dev**2).sum(axis=1), count - 1, out=np.full(len(table), np.nan), where=count > 1)
    )
    return pd.DataFrame({"mean": mean, "std": std, "n": count}, index=table.index)
