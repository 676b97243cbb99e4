"""The engine of :mod:`whybox.internals.patching`: inputs, grids and batched patched runs.

Private: the public functions and their documentation are in :mod:`whybox.internals.patching`.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from whybox.errors import InvalidInputError, InvalidParameterError, UnsupportedModelError
from whybox.explanation import Explanation
from whybox.internals import hooks

#: Sites with one vector per position (grids layer x position or per layer).
VECTOR_SITES = ("resid_pre", "resid_mid", "resid_post", "attn.out", "mlp.out", "mlp.post")
#: Sites split by heads (grids layer x head, layer x position x head, ...).
HEAD_SITES = ("attn.head_out", "attn.q", "attn.k", "attn.v")
BY = ("pos", "head", "head_pos", "layer")
#: Bytes of activations one batched forward may hold when ``batch_size`` is None.
DEFAULT_BATCH_BYTES = 2**30
#: Tokens one batched forward holds on a CPU when ``batch_size`` is None: measured on a
#: 6-layer d_model 256 GPT-2, the time per token is flat up to about 4096 tokens and 1.5x
#: beyond (cache misses and page faults of the larger intermediates).
CPU_BATCH_TOKENS = 4096


def torch_() -> Any:
    return hooks.require_torch("activation patching")


def as_inputs(x: Any, name: str) -> dict[str, Any]:
    """``x`` as a dict of model keyword tensors with a batch axis (token ids -> input_ids)."""
    torch = torch_()
    if isinstance(x, str) or (
        isinstance(x, Sequence) and len(x) > 0 and all(isinstance(s, str) for s in x)
    ):
        raise InvalidInputError(
            f"{name} is text; patching needs token ids. Tokenize it first, e.g. "
            f"tokenizer({name}, return_tensors='pt')."
        )
    if isinstance(x, Mapping):
        # tensors and array-likes get a batch axis; flags such as output_attentions pass as given
        out = {
            k: v if isinstance(v, (bool, str)) else torch.as_tensor(v)
            for k, v in x.items()
            if v is not None
        }
    else:
        out = {"input_ids": torch.as_tensor(x)}
    if not any(isinstance(v, torch.Tensor) for v in out.values()):
        raise InvalidInputError(f"{name} is empty: pass token ids of shape (batch, pos).")
    for key, value in out.items():
        if not isinstance(value, torch.Tensor):
            continue
        if value.ndim == 1:
            out[key] = value = value[None]
        if value.ndim < 2 or value.shape[0] == 0 or value.shape[1] == 0:
            raise InvalidInputError(
                f"{name}[{key!r}] has shape {tuple(value.shape)}; expected (batch, pos) with "
                "at least one row and one token."
            )
    return out


def shape_of(inputs: dict[str, Any]) -> tuple[int, int]:
    """(rows, positions) of the inputs: of input_ids, else of the first tensor."""
    first = inputs.get("input_ids")
    if first is None:
        first = next(v for v in inputs.values() if hasattr(v, "shape"))
    return int(first.shape[0]), int(first.shape[1])


def repeat_rows(inputs: dict[str, Any], n: int) -> dict[str, Any]:
    """Inputs stacked ``n`` times along the batch axis (cell-major: rows i*B..(i+1)*B-1)."""
    if n == 1:
        return inputs
    return {
        k: v.repeat(n, *([1] * (v.ndim - 1))) if hasattr(v, "repeat") else v
        for k, v in inputs.items()
    }


def metric_value(metric: Callable[[Any], Any], logits: Any, *, grad: bool = False) -> Any:
    """The metric on ``logits`` as a 0-d tensor (``grad``) or a float; non-scalars refused."""
    torch = torch_()
    value = metric(logits)
    if isinstance(value, torch.Tensor):
        if value.ndim != 0:
            raise InvalidParameterError(
                f"metric returned a tensor of shape {tuple(value.shape)}; it must return a "
                "scalar (a 0-d tensor) for the whole batch, e.g. "
                "(logits[:, -1, correct] - logits[:, -1, wrong]).mean(). Reduce over the batch "
                "and positions inside the metric."
            )
        if grad:
            if not value.requires_grad:
                raise InvalidParameterError(
                    "metric returned a tensor without a gradient; attribution patching "
                    "differentiates it with respect to the activations. Compute it from the "
                    "logits with torch operations (no .item(), .detach() or numpy)."
                )
            return value
        return float(value.detach().double().cpu())
    if grad:
        raise InvalidParameterError(
            f"metric returned a {type(value).__name__}; attribution patching needs a 0-d "
            "torch tensor computed from the logits so that it can be differentiated."
        )
    if isinstance(value, numbers.Real) or (isinstance(value, np.ndarray) and value.ndim == 0):
        return float(value)
    shape = getattr(value, "shape", None)
    raise InvalidParameterError(
        f"metric returned {type(value).__name__}"
        + (f" of shape {tuple(shape)}" if shape is not None else "")
        + "; it must return a scalar (a 0-d tensor or a float) for the whole batch, e.g. "
        "(logits[:, -1, correct] - logits[:, -1, wrong]).mean()."
    )


def metric_name(metric: Any) -> str:
    name = getattr(metric, "__name__", None) or type(metric).__name__
    return "metric" if name == "<lambda>" else str(name)


@contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """Run in eval mode (dropout off), warning and restoring the modes when it was training."""
    modes = [(m, m.training) for m in model.modules()]
    if any(mode for _, mode in modes):
        warnings.warn(
            f"the model ({type(model).__name__}) is in training mode; patching runs it in eval "
            "mode (dropout off) so that clean and corrupted runs are deterministic, and "
            "restores training mode afterwards. Call model.eval() to silence this.",
            UserWarning,
            stacklevel=4,
        )
        model.eval()
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode


def anatomy_of(model: Any, anatomy: Any) -> Any:
    torch = torch_()
    if not isinstance(model, torch.nn.Module):
        raise UnsupportedModelError(
            f"patching needs a torch.nn.Module (a transformers model), got {type(model).__name__}."
        )
    from whybox.internals.anatomy import Anatomy

    return Anatomy.for_model(model, anatomy)


@dataclass(frozen=True)
class Cell:
    """One patch: ``layer``, target positions ``pos`` (a tuple), ``head`` (None = all)."""

    layer: int
    pos: tuple[int, ...]
    head: int | None
    name: str


@dataclass
class Pair:
    """The two runs of a patching experiment, lined up position by position."""

    clean: dict[str, Any]
    corrupted: dict[str, Any]
    target: dict[str, Any]  # the run that is patched
    source: dict[str, Any]  # the run activations come from
    n_rows: int
    window: tuple[int, ...]  # target positions that have a counterpart in the source
    offset: int  # source position = target position + offset
    vocab_size: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keywords for every forward


def forward(model: Any, inputs: dict[str, Any], pair: Pair, *, grad: bool = False) -> Any:
    """The model's logits on ``inputs`` (device and vocabulary checked by hooks.forward)."""
    return hooks.forward(model, inputs, grad=grad, vocab_size=pair.vocab_size, **pair.extra)


# ------------------------------------------------------------------ the grid


def pair_runs(
    clean: Any, corrupted: Any, direction: str, align: str | None, vocab_size: int | None = None
) -> Pair:
    if direction not in ("denoise", "noise"):
        raise InvalidParameterError(
            f"direction must be 'denoise' (patch clean activations into the corrupted run) or "
            f"'noise' (patch corrupted activations into the clean run), got {direction!r}."
        )
    if align not in (None, "left", "right"):
        raise InvalidParameterError(
            f"align must be None (equal lengths), 'left' or 'right', got {align!r}."
        )
    c = as_inputs(clean, "clean")
    k = as_inputs(corrupted, "corrupted")
    (bc, pc), (bk, pk) = shape_of(c), shape_of(k)
    if bc != bk:
        raise InvalidInputError(
            f"clean has {bc} rows and corrupted has {bk}; they are paired row by row, so pass "
            "the same number of prompts in both."
        )
    target, source = (k, c) if direction == "denoise" else (c, k)
    pt, ps = shape_of(target)[1], shape_of(source)[1]
    if pc != pk and align is None:
        n = min(pc, pk)
        raise InvalidInputError(
            f"clean has {pc} tokens and corrupted has {pk}; patching compares them position "
            f"by position (position i of one run is patched into position i of the other), "
            "so both must have the same length. Make the prompts tokenize to the same length "
            f"(pad or reword them), or pass align='left' to compare positions 0..{n - 1} of "
            f"both, or align='right' to compare the last {n} positions of each (clean "
            f"{pc - n}..{pc - 1} with corrupted {pk - n}..{pk - 1})."
        )
    n = min(pt, ps)
    if align == "right":
        window, offset = tuple(range(pt - n, pt)), ps - pt
    else:
        window, offset = tuple(range(n)), 0
    return Pair(c, k, target, source, bc, window, offset, vocab_size)


def no_kv_cache(model: Any) -> dict[str, Any]:
    """``{"use_cache": False}`` for a model whose forward takes it: patched runs never
    generate, and a key-value cache of every batched row would only cost memory."""
    import inspect

    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return {}
    return {"use_cache": False} if "use_cache" in params else {}


def index_list(values: Any, size: int, what: str, allowed: Sequence[int] | None = None) -> list:
    """Validated, de-duplicated indices (negative ones counted from the end)."""
    if values is None:
        return list(allowed if allowed is not None else range(size))
    if isinstance(values, (numbers.Integral, np.integer)):
        values = [values]
    out: list[int] = []
    for v in values:
        if not isinstance(v, (numbers.Integral, np.integer)) or isinstance(v, bool):
            raise InvalidParameterError(f"{what} must be integers, got {v!r}.")
        i = int(v) + size if int(v) < 0 else int(v)
        if not 0 <= i < size or (allowed is not None and i not in allowed):
            valid = (
                f"{allowed[0]}..{allowed[-1]}" if allowed else f"0..{size - 1}"
            )  # allowed is a contiguous window
            raise InvalidParameterError(
                f"{what} {int(v)} is out of range; valid: {valid} (negative values count from "
                "the end)."
            )
        if i not in out:
            out.append(i)
    if not out:
        raise InvalidParameterError(f"{what} is empty: pass at least one index or None for all.")
    return out


@dataclass
class Grid:
    site: str
    by: str
    cells: list[Cell]
    shape: list[int]
    axes: list[str]
    index: list[list[int]]
    points: dict[int, Any]  # layer -> HookPoint


def site_point(anat: Any, site: str, layer: int) -> Any:
    return anat.point(f"blocks.{layer}.{site}")


def build_grid(
    anat: Any, pair: Pair, site: str, by: str | None, layers: Any, positions: Any
) -> Grid:
    if not isinstance(site, str):
        raise InvalidParameterError(
            f"site must be a str such as 'resid_pre' or 'attn.head_out', got {site!r}."
        )
    if site.startswith("blocks."):
        raise InvalidParameterError(
            f"site names the per-layer part only ('resid_pre', not {site!r}); pick the layers "
            "with layers=[...]."
        )
    if site in ("attn.pattern", "pattern"):
        raise InvalidParameterError(
            "site 'attn.pattern' cannot be patched: the attention module returns its pattern "
            "as a copy beside its output, so replacing it would not change the forward pass. "
            "Patch the heads' outputs ('attn.head_out') or their queries, keys or values "
            "('attn.q', 'attn.k', 'attn.v') instead."
        )
    layer_list = index_list(layers, anat.n_layers, "layers")
    points = {layer: site_point(anat, site, layer) for layer in layer_list}
    heads = points[layer_list[0]].heads
    if by is None:
        by = "head" if heads else "pos"
    if by not in BY:
        raise InvalidParameterError(f"by must be one of {list(BY)} or None, got {by!r}.")
    if by in ("head", "head_pos") and not heads:
        raise InvalidParameterError(
            f"by={by!r} needs a site split by heads ({', '.join(HEAD_SITES)}); {site!r} has "
            "one vector per position: use by='pos' or by='layer'."
        )
    window = pair.window
    pt = shape_of(pair.target)[1]
    pos_list = index_list(positions, pt, "positions", allowed=window)
    cells: list[Cell] = []
    if by == "pos":
        for layer in layer_list:
            cells += [Cell(layer, (p,), None, f"L{layer}@pos{p}") for p in pos_list]
        shape, axes, index = [len(layer_list), len(pos_list)], ["layer", "position"], [pos_list]
    elif by == "layer":
        cells = [Cell(layer, tuple(pos_list), None, f"L{layer}") for layer in layer_list]
        shape, axes, index = [len(layer_list)], ["layer"], []
    elif by == "head":
        cells = [
            Cell(layer, tuple(pos_list), h, f"L{layer}.H{h}")
            for layer in layer_list
            for h in range(heads)
        ]
        shape, axes, index = [len(layer_list), heads], ["layer", "head"], [list(range(heads))]
    else:
        cells = [
            Cell(layer, (p,), h, f"L{layer}.H{h}@pos{p}")
            for layer in layer_list
            for p in pos_list
            for h in range(heads)
        ]
        shape = [len(layer_list), len(pos_list), heads]
        axes, index = ["layer", "position", "head"], [pos_list, list(range(heads))]
    return Grid(site, by, cells, shape, axes, [layer_list, *index], points)


# ------------------------------------------------------------------ running patched batches


def capture(
    model: Any, pair: Pair, inputs: dict[str, Any], points: Sequence[Any]
) -> tuple[Any, dict]:
    """One forward of ``inputs``; logits and a detached copy of each point's view."""
    store: dict[int, Any] = {}

    def reader(i: int) -> Callable[[Any], None]:
        def fn(view: Any) -> None:
            store[i] = view.detach().clone()

        return fn

    with hooks.on_points(model, [(p, reader(i)) for i, p in enumerate(points)]):
        logits = forward(model, inputs, pair)
    return logits, store


def cells_per_batch(
    model: Any, anat: Any, n_rows: int, n_pos: int, n_cells: int, batch_size: Any
) -> int:
    """How many cells share one forward: ``batch_size``, or as many as fit in
    DEFAULT_BATCH_BYTES of activations (on a CPU also at most CPU_BATCH_TOKENS tokens, past
    which a forward's time per token grows instead of shrinking)."""
    if batch_size is not None:
        if (
            not isinstance(batch_size, (numbers.Integral, np.integer))
            or isinstance(batch_size, bool)
            or batch_size < 1
        ):
            raise InvalidParameterError(
                f"batch_size must be a positive int (patched cells per forward pass) or None, "
                f"got {batch_size!r}."
            )
        return int(min(batch_size, n_cells))
    d = int(anat.d_model or 1)
    heads = int(anat.n_heads or 1)
    vocab = int(getattr(anat, "vocab_size", None) or d)
    # one row of a no-grad forward holds about one block's intermediates and the logits
    per_row = 4 * n_pos * (16 * d + 3 * heads * n_pos + 2 * vocab)
    rows = DEFAULT_BATCH_BYTES // max(1, per_row)
    if hooks.model_device(model).type == "cpu":
        rows = min(rows, CPU_BATCH_TOKENS // max(1, n_pos))
    return int(max(1, min(n_cells, rows // max(1, n_rows))))


def patch_into(out: Any, rows: slice, cell: Cell, src: Any, offset: int) -> None:
    torch = torch_()
    tpos = torch.as_tensor(cell.pos, device=out.device)
    spos = tpos + offset
    if cell.head is None:
        out[rows, tpos] = src[:, spos].to(out.dtype)
    else:
        out[rows, tpos, cell.head] = src[:, spos, cell.head].to(out.dtype)


def run_cells(
    model: Any,
    pair: Pair,
    grid: Grid,
    source_acts: dict[int, Any],
    metric: Callable[[Any], Any],
    per_batch: int,
) -> tuple[list[float], int]:
    """The metric after each cell's patch, ``per_batch`` cells per forward pass."""
    values: list[float] = []
    n_forwards = 0
    b = pair.n_rows
    cells = grid.cells
    for start in range(0, len(cells), per_batch):
        chunk = cells[start : start + per_batch]
        by_layer: dict[int, list[tuple[int, Cell]]] = {}
        for i, cell in enumerate(chunk):
            by_layer.setdefault(cell.layer, []).append((i, cell))

        def writer(layer: int, by_layer: dict = by_layer) -> Callable[[Any], Any]:
            def fn(view: Any) -> Any:
                out = view.clone()
                for i, cell in by_layer[layer]:
                    patch_into(
                        out, slice(i * b, (i + 1) * b), cell, source_acts[layer], pair.offset
                    )
                return out

            return fn

        pairs = [(grid.points[layer], writer(layer)) for layer in by_layer]
        with hooks.on_points(model, pairs):
            logits = forward(model, repeat_rows(pair.target, len(chunk)), pair)
        n_forwards += 1
        values += [metric_value(metric, logits[i * b : (i + 1) * b]) for i in range(len(chunk))]
    return values, n_forwards


def to_explanation(
    values: Sequence[float],
    base: float,
    other: float,
    grid: Grid,
    pair: Pair,
    metric: Any,
    *,
    method: str,
    params: dict[str, Any],
    normalize: bool,
    n_evals: int,
    meta: dict[str, Any],
) -> Explanation:
    vals = np.asarray(values, dtype=float)
    raw_base = base
    if normalize:
        gap = other - base
        if gap == 0 or not math.isfinite(gap):
            raise InvalidInputError(
                f"normalize=True divides by the gap between the two runs' metrics, which is "
                f"{gap!r} (the patched run's metric is {base!r}, the other run's {other!r}): "
                "the same metric means the corruption does not change it. Pick inputs that "
                "differ in it or pass normalize=False."
            )
        vals = (vals - base) / gap
        base = 0.0
    direction = params["direction"]
    clean_metric, corrupted_metric = (
        (other, raw_base) if direction == "denoise" else (raw_base, other)
    )
    info = {
        "grid_shape": list(grid.shape),
        "grid_axes": list(grid.axes),
        "grid_index": [list(ix) for ix in grid.index],
        "clean_metric": clean_metric,
        "corrupted_metric": corrupted_metric,
        "compared_positions": list(pair.window),
        "position_offset": pair.offset,
        "clean_ids": ids_of(pair.clean),
        "corrupted_ids": ids_of(pair.corrupted),
    }
    info.update(meta)
    return Explanation(
        vals[None, :],
        base_values=[base],
        feature_names=[c.name for c in grid.cells],
        output_names=[metric_name(metric)],
        method=method,
        params={"site": grid.site, "by": grid.by, "normalize": normalize, **params},
        n_evals=n_evals,
        meta=info,
    )


def ids_of(inputs: dict[str, Any]) -> list | None:
    ids = inputs.get("input_ids")
    return None if ids is None else ids.detach().cpu().tolist()


# ------------------------------------------------------------------ activation patching


def gradients(
    model: Any, pair: Pair, points: Sequence[Any], metric: Callable[[Any], Any]
) -> tuple[float, dict[int, Any], dict[int, Any]]:
    """One forward and backward pass: the metric, each point's view and its gradient."""
    torch = torch_()
    store: dict[int, Any] = {}

    def tap(i: int) -> Callable[[Any], Any]:
        def fn(view: Any) -> Any:
            # a copy that the rest of the pass reads, so the gradient is taken with respect
            # to it; a leaf when nothing upstream needs gradients (frozen parameters)
            x = view.clone() if view.requires_grad else view.detach().clone().requires_grad_()
            store[i] = x
            return x

        return fn

    with torch.enable_grad():
        with hooks.on_points(model, [(p, tap(i)) for i, p in enumerate(points)]):
            logits = forward(model, pair.target, pair, grad=True)
        value = metric_value(metric, logits, grad=True)
        order = sorted(store)
        missing = [points[i].name for i in range(len(points)) if i not in store]
        if missing:
            raise InvalidParameterError(
                f"the hook points {missing} did not run in the forward pass; patching needs "
                "every layer's site to be computed."
            )
        grads = torch.autograd.grad(value, [store[i] for i in order], allow_unused=True)
    acts = {i: store[i].detach() for i in order}
    gmap = {
        i: (torch.zeros_like(acts[i]) if g is None else g.detach())
        for i, g in zip(order, grads, strict=True)
    }
    return float(value.detach().double().cpu()), acts, gmap


def first_order(
    grid: Grid,
    pair: Pair,
    layer_order: Sequence[int],
    source_acts: dict[int, Any],
    target_acts: dict[int, Any],
    grads: dict[int, Any],
) -> np.ndarray:
    """Each cell's ``sum (a_src - a) * g`` over its rows, positions, heads and features."""
    torch = torch_()
    first = pair.window[0]
    per_layer: dict[int, np.ndarray] = {}
    for i, layer in enumerate(layer_order):
        tgt, g = target_acts[i], grads[i]
        tpos = torch.as_tensor(pair.window, device=tgt.device)
        src = source_acts[layer].to(tgt.device)
        delta = src[:, tpos + pair.offset].double() - tgt[:, tpos].double()
        # (n_window,) for vector sites, (n_window, heads) for head sites
        per_layer[layer] = (delta * g[:, tpos].double()).sum(-1).sum(0).cpu().numpy()
    blocks = []
    for layer in grid.index[0]:
        first_cell = next(c for c in grid.cells if c.layer == layer)
        positions = grid.index[1] if grid.by in ("pos", "head_pos") else first_cell.pos
        block = per_layer[layer][[p - first for p in positions]]
        if grid.by == "pos":
            block = block.reshape(len(positions), -1).sum(1)  # all heads of a head site
        elif grid.by == "layer":
            block = block.sum(keepdims=True)
        elif grid.by == "head":
            block = block.sum(0)
        blocks.append(block.ravel())  # head_pos: (positions, heads) row-major, as the cells
    return np.concatenate(blocks)


def agreement(estimate: np.ndarray, real: np.ndarray) -> dict[str, Any]:
    """Spearman and Pearson correlations of the estimated and the real effects."""
    from scipy import stats

    if len(estimate) < 2 or np.ptp(estimate) == 0 or np.ptp(real) == 0:
        return {"spearman": None, "pearson": None}
    return {
        "spearman": float(stats.spearmanr(estimate, real).statistic),
        "pearson": float(stats.pearsonr(estimate, real).statistic),
    }


# ------------------------------------------------------------------ path patching


def parse_receivers(anat: Any, receivers: Any) -> list[tuple[int, int, str]] | None:
    """Validated receivers ``[(layer, head, "q"|"k"|"v"), ...]``; None for the logits."""
    if isinstance(receivers, str):
        if receivers == "logits":
            return None
        raise InvalidParameterError(
            f"receivers must be 'logits' or a list of (layer, head, 'q'|'k'|'v') tuples, got "
            f"{receivers!r}."
        )
    items = list(receivers)
    if items and not isinstance(items[0], (tuple, list)):
        items = [tuple(items)]
    if not items:
        raise InvalidParameterError("receivers is empty: name at least one (layer, head, 'q').")
    out: list[tuple[int, int, str]] = []
    for item in items:
        if len(item) != 3 or item[2] not in ("q", "k", "v"):
            raise InvalidParameterError(
                f"receiver {tuple(item)!r} must be (layer, head, 'q'|'k'|'v'): the input of "
                "that head's query, key or value projection."
            )
        layer = index_list([item[0]], anat.n_layers, "receiver layer")[0]
        n_heads = anat.n_heads if item[2] == "q" else (anat.n_kv_heads or anat.n_heads)
        what = "receiver head" if item[2] == "q" else "receiver key-value head"
        head = index_list([item[1]], n_heads, what)[0]
        out.append((layer, head, item[2]))
    return out


def parse_senders(anat: Any, senders: Any, limit: int) -> list[tuple[int, int]]:
    if senders is None:
        return [(layer, h) for layer in range(limit) for h in range(anat.n_heads)]
    items = list(senders)
    if items and not isinstance(items[0], (tuple, list)):
        items = [tuple(items)]
    if not items:
        raise InvalidParameterError("senders is empty: name at least one (layer, head).")
    out: list[tuple[int, int]] = []
    for item in items:
        if len(item) != 2:
            raise InvalidParameterError(f"sender {tuple(item)!r} must be (layer, head).")
        layer = index_list([item[0]], anat.n_layers, "sender layer")[0]
        head = index_list([item[1]], anat.n_heads, "sender head")[0]
        if layer >= limit:
            raise InvalidParameterError(
                f"sender L{layer}.H{head} is not before any receiver (the receivers' last layer "
                f"is {limit - 1}), so no path leads from it to them. Pick senders in layers "
                f"0..{limit - 1}."
            )
        if (layer, head) not in out:
            out.append((layer, head))
    return out


def run_paths(
    model: Any,
    pair: Pair,
    groups: list[list[tuple[int, int]]],
    head_points: dict[int, Any],
    recv: list[tuple[int, int, str]] | None,
    recv_points: dict[tuple[int, str], Any],
    recv_pos: list[int],
    metric: Callable[[Any], Any],
    per_batch: int,
    *,
    base_heads: dict[int, Any],
    src_heads: dict[int, Any],
) -> tuple[list[float], int]:
    """Path patching of each sender group, ``per_batch`` groups per forward pass.

    Pass 1 runs the measured input with every head's output frozen to the measured run's
    (``base_heads``) except the group's senders, which take the other run's (``src_heads``),
    and records the receivers' q/k/v views; pass 2 reruns it with only those views replaced
    (skipped when the receivers are the logits: pass 1's logits are the answer).
    """
    torch = torch_()
    b = pair.n_rows
    window = torch.as_tensor(pair.window)
    rpos = torch.as_tensor(recv_pos)
    values: list[float] = []
    n_fwd = 0

    def frozen(layer: int, chunk: list[list[tuple[int, int]]]) -> Callable[[Any], Any]:
        def fn(view: Any) -> Any:
            out = base_heads[layer].to(view.dtype).repeat(len(chunk), 1, 1, 1)
            for i, group in enumerate(chunk):
                for h in [h for lay, h in group if lay == layer]:
                    src = src_heads[layer][:, window + pair.offset, h]
                    out[i * b : (i + 1) * b, window, h] = src.to(out.dtype)
            return out

        return fn

    def record(key: tuple[int, str], store: dict) -> Callable[[Any], None]:
        def fn(view: Any) -> None:
            store[key] = view.detach().clone()

        return fn

    def receive(key: tuple[int, str], store: dict) -> Callable[[Any], Any]:
        heads = [h for layer, h, part in recv or () if (layer, part) == key]

        def fn(view: Any) -> Any:
            out = view.clone()
            for h in heads:
                out[:, rpos, h] = store[key][:, rpos, h].to(out.dtype)
            return out

        return fn

    for start in range(0, len(groups), per_batch):
        chunk = groups[start : start + per_batch]
        inputs = repeat_rows(pair.target, len(chunk))
        recorded: dict[tuple[int, str], Any] = {}
        taps = [(point, frozen(layer, chunk)) for layer, point in head_points.items()]
        taps += [(point, record(key, recorded)) for key, point in recv_points.items()]
        with hooks.on_points(model, taps):
            logits = forward(model, inputs, pair)
        n_fwd += 1
        if recv is not None:
            taps = [(point, receive(key, recorded)) for key, point in recv_points.items()]
            with hooks.on_points(model, taps):
                logits = forward(model, inputs, pair)
            n_fwd += 1
        values += [metric_value(metric, logits[i * b : (i + 1) * b]) for i in range(len(chunk))]
    return values, n_fwd
