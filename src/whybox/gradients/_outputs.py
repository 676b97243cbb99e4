"""Output and target selection of the gradient explainers.

What the forward returns (a tensor, a dict or Hugging Face ``ModelOutput``, a tuple with an
``output=`` selector) becomes the (m, k) matrix of outputs; NaN or infinite outputs raise
naming the rows; ``target=`` (an index, a name, a list, ``"all"`` or one output per row)
becomes a :class:`Targets`.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from whybox.errors import InvalidParameterError, ModelCallError
from whybox.explanation import PER_ROW_OUTPUT
from whybox.internals import hooks

__all__ = [
    "Targets",
    "as_matrix",
    "call_model",
    "check_finite",
    "check_output_selector",
    "forward",
    "output_scale",
    "resolve_targets",
    "select_output",
]


def torch_module() -> Any:
    """Import torch, or raise MissingDependencyError."""
    return hooks.require_torch("gradient explanations")


def check_output_selector(output: Any) -> Any:
    """``output=``: None, an int (element of a tuple output) or a str (key of a dict output)."""
    if output is None or isinstance(output, str):
        return output
    if isinstance(output, (bool, np.bool_)) or not isinstance(output, numbers.Integral):
        raise InvalidParameterError(
            f"output= selects the prediction in what the model's forward returns: an int "
            f"(element of a tuple, e.g. output=1 for (aux, logits)) or a str (key of a dict, "
            f"e.g. output='logits'); got {output!r} of type {type(output).__name__}."
        )
    return int(output)


def _describe_forward(out: Any) -> str:
    torch = torch_module()
    if isinstance(out, torch.Tensor):
        return f"tensor of shape {tuple(out.shape)}"
    return type(out).__name__


def select_output(out: Any, output: Any = None) -> tuple[Any, str]:
    """The prediction tensor in what a forward returned, and how it was found (in words).

    A tensor is used as it is; a dict or Hugging Face ``ModelOutput`` gives its ``"logits"``
    (or the key ``output``); a tuple or list needs ``output=`` the index of the prediction:
    whybox never guesses that element 0 is the prediction.
    """
    torch = torch_module()
    how = ""
    if isinstance(out, Mapping):
        keys = list(out.keys())
        key = "logits" if output is None else output
        if isinstance(key, int) and key not in out:
            if not -len(keys) <= key < len(keys):
                raise InvalidParameterError(
                    f"output={key} is out of range: the model returns a {type(out).__name__} "
                    f"with {len(keys)} entries {keys}. Pass output= one of these keys."
                )
            key = keys[key]
        if key not in out:
            raise InvalidParameterError(
                f"the model returns a {type(out).__name__} with keys {keys} and no {key!r}"
                + (
                    ": whybox explains a dict output's 'logits'. Pass output= the key of the "
                    "prediction to the explainer, e.g. output="
                    if output is None
                    else ". Pass output= one of its keys, e.g. output="
                )
                + f"{keys[0]!r}."
                if keys
                else f"the model returns an empty {type(out).__name__}; it has no prediction."
            )
        how = f"{key!r} of the forward's {type(out).__name__}"
        out = out[key]
    elif isinstance(out, (tuple, list)):
        if output is None:
            shapes = ", ".join(_describe_forward(o) for o in out)
            raise InvalidParameterError(
                f"the model returns a {type(out).__name__} of {len(out)} elements ({shapes}); "
                "whybox does not guess which one is the prediction. Pass output= its index "
                "to the explainer, e.g. wb.IntegratedGradients(model, output=1) for a forward "
                "returning (aux, logits)."
            )
        if isinstance(output, str):
            raise InvalidParameterError(
                f"output={output!r} is a key, but the model returns a {type(out).__name__} of "
                f"{len(out)} elements; pass output= an index between 0 and {len(out) - 1}."
            )
        if not -len(out) <= output < len(out):
            raise InvalidParameterError(
                f"output={output} is out of range: the model returns a {type(out).__name__} "
                f"of {len(out)} elements; pass an index between 0 and {len(out) - 1}."
            )
        how = f"element {output} of the forward's {type(out).__name__}"
        out = out[output]
    elif not isinstance(out, torch.Tensor) and hasattr(out, "logits") and output is None:
        how = f"'logits' of the forward's {type(out).__name__}"
        out = out.logits
    elif output is not None:
        raise InvalidParameterError(
            f"output={output!r} selects an element of a tuple or dict output, but the model "
            f"returns a {_describe_forward(out)}; pass output=None (the default)."
        )
    if not isinstance(out, torch.Tensor) or not (out.is_floating_point() or out.is_complex()):
        raise InvalidParameterError(
            f"the model's prediction is a {_describe_forward(out)}"
            + (f" of dtype {out.dtype}" if isinstance(out, torch.Tensor) else "")
            + ", not a floating-point tensor of outputs; pass output= the index or key of "
            "the prediction in what the forward returns."
        )
    return out, how


def forward(model: Any, x: Any) -> Any:
    """``model(x)`` as it returns it; an exception becomes a ModelCallError."""
    try:
        return model(x)
    except Exception as exc:
        raise ModelCallError(
            f"the model raised {type(exc).__name__}: {exc} on a batch of inputs of shape "
            f"{tuple(x.shape)}. Check that it accepts such inputs; the original error is "
            "chained above."
        ) from exc


def as_matrix(out: Any) -> Any:
    """Outputs (m, ...) as a (m, k) tensor."""
    if out.ndim == 1:
        return out[:, None]
    if out.ndim > 2:
        return out.reshape(out.shape[0], -1)
    return out


def call_model(model: Any, x: Any, output: Any = None) -> Any:
    """``model(x)`` as a (m, k) tensor; see :func:`select_output` for ``output``."""
    return as_matrix(select_output(forward(model, x), output)[0])


def _row_list(rows: Sequence[int]) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:10])
    return f"[{shown}{', ...' if len(rows) > 10 else ''}] ({len(rows)} row(s))"


def check_finite(t: Any, what: str, rows: Any = None, of: str = "the explained inputs") -> None:
    """Raise ModelCallError naming the rows where ``t`` (m, ...) has NaN or inf entries.

    ``rows`` gives the explained row of each of the m entries (default: their positions);
    ``of`` names what they are rows of.
    """
    torch = torch_module()
    bad = ~torch.isfinite(t.reshape(t.shape[0], -1)).all(dim=1)
    if not bool(bad.any()):
        return
    pos = np.flatnonzero(bad.cpu().numpy())
    ids = np.asarray(rows if rows is not None else np.arange(t.shape[0]))
    hit = np.unique(ids[pos]) if len(ids) == t.shape[0] else pos
    raise ModelCallError(
        f"the model returned NaN or infinite {what} for rows {_row_list(hit)} of {of}; "
        "attributions of such outputs are meaningless. Check those inputs "
        "and the model (e.g. a log of 0 or a division by zero), or leave those rows out."
    )


def output_scale(selected: np.ndarray) -> np.ndarray:
    """The output scale of the completeness warnings, per explained output.

    ``selected`` (n, T) are the explained outputs; the scale is their standard deviation over
    the rows (n > 1), or their largest absolute value when that is 0 or n == 1 (1 when every
    output is 0).
    """
    sel = np.asarray(selected, dtype=float).reshape(selected.shape[0], -1)
    scale = sel.std(axis=0) if sel.shape[0] > 1 else np.zeros(sel.shape[1])
    fallback = np.abs(sel).max(axis=0)
    scale = np.where(scale > 0, scale, fallback)
    return np.where(scale > 0, scale, 1.0)


@dataclass
class Targets:
    """Resolved output selection.

    ``index`` is an int64 tensor of shape (n, T): the output explained in column ``t`` for
    each row (per-example targets give T = 1 with different indices per row, and
    ``row_names`` the name of each row's output).
    """

    index: Any
    names: list[str]
    single: bool
    description: str
    record: Any
    row_names: list[str] | None = None


def _per_row_array(target: Any, torch: Any) -> np.ndarray | None:
    """A 1-D tensor / numpy array / pandas Series target as a numpy array (else None)."""
    if isinstance(target, torch.Tensor):
        return target.detach().cpu().numpy()
    if isinstance(target, np.ndarray):
        return target
    if type(target).__name__ == "Series" and hasattr(target, "to_numpy"):
        return np.asarray(target.to_numpy())
    return None


def resolve_targets(
    target: Any, n_outputs: int, n: int, device: Any, output_names: Sequence[Any] | None
) -> Targets:
    """Turn ``target`` into a :class:`Targets`.

    Accepted: None (the only output, or all outputs of a model with several), an int or
    output name, a list or tuple of them (several outputs, trailing axis), ``"all"``, or a
    1-D tensor / array / Series of length n of output indices or names (one output per
    example, as in Captum).
    """
    torch = torch_module()
    names = (
        [str(o) for o in output_names]
        if output_names is not None
        else ([f"output {j}" for j in range(n_outputs)])
    )
    if len(names) != n_outputs:
        raise InvalidParameterError(
            f"output_names has {len(names)} names but the model has {n_outputs} outputs; "
            "give one name per output."
        )

    def one(t: Any) -> int:
        if isinstance(t, np.generic):
            t = t.item()
        if isinstance(t, str):
            if t in names:
                return names.index(t)
            raise InvalidParameterError(
                f"unknown target {t!r}: the outputs are named {names}. Pass one of these "
                f"names or an output index between 0 and {n_outputs - 1}"
                + ("" if output_names is not None else " (or give output_names= to the explainer)")
                + "."
            )
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, numbers.Integral):
            raise InvalidParameterError(
                f"target must be an output index, an output name, a list of them, 'all' or "
                f"a tensor of one index per example; got {t!r} of type {type(t).__name__}."
            )
        if not -n_outputs <= int(t) < n_outputs:
            raise InvalidParameterError(
                f"target {int(t)} is out of range: the model has {n_outputs} outputs, so a "
                f"target index must be between 0 and {n_outputs - 1}."
            )
        return int(t) % n_outputs

    arr = _per_row_array(target, torch)
    if arr is not None:
        if arr.ndim == 0:
            target = arr.item()
        else:
            if arr.ndim != 1 or arr.shape[0] != n:
                raise InvalidParameterError(
                    f"a tensor, array or Series target gives one output per explained row: "
                    f"expected shape ({n},), got shape {arr.shape}. For several outputs of "
                    "every row pass a list, e.g. target=[0, 1]."
                )
            if arr.dtype.kind == "f":
                if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
                    raise InvalidParameterError(
                        "a per-row target holds output indices or names; got non-integer "
                        f"numbers (dtype {arr.dtype}). Pass integer indices, e.g. y.long()."
                    )
                arr = arr.astype(np.int64)
            idx = [one(t) for t in arr.tolist()]
            row_names = [names[i] for i in idx]
            return Targets(
                index=torch.as_tensor(idx, dtype=torch.int64, device=device)[:, None],
                names=[PER_ROW_OUTPUT],
                single=True,
                description="each row's own target output",
                record=row_names,
                row_names=row_names,
            )
    if target is None and n_outputs == 1:
        cols, single = [0], True
    elif target is None or (isinstance(target, str) and target == "all" and "all" not in names):
        # DESIGN: a model with several outputs is explained for all of them by default
        cols, single = list(range(n_outputs)), False
    elif isinstance(target, (list, tuple)) or type(target).__name__ == "Index":
        if len(target) == 0:
            raise InvalidParameterError("target is an empty list; name at least one output.")
        cols, single = [one(t) for t in target], False
    else:
        cols, single = [one(target)], True
    index = torch.as_tensor(cols, dtype=torch.int64, device=device)[None, :].expand(n, -1)
    sel = [names[c] for c in cols]
    return Targets(
        index=index,
        names=sel,
        single=single,
        description=(", ".join(sel) if output_names is None else "output " + ", ".join(sel)),
        record=cols[0] if single else cols,
    )
