"""The hooks behind :class:`whybox.propagation.attnlrp.AttnLRP` and the plan of which module gets
which rule.

Every hook keeps the forward values (to rounding) and changes only the backward pass, so that
gradient x input at each tensor is the relevance of the AttnLRP rules (Achtibat et al. 2024).

References
----------
.. [1] Achtibat et al. (2024), "AttnLRP: Attention-aware layer-wise relevance propagation for
   transformers", ICML.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from whybox.errors import UnsupportedModelError
from whybox.internals.hooks import get_module

RULES = ("epsilon", "identity", "norm", "rmsnorm", "pass")

_PASS_TYPES = ("Embedding", "Dropout", "Identity", "Softmax", "Flatten")


def _is_linear(module: Any, torch: Any) -> bool:
    return isinstance(module, torch.nn.Linear) or (
        type(module).__name__ == "Conv1D" and getattr(module, "weight", None) is not None
    )


def _out_features(module: Any, torch: Any) -> int:
    if isinstance(module, torch.nn.Linear):
        return int(module.out_features)
    return int(module.weight.shape[1])  # transformers Conv1D: weight (in, out)


def _is_activation(module: Any, torch: Any) -> bool:
    cls = type(module)
    if isinstance(module, torch.nn.Softmax | torch.nn.Softmin | torch.nn.LogSoftmax):
        return False
    if isinstance(module, torch.nn.MultiheadAttention):
        return False
    mod = cls.__module__
    return mod == "torch.nn.modules.activation" or mod.startswith("transformers.activations")


def _norm_kind(module: Any, torch: Any) -> str | None:
    name = type(module).__name__
    if isinstance(module, torch.nn.LayerNorm) or "LayerNorm" in name:
        return "norm"
    if "RMSNorm" in name or isinstance(module, getattr(torch.nn, "RMSNorm", ())):
        return "rmsnorm"
    return None


def _attention_roles(model: Any, anatomy: Any, torch: Any) -> dict[str, dict[str, Any]]:
    """Extra facts of linear modules: q/k/v projections and gated-MLP input projections."""
    b = anatomy._block
    roles: dict[str, dict[str, Any]] = {}
    hq, hkv = anatomy.n_heads * anatomy.d_head, anatomy.n_kv_heads * anatomy.d_head
    for i in range(anatomy.n_layers):
        blk = f"{anatomy.blocks_path}.{i}"
        if b.qkv is not None:
            if b.qkv_layout == "per_head":
                layout = ("q" * anatomy.d_head + "k" * anatomy.d_head + "v" * anatomy.d_head) * (
                    anatomy.n_heads
                )
            else:
                layout = "q" * hq + "k" * hkv + "v" * hkv
            roles[f"{blk}.{b.qkv}"] = {"role": "qkv", "layout": layout}
        else:
            for rel, role in ((b.q, "qk"), (b.k, "qk"), (b.v, "v")):
                if rel is not None:
                    roles[f"{blk}.{rel}"] = {"role": role}
        if b.mlp is None:
            continue
        mlp_path = f"{blk}.{b.mlp}" if b.mlp else blk
        down = f"{blk}.{b.mlp_down}"
        mlp = get_module(model, mlp_path)
        ins = [
            (f"{mlp_path}.{n}", m)
            for n, m in mlp.named_modules()
            if n and _is_linear(m, torch) and f"{mlp_path}.{n}" != down
        ]
        gated = len(ins) >= 2 or any(_out_features(m, torch) == 2 * anatomy.d_mlp for _, m in ins)
        if gated:  # uniform rule on act(gate) * up: each factor gets half
            for path, _ in ins:
                roles[path] = {"factor": 0.5}
    return roles


def classify_modules(
    model: Any, anatomy: Any, rules: Mapping[str, str]
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Path -> (kind, extra) for every module that gets a hook.

    kind is ``"linear"`` (epsilon rule, with an optional gradient factor or role),
    ``"identity"`` (elementwise activation) or ``"norm"`` (``extra["centred"]``).

    Raises
    ------
    UnsupportedModelError
        A leaf module with parameters whose type has no rule.
    """
    import torch

    roles = _attention_roles(model, anatomy, torch)
    plan: dict[str, tuple[str, dict[str, Any]]] = {}
    skip = {anatomy.embed_path, anatomy.pos_embed_path}
    for path, module in model.named_modules():
        if not path or path in skip:
            continue
        rule = rules.get(path, rules.get(type(module).__name__))
        if rule is None:
            if _is_linear(module, torch):
                rule = "epsilon"
            elif _norm_kind(module, torch) is not None:
                rule = _norm_kind(module, torch)
            elif _is_activation(module, torch):
                rule = "identity"
            elif next(module.children(), None) is not None:
                continue  # a container: its leaves get the rules
            elif type(module).__name__.endswith(_PASS_TYPES) or not any(
                True for _ in module.parameters(recurse=False)
            ):
                continue
            else:
                raise UnsupportedModelError(
                    f"AttnLRP has no rule for the module {path!r} of type "
                    f"{type(module).__name__}. Register one: AttnLRP(model, rules="
                    f"{{{type(module).__name__!r}: 'epsilon'}}) for a linear map, 'identity' "
                    "for an elementwise activation, 'norm' / 'rmsnorm' for a normalisation, "
                    "'pass' to keep its ordinary gradient."
                )
        if rule == "epsilon":
            plan[path] = ("linear", dict(roles.get(path, {})))
        elif rule == "identity":
            plan[path] = ("identity", {})
        elif rule in ("norm", "rmsnorm"):
            plan[path] = ("norm", {"centred": rule == "norm"})
    return plan


def grad_scale_hook(factor: Any, epsilon: float) -> Callable[..., Any]:
    """Forward hook on a linear layer: its output's gradient times ``factor`` (a number or a
    per-feature vector) and the epsilon rule's ``|z| / (|z| + epsilon)``."""

    def hook(module: Any, args: Any, output: Any) -> Any:
        if not getattr(output, "requires_grad", False):
            return None
        z = output.detach()

        def scale(g: Any) -> Any:
            if epsilon > 0:
                a = z.abs()
                g = g * (a / (a + epsilon))
            if isinstance(factor, float | int):
                return g if factor == 1 else g * factor
            return g * factor.to(device=g.device, dtype=g.dtype)

        output.register_hook(scale)
        return None

    return hook


def activation_hook(module: Any, args: Any, output: Any) -> Any:
    """Forward hook on an elementwise activation: identity rule, ``x * (f(x) / x)`` with the
    ratio detached (forward value unchanged to rounding; where ``x = 0`` the output is 0)."""
    import torch

    if not args or not getattr(output, "requires_grad", False):
        return None
    x = args[0]
    with torch.no_grad():
        zero = x == 0
        ratio = output / torch.where(zero, torch.ones_like(x), x)
    return x * ratio


def norm_hook(*, centred: bool) -> Callable[..., Any]:
    """Forward hook on a LayerNorm (``centred``) or RMSNorm: identity rule with the normalising
    scale detached: ``c * ((y - b) / c)`` with the ratio detached, ``c = x - mean(x)`` or ``x``."""

    def hook(module: Any, args: Any, output: Any) -> Any:
        import torch

        if not args or not getattr(output, "requires_grad", False):
            return None
        x = args[0]
        bias = getattr(module, "bias", None)
        bias = bias if isinstance(bias, torch.Tensor) else None
        c = x - x.mean(-1, keepdim=True) if centred else x
        with torch.no_grad():
            cd = c.detach()
            y = output if bias is None else output - bias
            ratio = y / torch.where(cd == 0, torch.ones_like(cd), cd)
        out = c * ratio
        if bias is not None:
            out = out + bias.detach()
        return out.to(output.dtype)

    return hook
