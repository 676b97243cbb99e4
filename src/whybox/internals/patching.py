"""Activation, attribution and path patching on any Hugging Face (or torch) transformer.

Three causal analyses of a *clean* run (the model does the task) against a *corrupted* run
(a minimally different input where it does not), each an :class:`~whybox.Explanation` over
named players, one per cell of a grid:

- :func:`activation_patching` replaces one activation (a layer's residual stream at one
  position, a head's output, ...) of one run with the same activation of the other run and
  records the metric (Meng et al. 2022; Wang et al. 2022; Heimersheim & Nanda 2024). The
  patched runs are batched: many cells share one forward pass along the batch axis.
- :func:`attribution_patching` estimates every cell of the same grid to first order from one
  clean forward and one corrupted forward and backward: ``(a_clean - a_corr) . dm/da``
  (Nanda 2023; Syed et al. 2023).
- :func:`path_patching` patches the path from sender heads to receiver heads' query, key or
  value inputs (or to the logits) alone (Wang et al. 2022; Goldowsky-Dill et al. 2023).

Conventions
-----------
``clean`` and ``corrupted`` are token ids ``(batch, pos)`` (or ``(pos,)``) or a mapping of
model keyword arguments (a tokenizer's ``BatchEncoding``), paired row by row. ``metric`` maps
the model's logits ``(batch, pos, vocab)`` (its ``last_hidden_state`` for a model without a
head) to a scalar tensor, e.g. a logit difference averaged over the batch. Every cell patches
all rows of the batch.

``direction="denoise"`` (the default, as TransformerLens's ``get_act_patch_*``) runs the
corrupted input and patches in clean activations; ``"noise"`` runs the clean input and patches
in corrupted ones. Positions and players refer to the patched run; position ``p`` of the
patched run receives position ``p`` of the other run (``align="right"`` pairs the last
positions of inputs of different lengths instead).

Values are the metric *after* patching, as TransformerLens reports them; ``base_values`` is
the metric of the patched run without a patch, so ``exp.values - exp.base_values[:, None]`` is
each cell's effect. ``normalize=True`` reports ``(patched - base) / (other - base)`` instead:
the fraction of the gap between the two runs' metrics a cell moves (1: all of it) with base
value 0. The grid's shape, axes and indices are in ``exp.meta`` (``grid_shape``,
``grid_axes``, ``grid_index``) and :func:`patching_grid` returns it as a DataFrame.

Players are named ``"L2@pos7"`` (layer x position), ``"L3.H5"`` (layer x head, all positions),
``"L3.H5@pos7"`` (layer x position x head) and ``"L2"`` (whole layer).

References
----------
Meng, K., Bau, D., Andonian, A., Belinkov, Y. (2022). Locating and editing factual
associations in GPT. NeurIPS.
Wang, K., Variengien, A., Conmy, A., Shlegeris, B., Steinhardt, J. (2022). Interpretability
in the wild: a circuit for indirect object identification in GPT-2 small. arXiv:2211.00593.
Nanda, N. (2023). Attribution patching: activation patching at industrial scale.
https://www.neelnanda.io/mechanistic-interpretability/attribution-patching
Syed, A., Rager, C., Conmy, A. (2023). Attribution patching outperforms automated circuit
discovery. arXiv:2310.10348.
Goldowsky-Dill, N., MacLeod, C., Sato, L., Arora, A. (2023). Localizing model behavior with
path patching. arXiv:2304.05969.
Heimersheim, S., Nanda, N. (2024). How to use and interpret activation patching.
arXiv:2404.15255.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from whybox.errors import InvalidParameterError
from whybox.explanation import Explanation
from whybox.internals import _patching as E

__all__ = ["activation_patching", "attribution_patching", "patching_grid", "path_patching"]


def activation_patching(
    model: Any,
    clean: Any,
    corrupted: Any,
    metric: Callable[[Any], Any],
    *,
    site: str = "resid_pre",
    by: str | None = None,
    layers: Any = None,
    positions: Any = None,
    direction: str = "denoise",
    normalize: bool = False,
    align: str | None = None,
    batch_size: int | None = None,
    anatomy: Any = None,
) -> Explanation:
    """Patch one activation at a time between a clean and a corrupted run.

    For each cell of a grid (a layer and a position, or a layer and a head, ...) the patched
    run's activation at ``site`` is replaced by the other run's, the rest of the forward pass
    runs on, and ``metric`` of the resulting logits is recorded. Many cells share one forward
    pass: the patched input is repeated along the batch axis, each copy with its own patch.

    Parameters
    ----------
    model : torch.nn.Module
        A transformers model (or any model :class:`~whybox.internals.anatomy.Anatomy` reads),
        in eval mode.
    clean, corrupted : tensor (batch, pos) or (pos,), or mapping of model inputs
        Token ids (or a ``BatchEncoding``) of the two runs, paired row by row.
    metric : callable
        ``metric(logits) -> 0-d tensor`` on logits of shape ``(batch, pos, vocab)``.
    site : str, default "resid_pre"
        The per-layer hook name: ``"resid_pre"``, ``"resid_mid"``, ``"resid_post"``,
        ``"attn.out"``, ``"mlp.out"``, ``"mlp.post"`` (one vector per position) or
        ``"attn.head_out"``, ``"attn.q"``, ``"attn.k"``, ``"attn.v"`` (split by heads;
        ``k``/``v`` by key-value heads).
    by : {"pos", "head", "head_pos", "layer"} or None
        The grid: layer x position (default for vector sites), layer x head with all
        ``positions`` patched together (default for head sites), layer x position x head, or
        one cell per layer with all ``positions`` patched together.
    layers : sequence of int or None
        Layers of the grid (default all).
    positions : sequence of int or None
        Positions of the patched run: the grid's columns (``by="pos"``/``"head_pos"``) or the
        positions patched together (``by="head"``/``"layer"``). Default all compared ones.
    direction : {"denoise", "noise"}, default "denoise"
        Patch clean activations into the corrupted run, or corrupted ones into the clean run.
    normalize : bool, default False
        Report ``(patched - base) / (other - base)`` instead of the patched metric.
    align : {None, "left", "right"}
        Inputs of different lengths are refused unless aligned: "left" compares positions
        ``0..n-1`` of both, "right" the last ``n`` of each (``n`` the shorter length).
    batch_size : int or None
        Most cells per forward pass (each cell is ``batch`` rows). None fits as many as about
        1 GiB of activations allows, on a CPU at most 4096 tokens per forward (past that a
        forward's time per token grows). Results do not depend on it beyond float rounding.
    anatomy : Anatomy or None
        Built with ``Anatomy.of(model)`` when None.

    Returns
    -------
    Explanation
        One row; ``values`` of shape ``(1, n_cells)`` over players ``"L2@pos7"`` /
        ``"L3.H5"`` / ``"L3.H5@pos7"`` / ``"L2"``; ``base_values`` the patched run's own metric
        (0 with ``normalize``); ``meta`` holds ``grid_shape``, ``grid_axes``, ``grid_index``,
        ``clean_metric``, ``corrupted_metric``, ``n_forwards`` and ``cells_per_forward``.

    Raises
    ------
    InvalidInputError
        Inputs of different lengths without ``align`` (the message names the positions that
        would be compared), different numbers of rows, text instead of token ids.
    InvalidParameterError
        A metric that returns a non-scalar, an unknown site, layer or position.

    Examples
    --------
    >>> model, _ = wb.zoo.induction_model()        # 2 layers x 4 heads; layer 1 does induction
    >>> clean = wb.zoo.repeated_tokens(1, 10)        # [x, x]: the 2nd copy is predictable
    >>> corrupted = wb.zoo.repeated_tokens(1, 20, seed=1)[:, :20]   # 20 random tokens
    >>> def metric(logits):                          # mean log-prob of the 2nd copy's tokens
    ...     return logits[0, 10:-1].log_softmax(-1).gather(-1, clean[0, 11:, None]).mean()
    >>> exp = wb.activation_patching(model, clean, corrupted, metric, by="layer", normalize=True)
    >>> exp.values.round(3)             # a layer's whole clean residual stream restores all
    array([[1., 1.]])
    >>> exp = wb.activation_patching(model, clean, corrupted, metric, site="attn.head_out")
    >>> exp.meta["grid_shape"]          # (layers, heads)
    [2, 4]

    References
    ----------
    Meng et al. (2022), Locating and editing factual associations in GPT. Wang et al. (2022),
    Interpretability in the wild. Heimersheim & Nanda (2024), How to use and interpret
    activation patching, arXiv:2404.15255.
    """
    torch = E.torch_()
    anat = E.anatomy_of(model, anatomy)
    pair = E.pair_runs(clean, corrupted, direction, align, anat.vocab_size)
    pair.extra = E.no_kv_cache(model)
    grid = E.build_grid(anat, pair, site, by, layers, positions)
    points = [grid.points[layer] for layer in sorted(grid.points)]
    layer_order = sorted(grid.points)
    with E.eval_mode(model), torch.no_grad():
        src_logits, acts = E.capture(model, pair, pair.source, points)
        source_acts = {layer: acts[i] for i, layer in enumerate(layer_order)}
        other = E.metric_value(metric, src_logits)
        base = E.metric_value(metric, E.forward(model, pair.target, pair))
        per_batch = E.cells_per_batch(
            model, anat, pair.n_rows, E.shape_of(pair.target)[1], len(grid.cells), batch_size
        )
        values, n_fwd = E.run_cells(model, pair, grid, source_acts, metric, per_batch)
    return E.to_explanation(
        values,
        base,
        other,
        grid,
        pair,
        metric,
        method="activation_patching",
        params={"direction": direction, "align": align},
        normalize=normalize,
        n_evals=n_fwd + 2,
        meta={"n_forwards": n_fwd + 2, "cells_per_forward": per_batch},
    )


# ------------------------------------------------------------------ attribution patching


def attribution_patching(
    model: Any,
    clean: Any,
    corrupted: Any,
    metric: Callable[[Any], Any],
    *,
    site: str = "resid_pre",
    by: str | None = None,
    layers: Any = None,
    positions: Any = None,
    direction: str = "denoise",
    normalize: bool = False,
    align: str | None = None,
    compare: bool = False,
    batch_size: int | None = None,
    anatomy: Any = None,
) -> Explanation:
    """First-order estimate of :func:`activation_patching` from one backward pass.

    One forward pass of the run activations come from (clean for ``"denoise"``) records
    ``a_src``; one forward and one backward pass of the patched run record ``a`` and the
    metric's gradient ``g = dm/da`` at every site of the grid. A cell's estimated effect is
    ``sum over its entries of (a_src - a) * g`` (summed over the batch, its positions, heads
    and the feature axis), the first-order Taylor term of patching it (Nanda 2023). It is
    exact for a metric linear in the activation and degrades where the model is far from
    linear between the runs (attention saturation, LayerNorm scale changes; Syed et al.
    2023).

    Parameters
    ----------
    model, clean, corrupted, metric, site, by, layers, positions, direction, align, anatomy
        As in :func:`activation_patching`; ``metric`` must return a differentiable 0-d
        tensor.
    normalize : bool, default False
        Report the estimated effect over ``other - base`` instead of the estimated metric.
    compare : bool, default False
        Also run the real activation patching on the same grid (batched, ``batch_size`` cells
        per forward) and store its values and the rank (Spearman) and linear (Pearson)
        correlations with the estimate in ``meta``.
    batch_size : int or None
        Cells per forward for ``compare`` (see :func:`activation_patching`).

    Returns
    -------
    Explanation
        As :func:`activation_patching`'s, with ``values`` the *estimated* metric after each
        patch (``base + estimated effect``), so both are read the same way. With ``compare``,
        ``meta`` holds ``activation_values`` (the real patched metrics, same order),
        ``spearman`` and ``pearson``.

    Raises
    ------
    InvalidInputError, InvalidParameterError
        As :func:`activation_patching`; also a metric that is not differentiable.

    Examples
    --------
    >>> model, _ = wb.zoo.induction_model()        # 2 layers x 4 heads; layer 1 does induction
    >>> clean = wb.zoo.repeated_tokens(1, 10)        # [x, x]: the 2nd copy is predictable
    >>> corrupted = wb.zoo.repeated_tokens(1, 20, seed=1)[:, :20]   # 20 random tokens
    >>> def metric(logits):                          # mean log-prob of the 2nd copy's tokens
    ...     return logits[0, 10:-1].log_softmax(-1).gather(-1, clean[0, 11:, None]).mean()
    >>> exp = wb.attribution_patching(model, clean, corrupted, metric, site="attn.head_out",
    ...                               compare=True)
    >>> exp.feature_names[4:]
    ['L1.H0', 'L1.H1', 'L1.H2', 'L1.H3']
    >>> exp.meta["spearman"] > 0.9      # ranks the heads as real patching does
    True

    Notes
    -----
    Cost: two forward passes and one backward pass whatever the grid's size (the backward
    computes gradients for the activations only, never for the parameters; the model's
    ``.grad`` fields are left untouched).

    References
    ----------
    Nanda, N. (2023). Attribution patching: activation patching at industrial scale.
    Syed, A., Rager, C., Conmy, A. (2023). Attribution patching outperforms automated circuit
    discovery. arXiv:2310.10348.
    """
    torch = E.torch_()
    anat = E.anatomy_of(model, anatomy)
    pair = E.pair_runs(clean, corrupted, direction, align, anat.vocab_size)
    pair.extra = E.no_kv_cache(model)
    grid = E.build_grid(anat, pair, site, by, layers, positions)
    layer_order = sorted(grid.points)
    points = [grid.points[layer] for layer in layer_order]
    with E.eval_mode(model):
        with torch.no_grad():
            src_logits, acts = E.capture(model, pair, pair.source, points)
        source_acts = {layer: acts[i] for i, layer in enumerate(layer_order)}
        other = E.metric_value(metric, src_logits)
        base, target_acts, grads = E.gradients(model, pair, points, metric)
        estimate = E.first_order(grid, pair, layer_order, source_acts, target_acts, grads)
        meta: dict[str, Any] = {"n_forwards": 2, "n_backwards": 1}
        if compare:
            per_batch = E.cells_per_batch(
                model, anat, pair.n_rows, E.shape_of(pair.target)[1], len(grid.cells), batch_size
            )
            with torch.no_grad():
                real, n_fwd = E.run_cells(model, pair, grid, source_acts, metric, per_batch)
            meta.update(E.agreement(estimate, np.asarray(real) - base))
            meta["activation_values"] = [float(v) for v in real]
            meta["compare_forwards"] = n_fwd
    return E.to_explanation(
        base + estimate,
        base,
        other,
        grid,
        pair,
        metric,
        method="attribution_patching",
        params={"direction": direction, "align": align, "compare": compare},
        normalize=normalize,
        n_evals=2,
        meta=meta,
    )


def path_patching(
    model: Any,
    clean: Any,
    corrupted: Any,
    metric: Callable[[Any], Any],
    *,
    senders: Any = None,
    receivers: Any = "logits",
    sweep: bool | None = None,
    positions: Any = None,
    direction: str = "noise",
    normalize: bool = False,
    align: str | None = None,
    batch_size: int | None = None,
    anatomy: Any = None,
) -> Explanation:
    """Patch the paths from sender heads to receiver heads' queries, keys or values alone.

    With ``direction="noise"`` (Wang et al. 2022): (1) run the clean input with the sender
    heads' outputs taken from the corrupted run and every other head's output frozen to its
    clean value (MLPs and norms recompute), and record the receivers' query, key or value
    vectors; (2) run the clean input again with only those receiver vectors replaced by the
    recorded ones, and evaluate ``metric``. Only the effect that travels from the senders to
    the receivers directly or through MLPs reaches the metric. With ``receivers="logits"``
    step (1)'s logits are evaluated: the senders' effect on the output through no other head.
    ``direction="denoise"`` swaps the roles of the runs.

    Parameters
    ----------
    model, clean, corrupted, metric, align, anatomy
        As in :func:`activation_patching`.
    senders : list of (layer, head), or None
        Heads whose output is patched. None sweeps every head before the receivers' last
        layer, one at a time (every head for the logits).
    receivers : "logits" or list of (layer, head, "q" | "k" | "v")
        Heads whose query, key or value input receives the senders' effect (``k``/``v``
        heads index key-value heads on grouped-query models).
    sweep : bool or None
        Patch each sender on its own (one cell each) instead of all together (one cell).
        Default: True when ``senders`` is None, False otherwise.
    positions : sequence of int or None
        Positions of the receivers' vectors that are replaced (default all).
    direction : {"noise", "denoise"}, default "noise"
        The run that is measured is the clean one ("noise", as in Wang et al.) or the
        corrupted one.
    normalize, batch_size
        As in :func:`activation_patching` (``batch_size`` counts sender cells per forward).

    Returns
    -------
    Explanation
        Players ``"L3.H5"`` (one per sender, in a layer x head grid for the default sweep) or
        one player ``"L0.H1+L0.H3"`` for senders patched together; values the metric after
        path patching, base values the measured run's own metric. ``meta["receivers"]`` lists
        the receivers.

    Raises
    ------
    InvalidInputError
        As :func:`activation_patching`.
    InvalidParameterError
        Unknown senders or receivers, receivers all in layer 0, senders not before the
        receivers, a metric that returns a non-scalar.

    Examples
    --------
    >>> model, _ = wb.zoo.induction_model()        # 2 layers x 4 heads; layer 1 does induction
    >>> clean = wb.zoo.repeated_tokens(1, 10)        # [x, x]: the 2nd copy is predictable
    >>> corrupted = wb.zoo.repeated_tokens(1, 20, seed=1)[:, :20]   # 20 random tokens
    >>> def metric(logits):                          # mean log-prob of the 2nd copy's tokens
    ...     return logits[0, 10:-1].log_softmax(-1).gather(-1, clean[0, 11:, None]).mean()
    >>> exp = wb.path_patching(model, clean, corrupted, metric, normalize=True)
    >>> exp.meta["grid_shape"]          # every head's direct path to the logits
    [2, 4]
    >>> bool(exp.values[0, 4:].min() > exp.values[0, :4].max())   # layer 1 carries it
    True

    References
    ----------
    Wang, K. et al. (2022). Interpretability in the wild: a circuit for indirect object
    identification in GPT-2 small, section 3.1 and appendix B. Goldowsky-Dill, N. et al.
    (2023). Localizing model behavior with path patching. arXiv:2304.05969.
    """
    torch = E.torch_()
    anat = E.anatomy_of(model, anatomy)
    pair = E.pair_runs(clean, corrupted, direction, align, anat.vocab_size)
    pair.extra = E.no_kv_cache(model)
    recv = E.parse_receivers(anat, receivers)
    limit = anat.n_layers if recv is None else max(r[0] for r in recv)
    if limit == 0:
        raise InvalidParameterError(
            "every receiver is in layer 0, where no head can send to it; pick receivers in "
            "later layers."
        )
    sender_list = E.parse_senders(anat, senders, limit)
    if sweep is None:
        sweep = senders is None
    groups = [[s] for s in sender_list] if sweep else [sender_list]
    names = ["+".join(f"L{lay}.H{h}" for lay, h in g) for g in groups]
    if senders is None:
        layers_used = sorted({lay for lay, _ in sender_list})
        shape, axes = [len(layers_used), anat.n_heads], ["layer", "head"]
        index = [layers_used, list(range(anat.n_heads))]
    else:
        shape, axes, index = [len(groups)], ["sender"], [list(range(len(groups)))]
    pt = E.shape_of(pair.target)[1]
    recv_pos = E.index_list(positions, pt, "positions")

    freeze_layers = list(range(limit if recv is not None else anat.n_layers))
    head_points = {layer: E.site_point(anat, "attn.head_out", layer) for layer in freeze_layers}
    recv_points = (
        {}
        if recv is None
        else {(layer, part): E.site_point(anat, f"attn.{part}", layer) for layer, _, part in recv}
    )
    with E.eval_mode(model), torch.no_grad():
        frozen_points = [head_points[x] for x in freeze_layers]
        logits, base_heads = E.capture(model, pair, pair.target, frozen_points)
        base = E.metric_value(metric, logits)
        src_logits, src_heads = E.capture(model, pair, pair.source, frozen_points)
        other = E.metric_value(metric, src_logits)
        base_heads = {layer: base_heads[i] for i, layer in enumerate(freeze_layers)}
        src_heads = {layer: src_heads[i] for i, layer in enumerate(freeze_layers)}
        per_batch = E.cells_per_batch(model, anat, pair.n_rows, pt, len(groups), batch_size)
        values, n_fwd = E.run_paths(
            model, pair, groups, head_points, recv, recv_points, recv_pos, metric, per_batch,
            base_heads=base_heads, src_heads=src_heads,
        )  # fmt: skip

    grid = E.Grid(
        "attn.head_out",
        "sender",
        [
            E.Cell(g[0][0], tuple(pair.window), g[0][1], n)
            for g, n in zip(groups, names, strict=True)
        ],
        shape,
        axes,
        index,
        head_points,
    )
    meta = {
        "receivers": "logits" if recv is None else [list(r) for r in recv],
        "senders": [[list(s) for s in g] for g in groups],
        "receiver_positions": recv_pos,
        "n_forwards": n_fwd + 2,
        "cells_per_forward": per_batch,
    }
    return E.to_explanation(
        values,
        base,
        other,
        grid,
        pair,
        metric,
        method="path_patching",
        params={"direction": direction, "align": align, "sweep": bool(sweep)},
        normalize=normalize,
        n_evals=n_fwd + 2,
        meta=meta,
    )


# ------------------------------------------------------------------ reading the grid


def patching_grid(exp: Explanation) -> Any:
    """The values of a patching Explanation as a labelled DataFrame of its grid.

    Parameters
    ----------
    exp : Explanation
        A result of :func:`activation_patching`, :func:`attribution_patching` or
        :func:`path_patching`.

    Returns
    -------
    pandas.DataFrame
        Layers x positions (``"pos7"``) or layers x heads (``"H5"``); a layer x position x head
        grid has a (layer, position) row index and head columns; a one-axis grid is one column.
    """
    import pandas as pd

    shape = exp.meta.get("grid_shape")
    axes = exp.meta.get("grid_axes")
    index = exp.meta.get("grid_index")
    if shape is None or axes is None or index is None:
        raise InvalidParameterError(
            "this Explanation has no patching grid (meta['grid_shape']); pass the result of "
            "activation_patching, attribution_patching or path_patching."
        )
    values = np.asarray(exp.values, dtype=float)[0].reshape(shape)
    labels = {
        "layer": lambda i: f"L{i}",
        "position": lambda i: f"pos{i}",
        "head": lambda i: f"H{i}",
    }

    def names(axis: int) -> list[str]:
        return [labels.get(axes[axis], str)(i) for i in index[axis]]

    if len(shape) == 1:
        return pd.DataFrame(
            {exp.output_names[0] if exp.output_names else "value": values},
            index=list(exp.feature_names),
        )
    if len(shape) == 2:
        return pd.DataFrame(values, index=names(0), columns=names(1))
    rows = pd.MultiIndex.from_product([names(0), names(1)], names=axes[:2])
    return pd.DataFrame(values.reshape(-1, shape[2]), index=rows, columns=names(2))
