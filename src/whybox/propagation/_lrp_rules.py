"""LRP rules and composites (the relevance redistribution of one module, and which module
gets which rule).

A rule maps the relevance ``R`` (m, *out_shape) at a module's output to the relevance at its
input (m, *in_shape). Rules for layers with weights (epsilon, gamma, z-plus, alpha-beta,
z-box, flat, w-square) re-run the module on modified inputs and parameters and take one
vector-Jacobian product, as zennit does (the "modified gradient" formulation of Montavon et
al. 2019), so they work for any ``torch.nn.Linear`` and convolution. The numbers follow
zennit 0.5.1 (Anders et al.), the reference implementation used in the tests.

Notation: ``z = module(x)`` with weights ``w`` and bias ``b``; ``s(z) = z + eps * sign(z)``
with ``sign(0) = +1`` (the stabilised denominator); ``x+ = max(x, 0)``, ``x- = min(x, 0)``,
``w+ = max(w, 0)``, ``w- = min(w, 0)``.

* :class:`Epsilon`: ``R_i = x_i * sum_j w_ji R_j / s(z_j)`` (LRP-epsilon; epsilon=0 is LRP-0).
* :class:`ZPlus`: ``z+_j = sum_i x+_i w+_ji + x-_i w-_ji (+ b+_j)``,
  ``R_i = sum_j (x+_i w+_ji + x-_i w-_ji) R_j / s(z+_j)`` (alpha=1, beta=0).
* :class:`AlphaBeta`: ``alpha * (positive part) - beta * (negative part)``, alpha - beta = 1.
* :class:`Gamma`: the generalised gamma rule, ``w + gamma * w+`` for the contributions of the
  output's sign (Montavon et al. 2019; Andeol et al. 2021).
* :class:`ZBox`: the z^B rule for inputs bounded in [low, high] (Montavon et al. 2017).
* :class:`Flat`: ``R_i = sum_j R_j / n_j`` over the receptive field (Lapuschkin et al. 2019).
* :class:`WSquare`: ``R_i = sum_j w_ji^2 R_j / sum_i' w_i'j^2`` (Montavon et al. 2017).
* :class:`Norm`: ``R_i = x_i * d z_j/d x_i * R_j / s(z_j)`` for parameter-free layers
  (average pooling).
* :class:`Pass`: relevance passes through unchanged (element-wise activations, batch norm).

References
----------
Bach, S., Binder, A., Montavon, G., Klauschen, F., Mueller, K.-R., Samek, W. (2015). On
pixel-wise explanations for non-linear classifier decisions by layer-wise relevance
propagation. PLoS ONE 10(7): e0130140.
Montavon, G., Lapuschkin, S., Binder, A., Samek, W., Mueller, K.-R. (2017). Explaining
nonlinear classification decisions with deep Taylor decomposition. Pattern Recognition 65.
Montavon, G., Binder, A., Lapuschkin, S., Samek, W., Mueller, K.-R. (2019). Layer-wise
relevance propagation: an overview. In Explainable AI, LNCS 11700, Springer.
Lapuschkin, S., Waeldchen, S., Binder, A., Montavon, G., Samek, W., Mueller, K.-R. (2019).
Unmasking Clever Hans predictors and assessing what machines really learn. Nature
Communications 10: 1096.
Andeol, L., Kawakami, Y., Wada, Y., Kanamori, T., Mueller, K.-R., Montavon, G. (2021).
Learning domain invariant representations by joint Wasserstein distance minimization.
arXiv:2106.04923.
Anders, C. J., Neumann, D., Samek, W., Mueller, K.-R., Lapuschkin, S. (2021). Software for
dataset-wide XAI: from local explanations to global insights with Zennit, CoRelAy, and
ViRelAy. arXiv:2106.13200.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from whybox.errors import InvalidParameterError
from whybox.internals import hooks

__all__ = [
    "AlphaBeta",
    "Composite",
    "Epsilon",
    "Flat",
    "Gamma",
    "Norm",
    "Pass",
    "Rule",
    "WSquare",
    "ZBox",
    "ZPlus",
    "named_composite",
    "rule_from_spec",
]

ParamFn = Callable[[Any, str], Any]


def _torch() -> Any:
    return hooks.require_torch("LRP")


def _nonneg(name: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not np.isfinite(value)
        or value < 0
    ):
        raise InvalidParameterError(f"{name} must be a finite number >= 0, got {value!r}.")
    return float(value)


def stabilize(z: Any, eps: float) -> Any:
    """``z + eps * sign(z)`` with ``sign(0) = +1`` (zennit's stabiliser)."""
    return z + eps * ((z == 0).to(z) + z.sign())


# -- module types ---------------------------------------------------------------------
def type_groups() -> dict[str, tuple[type, ...]]:
    """The module types the built-in composites name (torch imported on first use)."""
    nn = _torch().nn
    conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d)
    conv = (*conv, nn.ConvTranspose3d)
    return {
        "conv": conv,
        "linear": (*conv, nn.Linear),
        "dense": (nn.Linear,),
        "activation": (
            nn.ELU,
            nn.Hardshrink,
            nn.Hardsigmoid,
            nn.Hardtanh,
            nn.Hardswish,
            nn.LeakyReLU,
            nn.LogSigmoid,
            nn.PReLU,
            nn.ReLU,
            nn.ReLU6,
            nn.RReLU,
            nn.SELU,
            nn.CELU,
            nn.GELU,
            nn.Sigmoid,
            nn.SiLU,
            nn.Softplus,
            nn.Softshrink,
            nn.Softsign,
            nn.Tanh,
            nn.Tanhshrink,
            nn.Threshold,
            nn.Mish,
        ),
        "avgpool": (
            nn.AvgPool1d,
            nn.AvgPool2d,
            nn.AvgPool3d,
            nn.AdaptiveAvgPool1d,
            nn.AdaptiveAvgPool2d,
            nn.AdaptiveAvgPool3d,
        ),
        "batchnorm": (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d),
        # no rule needed: the plain gradient routes relevance correctly (max pooling sends
        # it to the winner; reshapes, identities and eval-mode dropout move it unchanged)
        "gradient_safe": (
            nn.MaxPool1d,
            nn.MaxPool2d,
            nn.MaxPool3d,
            nn.AdaptiveMaxPool1d,
            nn.AdaptiveMaxPool2d,
            nn.AdaptiveMaxPool3d,
            nn.Flatten,
            nn.Unflatten,
            nn.Identity,
            nn.Dropout,
            nn.Dropout1d,
            nn.Dropout2d,
            nn.Dropout3d,
            nn.AlphaDropout,
            nn.ZeroPad1d,
            nn.ZeroPad2d,
            nn.ZeroPad3d,
        ),
    }


# -- running a module with modified parameters ------------------------------------------
def run_module(module: Any, x: Any, params: Mapping[str, Any]) -> Any:
    """``module(x)`` with its direct parameters replaced by ``params``, without its hooks.

    Linear layers and (non-transposed) convolutions are called functionally; any other
    module has its parameter entries swapped for the call and put back in ``finally``.
    """
    torch = _torch()
    nn, F = torch.nn, torch.nn.functional
    if type(module) is nn.Linear:
        return F.linear(x, params["weight"], params.get("bias"))
    if type(module) in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
        return module._conv_forward(x, params["weight"], params.get("bias"))
    saved = dict(module._parameters)
    try:
        for name, value in params.items():
            module._parameters[name] = value
        return module.forward(x)
    finally:
        module._parameters.clear()
        module._parameters.update(saved)


def _param_set(params: Mapping[str, Any], fn: ParamFn, zero: Sequence[str]) -> dict[str, Any]:
    """Apply ``fn(param, name)`` to every parameter that exists; names in ``zero`` -> 0."""
    torch = _torch()
    out: dict[str, Any] = {}
    for name, p in params.items():
        if p is None:
            continue
        out[name] = torch.zeros_like(p) if name in zero else fn(p, name)
    return out


def _same(p: Any, _name: str) -> Any:
    return p


def _pos(p: Any, _name: str) -> Any:
    return p.clamp(min=0)


def _neg(p: Any, _name: str) -> Any:
    return p.clamp(max=0)


def _zero_bias(zero: Sequence[str]) -> tuple[str, ...]:
    return tuple(zero) if "bias" in zero else (*zero, "bias")


def _vjp(outputs: list[Any], inputs: list[Any], grads: list[Any]) -> tuple[Any, ...]:
    torch = _torch()
    return torch.autograd.grad(outputs, inputs, grad_outputs=grads)


# -- rules ------------------------------------------------------------------------------
class Rule:
    """Base class of the LRP rules.

    Subclasses implement :meth:`relevance`. ``conserving`` says whether the rule keeps
    ``sum R_in = sum R_out`` exactly on a bias-free layer (up to its tiny stabiliser);
    ``uses_params`` whether it needs the module's weights.
    """

    name = "rule"
    uses_params = True

    def __init__(self, *, stabilizer: float = 1e-6, zero_params: Sequence[str] = ()) -> None:
        self.stabilizer = _nonneg("stabilizer", stabilizer)
        if isinstance(zero_params, str):
            zero_params = (zero_params,)
        self.zero_params = tuple(str(z) for z in zero_params)

    @property
    def conserving(self) -> bool:
        return self.stabilizer <= 1e-5

    def relevance(self, module: Any, x: Any, R: Any, params: Mapping[str, Any]) -> Any:
        """Relevance at the input (shape of ``x``) from ``R`` at the output.

        Parameters
        ----------
        module : torch.nn.Module
        x : tensor (m, *in_shape)
            The module's input in the forward pass (detached).
        R : tensor (m, *out_shape)
            Relevance arriving at the module's output.
        params : dict of str -> tensor
            The module's effective parameters (batch norm folded in where canonised).
        """
        raise NotImplementedError  # pragma: no cover

    def describe(self) -> dict[str, Any]:
        """The rule and its settings (recorded in ``exp.params``)."""
        d = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        if not d.get("zero_params"):
            d.pop("zero_params", None)
        return {"rule": self.name, **d}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "rule")
        return f"{type(self).__name__}({args})"


def _one_pass(
    rule: Rule, module: Any, x_in: Any, R: Any, params: dict[str, Any], eps: float
) -> Any:
    """Gradient w.r.t. ``x_in`` of ``module(x_in; params)`` against ``R / s(z)``."""
    x_in = x_in.detach().requires_grad_(True)
    z = run_module(module, x_in, params)
    (g,) = _vjp([z], [x_in], [R / stabilize(z, eps)])
    return g


class Epsilon(Rule):
    """LRP-epsilon: ``R_i = x_i sum_j w_ji R_j / (z_j + epsilon sign(z_j))``.

    Parameters
    ----------
    epsilon : float, default 1e-6
        Added to the denominator with its sign; 0 (or tiny) is LRP-0, larger values absorb
        weak or contradictory relevance.
    zero_params : sequence of str
        Parameters treated as zero (e.g. ``("bias",)``).

    References
    ----------
    Bach et al. (2015), PLoS ONE 10(7): e0130140.
    """

    name = "epsilon"

    def __init__(self, epsilon: float = 1e-6, *, zero_params: Sequence[str] = ()) -> None:
        super().__init__(stabilizer=epsilon, zero_params=zero_params)
        self.epsilon = self.stabilizer
        del self.stabilizer

    @property
    def conserving(self) -> bool:
        return self.epsilon <= 1e-5

    def relevance(self, module: Any, x: Any, R: Any, params: Mapping[str, Any]) -> Any:
        p = _param_set(params, _same, self.zero_params)
        return x * _one_pass(self, module, x, R, p, self.epsilon)


class ZPlus(Rule):
    """LRP z+ (alpha=1, beta=0): only the positive contributions ``x+ w+ + x- w-``.

    References
    ----------
    Montavon et al. (2017), Pattern Recognition 65.
    """

    name = "zplus"

    def relevance(self, module: Any, x: Any, R: Any, params: Mapping[str, Any]) -> Any:
        xp = x.clamp(min=0).requires_grad_(True)
        xn = x.clamp(max=0).requires_grad_(True)
        zp = run_module(module, xp, _param_set(params, _pos, self.zero_params))
        zn = run_module(module, xn, _param_set(params, _neg, _zero_bias(self.zero_params)))
        s = R / stabilize(zp + zn, self.stabilizer)
        gp, gn = _vjp([zp, zn], [xp, xn], [s, s])
        return xp * gp + xn * gn


class AlphaBeta(Rule):
    """LRP alpha-beta: ``alpha`` times the positive and ``beta`` times the negative shares.

    Parameters
    ----------
    alpha, beta : float, default 2 and 1
        Non-negative with ``alpha - beta = 1`` (the rule then conserves relevance).

    References
    ----------
    Bach et al. (2015), PLoS ONE 10(7): e0130140.
    """

    name = "alpha_beta"

    def __init__(
        self,
        alpha: float = 2.0,
        beta: float = 1.0,
        *,
        stabilizer: float = 1e-6,
        zero_params: Sequence[str] = (),
    ) -> None:
        super().__init__(stabilizer=stabilizer, zero_params=zero_params)
        self.alpha = _nonneg("alpha", alpha)
        self.beta = _nonneg("beta", beta)
        if abs(self.alpha - self.beta - 1.0) > 1e-12:
            raise InvalidParameterError(
                f"the alpha-beta rule needs alpha - beta = 1 (e.g. alpha=2, beta=1 or "
                f"alpha=1, beta=0); got alpha={alpha!r}, beta={beta!r}."
            )

    def relevance(self, module: Any, x: Any, R: Any, params: Mapping[str, Any]) -> Any:
        zp = self.zero_params
        xs = [x.clamp(min=0), x.clamp(max=0), x.clamp(min=0), x.clamp(max=0)]
        xs = [t.requires_grad_(True) for t in xs]
        fns = [(_pos, zp), (_neg, _zero_bias(zp)), (_neg, zp), (_pos, _zero_bias(zp))]
        zs = [
            run_module(module, xi, _param_set(params, fn, zero))
            for xi, (fn, zero) in zip(xs, fns, strict=True)
        ]
        s_pos = R / stabilize(zs[0] + zs[1], self.stabilizer)
        s_neg = R / stabilize(zs[2] + zs[3], self.stabilizer)
        g = _vjp(zs, xs, [s_pos, s_pos, s_neg, s_neg])
        pos = xs[0] * g[0] + xs[1] * g[1]
        neg = xs[2] * g[2] + xs[3] * g[3]
        return self.alpha * pos - self.beta * neg


class Gamma(Rule):
    """Generalised LRP-gamma: contributions of the output's sign boosted by ``gamma``.

    Parameters
    ----------
    gamma : float, default 0.25
        Weight of the added positive (or, for negative outputs, negative) parameters.

    References
    ----------
    Montavon et al. (2019), Layer-wise relevance propagation: an overview.
    Andeol et al. (2021), arXiv:2106.04923.
    """

    name = "gamma"

    def __init__(
        self, gamma: float = 0.25, *, stabilizer: float = 1e-6, zero_params: Sequence[str] = ()
    ) -> None:
        super().__init__(stabilizer=stabilizer, zero_params=zero_params)
        self.gamma = _nonneg("gamma", gamma)

    def relevance(self, module: Any, x: Any, R: Any, params: Mapping[str, Any]) -> Any:
        g = self.gamma

        def up(p: Any, _n: str) -> Any:
            return p + g * p.clamp(min=0)

        def down(p: Any, _n: str) -> Any:
            return p + g * p.clamp(max=0)

        zp = self.zero_params
        xs = [x.clamp(min=0), x.clamp(max=0), x.clamp(min=0), x.clamp(max=0)]
        xs = [t.requires_grad_(True) for t in xs]
        fns = [(up, zp), (down, _zero_bias(zp)), (down, zp), (up, _zero_bias(zp))]
        zs = [
            run_module(module, xi, _param_set(params, fn, zero))
            for xi, (fn, zero) in zip(xs, fns, strict=True)
        ]
        with _torch().no_grad():
            z = run_module(module, x, dict(params))
        s_pos = (z > 0).to(R) * R / stabilize(zs[0] + zs[1], self.stabilizer)
        s_neg = (z < 0).to(R) * R / stabilize(zs[2] + zs[3], self.stabilizer)
        grads = _vjp(zs, xs, [s_pos, s_pos, s_neg, s_neg])
        return sum(xi * gi for xi, gi in zip(xs, grads, strict=True))


class ZBox(Rule):
    """LRP z^B for inputs bounded by ``low <= x <= high`` (the first layer on pixels).

    Parameters
    ----------
    low, high : float or array broadcastable to one input (*input_shape)
        The lowest and highest values the inputs can take (e.g. the normalised images of
        pixel values 0 and 1).

    References
    ----------
    Montavon et al. (2017), Pattern Recognition 65.
    """

    name = "zbox"

    def __init__(
        self, low: Any, high: Any, *, stabilizer: float = 1e-6, zero_params: Sequence[str] = ()
    ) -> None:
        super().__init__(stabilizer=stabilizer, zero_params=zero_params)
        lo, hi = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            raise InvalidParameterError("low and high of the z-box rule must be finite.")
        self.low, self.high = low, high
        self._lo, self._hi = lo, hi

    def describe(self) -> dict[str, Any]:
        def show(a: np.ndarray) -> Any:
            return float(a) if a.ndim == 0 else f"array of shape {a.shape}"

        return {"rule": self.name, "low": show(self._lo), "high": show(self._hi)}

    def _bound(self, a: np.ndarray, x: Any) -> Any:
        torch = _torch()
        t = torch.as_tensor(a, device=x.device).to(x.dtype)
        try:
            return t.expand_as(x).clone()
        except RuntimeError as exc:
            raise InvalidParameterError(
                f"low/high of shape {a.shape} do not broadcast to the layer input of shape "
                f"{tuple(x.shape[1:])} (per example). Pass a float, or an array of the "
                "input's shape (or e.g. (C, 1, 1) per channel)."
            ) from exc

    def relevance(self, module: Any, x: Any, R: Any, params: Mapping[str, Any]) -> Any:
        zp = self.zero_params
        xs = [x.clone(), self._bound(self._lo, x), self._bound(self._hi, x)]
        xs = [t.requires_grad_(True) for t in xs]
        fns = [_same, _pos, _neg]
        zs = [
            run_module(module, xi, _param_set(params, fn, zp))
            for xi, fn in zip(xs, fns, strict=True)
        ]
        s = R / stabilize(zs[0] - zs[1] - zs[2], self.stabilizer)
        g = _vjp(zs, xs, [s, s, s])
        return xs[0] * g[0] - xs[1] * g[1] - xs[2] * g[2]


class Flat(Rule):
    """LRP flat: relevance spread uniformly over each output's receptive field.

    References
    ----------
    Lapuschkin et al. (2019), Nature Communications 10: 1096.
    """

    name = "flat"

    def relevance(self, module: Any, x: Any, R: Any, params: Mapping[str, Any]) -> Any:
        torch = _torch()
        p = _param_set(params, lambda q, _n: torch.ones_like(q), _zero_bias(self.zero_params))
        return _one_pass(self, module, torch.ones_like(x), R, p, self.stabilizer)


class WSquare(Rule):
    """LRP w^2: ``R_i = sum_j w_ji^2 R_j / sum_i' w_i'j^2`` (unbounded first layers).

    References
    ----------
    Montavon et al. (2017), Pattern Recognition 65.
    """

    name = "wsquare"

    def relevance(self, module: Any, x: Any, R: Any, params: Mapping[str, Any]) -> Any:
        torch = _torch()
        p = _param_set(params, lambda q, _n: q**2, self.zero_params)
        return _one_pass(self, module, torch.ones_like(x), R, p, self.stabilizer)


class Norm(Rule):
    """Relevance in proportion to each input's share of the output (parameter-free layers
    such as average pooling): ``R_i = x_i * dz_j/dx_i * R_j / s(z_j)``."""

    name = "norm"
    uses_params = False

    def relevance(self, module: Any, x: Any, R: Any, params: Mapping[str, Any]) -> Any:
        return x * _one_pass(self, module, x, R, {}, self.stabilizer)


class Pass(Rule):
    """Relevance passes through unchanged (element-wise activations, batch norm)."""

    name = "pass"
    uses_params = False

    def __init__(self) -> None:
        super().__init__()
        del self.stabilizer, self.zero_params

    @property
    def conserving(self) -> bool:
        return True

    def relevance(self, module: Any, x: Any, R: Any, params: Mapping[str, Any]) -> Any:
        return R


_RULE_NAMES: dict[str, Callable[[], Rule]] = {
    "epsilon": Epsilon,
    "lrp0": lambda: Epsilon(0.0),
    "zplus": ZPlus,
    "z_plus": ZPlus,
    "alpha_beta": AlphaBeta,
    "alpha2_beta1": AlphaBeta,
    "alpha1_beta0": lambda: AlphaBeta(1.0, 0.0),
    "gamma": Gamma,
    "flat": Flat,
    "wsquare": WSquare,
    "w_square": WSquare,
    "norm": Norm,
    "pass": Pass,
}


def rule_from_spec(spec: Any, where: str) -> Rule:
    """A :class:`Rule` from a Rule instance or a name such as ``"epsilon"``."""
    if isinstance(spec, Rule):
        return spec
    if isinstance(spec, str) and spec.lower().replace("-", "_") in _RULE_NAMES:
        return _RULE_NAMES[spec.lower().replace("-", "_")]()
    raise InvalidParameterError(
        f"{where}: a rule must be a rule object (e.g. Epsilon(0.25) or ZBox(low, high) "
        f"from whybox.propagation.lrp) or one of the names {sorted(_RULE_NAMES)}; got {spec!r}."
    )


# -- composites -------------------------------------------------------------------------
class Composite:
    """Which rule each module gets: by path first, then the first-layer map, then by type.

    Parameters
    ----------
    layer_map : list of (tuple of types, Rule)
        Rules by module type, first match wins.
    first_map : list of (tuple of types, Rule), optional
        For the first module (in ``named_modules()`` order) matching one of these types.
    name_map : dict of str -> Rule, optional
        Rules for modules by their dotted path; these win over everything else.
    name : str
        How the composite is recorded in ``exp.params``.
    """

    def __init__(
        self,
        layer_map: Sequence[tuple[tuple[type, ...], Rule]],
        first_map: Sequence[tuple[tuple[type, ...], Rule]] = (),
        name_map: Mapping[str, Rule] | None = None,
        name: str = "custom",
    ) -> None:
        self.layer_map = list(layer_map)
        self.first_map = list(first_map)
        self.name_map = dict(name_map or {})
        self.name = name

    def assign(self, model: Any) -> dict[str, Rule | None]:
        """Rule (or None) of every module path of ``model``, in ``named_modules()`` order."""
        out: dict[str, Rule | None] = {}
        first_done = not self.first_map
        for path, module in model.named_modules():
            if path in self.name_map:
                out[path] = self.name_map[path]
                continue
            rule = None
            if not first_done:
                rule = next((r for t, r in self.first_map if isinstance(module, t)), None)
                first_done = rule is not None
            if rule is None:
                rule = next((r for t, r in self.layer_map if isinstance(module, t)), None)
            out[path] = rule
        return out

    def with_rules(self, rules: Mapping[Any, Any]) -> Composite:
        """A copy with ``rules`` (path or module type -> rule) taking precedence."""
        names = dict(self.name_map)
        types: list[tuple[tuple[type, ...], Rule]] = []
        for key, spec in rules.items():
            rule = rule_from_spec(spec, f"the rule for {key!r}")
            if isinstance(key, str):
                names[key] = rule
            elif isinstance(key, type) or (
                isinstance(key, tuple) and key and all(isinstance(k, type) for k in key)
            ):
                types.append((key if isinstance(key, tuple) else (key,), rule))
            else:
                raise InvalidParameterError(
                    f"rule keys are module paths (str, e.g. 'features.0') or module types "
                    f"(e.g. torch.nn.Conv2d, or a tuple of types); got {key!r}."
                )
        return Composite(types + self.layer_map, self.first_map, names, name=f"{self.name}+custom")


def base_layer_map(stabilizer: float) -> list[tuple[tuple[type, ...], Rule]]:
    """What every built-in composite shares: activations and batch norm pass, average
    pooling normalised (as zennit's ``layer_map_base``)."""
    g = type_groups()
    return [
        (g["activation"], Pass()),
        (g["avgpool"], Norm(stabilizer=stabilizer)),
        (g["batchnorm"], Pass()),
    ]


COMPOSITES = (
    "epsilon_plus",
    "epsilon_plus_flat",
    "epsilon_alpha2_beta1",
    "epsilon_alpha2_beta1_flat",
    "epsilon_gamma_box",
)


def named_composite(
    name: str,
    *,
    epsilon: float = 1e-6,
    gamma: float = 0.25,
    stabilizer: float = 1e-6,
    low: Any = None,
    high: Any = None,
) -> Composite:
    """The built-in composites, as zennit's classes of the same names.

    * ``epsilon_plus``: z+ on convolutions, epsilon on dense layers.
    * ``epsilon_plus_flat``: the same, with flat on the first linear or convolution.
    * ``epsilon_alpha2_beta1`` (``_flat``): alpha2-beta1 on convolutions (flat first layer).
    * ``epsilon_gamma_box``: z-box (``low``, ``high``) on the first convolution, gamma on the
      other convolutions, epsilon on dense layers.
    """
    g = type_groups()
    base = base_layer_map(stabilizer)
    dense = (g["dense"], Epsilon(epsilon))
    key = name.lower().replace("-", "_") if isinstance(name, str) else name
    first: list[tuple[tuple[type, ...], Rule]] = []
    if key in ("epsilon_plus", "epsilon_plus_flat"):
        conv = (g["conv"], ZPlus(stabilizer=stabilizer))
    elif key in ("epsilon_alpha2_beta1", "epsilon_alpha2_beta1_flat"):
        conv = (g["conv"], AlphaBeta(2.0, 1.0, stabilizer=stabilizer))
    elif key == "epsilon_gamma_box":
        if low is None or high is None:
            raise InvalidParameterError(
                "composite='epsilon_gamma_box' needs the input bounds: pass low= and high= "
                "(the smallest and largest values an input can take, e.g. the normalised "
                "values of pixels 0 and 1; floats or arrays of one input's shape)."
            )
        conv = (g["conv"], Gamma(gamma, stabilizer=stabilizer))
        first = [(g["conv"], ZBox(low, high, stabilizer=stabilizer))]
    else:
        raise InvalidParameterError(
            f"unknown composite {name!r}; the built-in composites are {list(COMPOSITES)}, "
            "or pass a dict {module path or type: rule}."
        )
    if key.endswith("_flat"):
        first = [(g["linear"], Flat(stabilizer=stabilizer))]
    return Composite([*base, conv, dense], first, name=key)
