"""Layer-wise relevance propagation (LRP) for CNNs and MLPs, through scoped hooks.

``wb.LRP(model, composite="epsilon_plus_flat").explain(X, target=...)`` returns the input
relevance in the layout of the gradient explainers (values (n, *input_shape[, k]), base
values 0, predictions the explained outputs). The relevance at the output is the explained
output itself, ``R_out = f_c(x)`` (zero for the other outputs), and every module with a rule
replaces its backward pass by the rule's redistribution (the "modified gradient"
formulation: a forward pre-hook cuts the module's own graph, a forward hook joins its input
to its output through an autograd function whose backward is the rule). Hooks live only
inside the call, also when it raises; the model's parameters are never written.

Composites (as zennit's, see :mod:`whybox.propagation._lrp_rules`): ``"epsilon_plus"``,
``"epsilon_plus_flat"``, ``"epsilon_alpha2_beta1"``, ``"epsilon_alpha2_beta1_flat"``,
``"epsilon_gamma_box"`` (needs ``low=``, ``high=``), or a dict ``{path or module type:
rule}``. Canonizer ``"batchnorm"``: a batch norm right after a linear layer or convolution
is folded into that layer's parameters for the rule (``w' = w * g / sqrt(var + eps)``,
``b' = (b - mean) * g / sqrt(var + eps) + beta``) and passes relevance through; the fold is
computed on the fly from the current parameters, so nothing has to be restored.

Conservation: ``meta["relevance_out"]`` (the explained outputs), ``meta["relevance_in"]``
(the sum of the input relevance), ``meta["conservation_gap"]`` = out - in and its relative
size, per example; ``exp.completeness_gap()`` is the same gap. When every layer is bias-free
and every rule conserving (epsilon <= 1e-5) the gap should vanish; whybox warns with the
measured gap when it does not (operations in ``forward`` the hooks cannot see, such as a
residual ``x + y``, break conservation).

Limitations: modules must take one tensor; functional operations inside ``forward``
(``F.relu``, ``x.view``, ``torch.flatten``) get the plain gradient, which is right for
ReLUs and reshapes but not for sums of branches (ResNets need zennit-style canonizers that
whybox does not provide yet).

References
----------
Bach et al. (2015), On pixel-wise explanations for non-linear classifier decisions by
layer-wise relevance propagation. PLoS ONE 10(7): e0130140.
Montavon et al. (2019), Layer-wise relevance propagation: an overview. In Explainable AI,
LNCS 11700.
Anders et al. (2021), Software for dataset-wide XAI: Zennit, CoRelAy and ViRelAy.
arXiv:2106.13200.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from whybox.errors import InvalidParameterError, ModelCallError, UnsupportedModelError
from whybox.explanation import ROW_KEYS, Explanation
from whybox.gradients._base import (
    GradientExplainer,
    batched,
    to_numpy,
    torch_module,
)
from whybox.gradients._outputs import call_model, check_finite
from whybox.internals import hooks

from ._lrp_rules import (
    COMPOSITES,
    AlphaBeta,
    Composite,
    Epsilon,
    Flat,
    Gamma,
    Norm,
    Pass,
    Rule,
    WSquare,
    ZBox,
    ZPlus,
    base_layer_map,
    named_composite,
    type_groups,
)

__all__ = [
    "COMPOSITES",
    "LRP",
    "AlphaBeta",
    "Composite",
    "ConservationWarning",
    "Epsilon",
    "Flat",
    "Gamma",
    "Norm",
    "Pass",
    "Rule",
    "WSquare",
    "ZBox",
    "ZPlus",
]

#: Relative conservation gap above which a bias-free, conserving LRP run warns
CONSERVATION_TOLERANCE = 1e-3

CANONIZERS = ("batchnorm",)


class ConservationWarning(UserWarning):
    """Relevance should have been conserved (bias-free layers, conserving rules) but was not."""


# -- the plan: which module gets which rule, which batch norm folds into which layer ------
def _leaves(module: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Leaf modules depth-first in registration order (zennit's ``collect_leaves``)."""
    children = list(module.named_children())
    if not children:
        return [(prefix, module)]
    out = []
    for name, child in children:
        out += _leaves(child, f"{prefix}.{name}" if prefix else name)
    return out


def _plan(model: Any, composite: Composite, canonizers: Sequence[str]) -> tuple[dict, dict]:
    """``rules`` {path: Rule} of the hooked modules and ``folds`` {batch-norm path: layer
    path}; raises UnsupportedModelError for a module no rule covers."""
    g = type_groups()
    assigned = composite.assign(model)
    modules = dict(model.named_modules())
    rules: dict[str, Rule] = {}
    for path, rule in assigned.items():
        module = modules[path]
        if rule is not None:
            if rule.uses_params and not dict(module.named_parameters(recurse=False)):
                raise UnsupportedModelError(
                    f"the LRP rule {rule!r} for module {path or '(the model)'!r} "
                    f"({type(module).__name__}) needs its weights, and it has no parameters "
                    "of its own. Give that module 'pass' or 'norm' instead."
                )
            rules[path] = rule
            continue
        own = dict(module.named_parameters(recurse=False))
        if (list(module.children()) and not own) or isinstance(module, g["gradient_safe"]):
            continue
        where = path or "(the model itself)"
        raise UnsupportedModelError(
            f"LRP has no rule for the module {where!r} of type {type(module).__name__}, so "
            "its relevance cannot be propagated. Register one: wb.LRP(model, "
            f"composite=..., rules={{{path!r}: 'epsilon'}}) for a layer with weights, "
            f"rules={{{type(module).__name__}: 'pass'}} (the class itself as key) for an "
            "element-wise module, or a rule object such as wb.propagation.lrp.Epsilon(0.25)."
        )
    folds: dict[str, str] = {}
    if "batchnorm" in canonizers:
        last: tuple[str, Any] | None = None
        for path, leaf in _leaves(model):
            if (
                last is not None
                and isinstance(leaf, g["batchnorm"])
                and isinstance(last[1], g["linear"])
                and last[0] in rules
            ):
                folds[path] = last[0]
            last = (path, leaf)
    return rules, folds


def _folded(layer: Any, bn: Any) -> dict[str, Any]:
    """Parameters of ``layer`` with the eval-mode batch norm ``bn`` folded in."""
    torch = torch_module()
    with torch.no_grad():
        w = layer.weight.detach()
        b = layer.bias.detach() if layer.bias is not None else torch.zeros_like(bn.running_mean)
        scale = (bn.running_var + bn.eps).rsqrt()
        if bn.weight is not None:
            scale = scale * bn.weight
        shift = bn.bias if bn.bias is not None else torch.zeros_like(scale)
        transposed = isinstance(layer, type_groups()["conv"]) and layer.transposed
        idx = (None, slice(None)) if transposed else (slice(None),)
        idx = (*idx, *([None] * (w.ndim - len(idx))))
        return {
            **dict(layer.named_parameters(recurse=False)),
            "weight": w * scale[idx],
            "bias": (b - bn.running_mean) * scale + shift,
        }


class _Session:
    """State of one hooked forward/backward: inputs in flight, folds confirmed, biases seen."""

    def __init__(self, model: Any, rules: dict[str, Rule], folds: dict[str, str]) -> None:
        self.modules = dict(model.named_modules())
        self.rules = rules
        self.folds = folds
        self.stack: dict[str, list[Any]] = {p: [] for p in rules}
        self.last_out: dict[str, Any] = {}
        self.fold_now: dict[str, Any] = {}  # layer path -> batch-norm module
        self.unfolded: list[str] = []
        self.biased: set[str] = set()

    def params(self, path: str) -> dict[str, Any]:
        module = self.modules[path]
        if path in self.fold_now:
            p = _folded(module, self.fold_now[path])
        else:
            p = {k: v.detach() for k, v in module.named_parameters(recurse=False)}
        b = p.get("bias")
        if self.rules[path].uses_params and b is not None and bool((b != 0).any()):
            self.biased.add(path)
        return p


def _rule_function() -> Any:
    torch = torch_module()

    class _RuleFn(torch.autograd.Function):
        """Identity on the module's output; backward = the rule's relevance at its input."""

        @staticmethod
        def forward(ctx: Any, x: Any, out: Any, session: Any, path: str) -> Any:
            ctx.x, ctx.version, ctx.session, ctx.path = x.detach(), x._version, session, path
            return out.clone()

        @staticmethod
        def backward(ctx: Any, R: Any) -> Any:
            s, path = ctx.session, ctx.path
            if ctx.x._version != ctx.version:
                raise ModelCallError(
                    f"the input of module {path!r} was changed in place after the module ran "
                    "(an in-place operation such as x += ... or ReLU(inplace=True) on it), so "
                    "its LRP rule cannot be evaluated. Use out-of-place operations there."
                )
            rule = s.rules[path]
            with torch.enable_grad():
                r = rule.relevance(s.modules[path], ctx.x, R, s.params(path))
            return r, None, None, None

    return _RuleFn


@contextmanager
def _lrp_hooks(model: Any, rules: dict[str, Rule], folds: dict[str, str]) -> Any:
    """Install the rule hooks for the duration of the block; yields the session."""
    torch = torch_module()
    fn = _rule_function()
    session = _Session(model, rules, folds)
    watched = set(folds.values())

    def pre(path: str) -> Any:
        def hook(module: Any, args: Any) -> Any:
            if len(args) != 1 or not isinstance(args[0], torch.Tensor):
                raise UnsupportedModelError(
                    f"module {path!r} ({type(module).__name__}) was called with "
                    f"{len(args)} positional argument(s); LRP rules apply to modules that "
                    "take one tensor. Give it no rule, or wrap it in a module of one input."
                )
            x = args[0]
            if path in folds:  # a batch norm: fold it into the layer whose output it reads
                layer = folds[path]
                if x is session.last_out.get(layer):
                    session.fold_now[layer] = module
                elif path not in session.unfolded:
                    session.unfolded.append(path)
            if not x.requires_grad:
                session.stack[path].append(None)
                return None
            session.stack[path].append(x)
            d = x.detach()
            return (d.clone() if getattr(module, "inplace", False) else d,)

        return hook

    def post(path: str) -> Any:
        def hook(module: Any, args: Any, out: Any) -> Any:
            x = session.stack[path].pop()
            if x is None:
                return None
            if not isinstance(out, torch.Tensor):
                raise UnsupportedModelError(
                    f"module {path!r} returned {type(out).__name__}; LRP rules apply to "
                    "modules that return one tensor."
                )
            new = fn.apply(x, out.detach(), session, path)
            if path in watched:
                session.last_out[path] = new
            return new

        return hook

    modules = dict(model.named_modules())
    with hooks.registered([]) as handles:
        for path in rules:
            m = modules[path]
            handles.append(m.register_forward_pre_hook(pre(path)))
            handles.append(m.register_forward_hook(post(path)))
        yield session


def lrp_relevance(
    model: Any,
    x: Any,
    index: Any,
    rules: dict[str, Rule],
    folds: dict[str, str],
    *,
    output: Any = None,
    rows: Any = None,
) -> tuple[Any, Any, _Session]:
    """Input relevance (m, *shape, T) of one batch for the outputs ``index`` (m, T), and the
    explained outputs (m, T) = the relevance put on the output layer."""
    torch = torch_module()
    parts, outs = [], []
    with torch.enable_grad(), _lrp_hooks(model, rules, folds) as session:
        wrt = x.detach().requires_grad_(True)
        out = call_model(model, wrt, output)
        check_finite(out.detach(), "outputs", rows)
        if not out.requires_grad:
            raise UnsupportedModelError(
                "the model's output does not depend on its input through autograd (a "
                "forward under torch.no_grad, or detached); LRP needs the graph."
            )
        T = index.shape[1]
        for t in range(T):
            idx = index[:, t : t + 1]
            sel = out.detach().gather(1, idx)
            r_out = torch.zeros_like(out).scatter_(1, idx, sel)
            (g,) = torch.autograd.grad(out, wrt, grad_outputs=r_out, retain_graph=t < T - 1)
            parts.append(g)
            outs.append(sel[:, 0])
    rel = torch.stack(parts, dim=-1)
    check_finite(rel, "relevance", rows)
    return rel, torch.stack(outs, dim=-1), session


class LRP(GradientExplainer):
    """Layer-wise relevance propagation with zennit's composites, on the user's model.

    Parameters
    ----------
    model : torch.nn.Module
        A CNN or MLP built from ``nn.Linear``, convolutions, activations, pooling, batch
        norm, flatten and dropout modules (others need a rule in ``rules=``). Explained in
        eval mode.
    composite : str, dict or Composite, default "epsilon_plus_flat"
        A built-in composite (``"epsilon_plus"``, ``"epsilon_plus_flat"``,
        ``"epsilon_alpha2_beta1"``, ``"epsilon_alpha2_beta1_flat"``,
        ``"epsilon_gamma_box"``), or a dict ``{module path or type: rule}`` (rules as objects
        such as ``Epsilon(0.25)`` or names ``"epsilon"``, ``"zplus"``, ``"alpha2_beta1"``,
        ``"gamma"``, ``"flat"``, ``"wsquare"``, ``"norm"``, ``"pass"``) on top of the shared
        base map (activations and batch norm pass, average pooling normalised).
    canonizers : sequence of str, default ("batchnorm",)
        ``"batchnorm"`` folds each batch norm into the linear layer / convolution just
        before it; ``()`` leaves batch norms as relevance pass-throughs.
    rules : dict, optional
        Extra rules by module path or type, taking precedence over the composite.
    epsilon, gamma, stabilizer : float
        Settings of the built-in composites (zennit's defaults 1e-6, 0.25, 1e-6).
    low, high : float or array, optional
        Input bounds of the z-box rule (``"epsilon_gamma_box"``).
    output, output_names
        As for :class:`whybox.Saliency`: the element of a tuple / dict output to explain, and
        names of the outputs usable as ``target=``.

    Raises
    ------
    UnsupportedModelError
        If ``model`` is not a ``torch.nn.Module``.
    InvalidParameterError
        For an unknown ``target`` (an index out of range, a name not in ``output_names``), or
        an unknown keyword of ``explain``, or an unknown composite or rule name.

    Notes
    -----
    ``.explain(x, target=None)`` takes inputs ``(n, *input_shape)`` and returns relevances
    of that shape; ``predictions`` holds the explained outputs and ``base_values`` is 0, so
    ``completeness_gap()`` is the relevance lost or created on the way (bias terms,
    stabilisers, the flat and gamma rules).

    References
    ----------
    Bach et al. (2015), PLoS ONE 10(7): e0130140. Montavon et al. (2019), Layer-wise
    relevance propagation: an overview. Anders et al. (2021), arXiv:2106.13200 (zennit).

    Examples
    --------
    With the epsilon rule, a bias-free linear layer passes ``x * w`` back, which adds up to
    the output:

    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 1, bias=False)).eval()
    >>> model[0].weight.data = torch.tensor([[1.0, -2.0, 3.0]])
    >>> exp = wb.LRP(model, composite={torch.nn.Linear: "epsilon"}).explain(torch.tensor([[2.0, 1.0, 1.0]]))
    >>> exp.values.round(3).tolist(), exp.predictions.tolist()
    ([[2.0, -2.0, 3.0]], [3.0])
    >>> cnn, data = wb.zoo.digits_cnn()
    >>> wb.LRP(cnn).explain(data.X_test[:2], target=data.y_test[:2]).values.shape
    (2, 1, 8, 8)
    """

    method = "lrp"

    def __init__(
        self,
        model: Any,
        composite: Any = "epsilon_plus_flat",
        *,
        canonizers: Sequence[str] = ("batchnorm",),
        rules: Mapping[Any, Any] | None = None,
        epsilon: float = 1e-6,
        gamma: float = 0.25,
        stabilizer: float = 1e-6,
        low: Any = None,
        high: Any = None,
        output: Any = None,
        output_names: Any = None,
    ) -> None:
        super().__init__(model, output=output, output_names=output_names)
        if isinstance(composite, Composite):
            comp = composite
        elif isinstance(composite, Mapping):
            comp = Composite(base_layer_map(stabilizer), name="custom").with_rules(composite)
            comp.name = "custom"
        elif isinstance(composite, str):
            comp = named_composite(
                composite, epsilon=epsilon, gamma=gamma, stabilizer=stabilizer, low=low, high=high
            )
        else:
            raise InvalidParameterError(
                f"composite must be one of {list(COMPOSITES)}, a dict {{module path or type: "
                f"rule}} or a Composite; got {type(composite).__name__}."
            )
        if rules:
            comp = comp.with_rules(rules)
        if isinstance(canonizers, str):
            canonizers = (canonizers,)
        canon = tuple(str(c).lower().replace("_", "") for c in canonizers)
        bad = [c for c in canon if c not in CANONIZERS]
        if bad:
            raise InvalidParameterError(
                f"unknown canonizer(s) {bad}; whybox has {list(CANONIZERS)} (fold batch norms "
                "into the layer before them), or pass canonizers=() for none."
            )
        self.composite = comp
        self.canonizers = canon
        self._rules, self._folds = _plan(model, comp, canon)

    def _params(self) -> dict[str, Any]:
        return {
            "composite": self.composite.name,
            "canonizers": list(self.canonizers),
            "rules": {p or "(model)": r.describe() for p, r in self._rules.items()},
            "folded_batch_norms": dict(self._folds),
        }

    def _attribute(
        self, x: Any, index: Any, batch_rows: int, *, rows: Any = None, **kwargs: Any
    ) -> Any:
        torch = torch_module()
        ids = np.arange(len(x)) if rows is None else np.asarray(rows)
        rel, outs, biased, unfolded = [], [], set(), []
        for s, e in batched(len(x), batch_rows):
            r, o, session = lrp_relevance(
                self.model, x[s:e], index[s:e], self._rules, self._folds,
                output=self.output, rows=ids[s:e],
            )  # fmt: skip
            rel.append(r)
            outs.append(o)
            biased |= session.biased
            unfolded += [p for p in session.unfolded if p not in unfolded]
        values = torch.cat(rel)
        r_out = to_numpy(torch.cat(outs))
        r_in = to_numpy(values).reshape(len(x), -1, index.shape[1]).sum(axis=1)
        gap = r_out - r_in
        rel_gap = np.abs(gap) / np.maximum(np.abs(r_out), 1e-12)
        expected = not biased and all(r.conserving for r in self._rules.values())
        if unfolded:
            warnings.warn(
                f"LRP: batch norm(s) {unfolded} did not read the output of the layer before "
                "them, so they were not folded into it; relevance passes through them "
                "unchanged.",
                UserWarning,
                stacklevel=4,
            )
        if expected and rel_gap.size and float(rel_gap.max()) > CONSERVATION_TOLERANCE:
            worst = int(np.unravel_index(np.argmax(rel_gap), rel_gap.shape)[0])
            warnings.warn(
                f"LRP: every hooked layer is bias-free and every rule conserving, yet the sum "
                f"of the input relevance misses the output relevance by "
                f"{float(np.abs(gap).max()):.3g} ({float(rel_gap.max()):.2%} relative, row "
                f"{int(ids[worst])}). Operations inside forward that no module hook sees "
                "(a residual x + y, torch.cat, a multiplication), stabilisers acting on "
                "near-zero pre-activations, or a z+ / alpha-beta rule meeting an output "
                "without contributions of its sign are the usual causes. "
                "meta['conservation_gap'] "
                "has it per row.",
                ConservationWarning,
                stacklevel=4,
            )
        single = index.shape[1] == 1

        def rows_(a: np.ndarray) -> list[Any]:
            return (a[:, 0] if single else a).tolist()

        meta = {
            "relevance_out": rows_(r_out),
            "relevance_in": rows_(r_in),
            "conservation_gap": rows_(gap),
            "relative_conservation_gap": rows_(rel_gap),
            "conservation_expected": expected,
            "biased_layers": sorted(biased),
            ROW_KEYS: [
                "relevance_out",
                "relevance_in",
                "conservation_gap",
                "relative_conservation_gap",
            ],
        }
        return values, {"n_evals": 1, "meta": meta}

    def explain(
        self,
        x: Any,
        target: Any = None,
        *,
        internal_batch_size: int | None = None,
        **kwargs: Any,
    ) -> Explanation:
        """Input relevance of ``x``.

        Parameters
        ----------
        x : tensor or array of shape (n, *input_shape)
            Inputs, on the model's device.
        target : int, str, list, "all" or tensor of shape (n,)
            Explained output(s); the relevance put on the output layer is that output's
            value (zero elsewhere).
        internal_batch_size : int, optional
            Inputs per forward/backward pass.

        Returns
        -------
        Explanation
            ``values`` (n, *input_shape) or (n, *input_shape, k); base values 0;
            ``meta`` holds the relevance conservation per example (see the module notes).
        """
        self._check_keywords(kwargs, ["target", "internal_batch_size"])
        return self._explain_plain(x, target, internal_batch_size)
