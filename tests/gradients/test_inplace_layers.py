"""Layer attribution on layers whose output the model changes in place (issue 13, item 10).

A torchvision-style ResNet BasicBlock (written here; torchvision is not installed): ``bn2``
is followed by ``out += identity`` and ``bn1`` by ``ReLU(inplace=True)``. Oracles: Captum's
``LayerGradCam`` on the same layer, a hand-written forward hook (not whybox's) for
``f(x | layer = a(baseline))``, and a linear block whose layer IG is ``w * (a(x) - a(b))``.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
captum_attr = pytest.importorskip("captum.attr")
nn = torch.nn

import whybox as wb  # noqa: E402
from whybox.errors import InvalidParameterError, ModelCallError  # noqa: E402
from whybox.internals import hooks  # noqa: E402


class BasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock, written out (same forward, same in-place ops)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out


def _resnet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential()
    net.add_module("stem", nn.Conv2d(1, 4, 3, padding=1))
    net.add_module("stem_relu", nn.ReLU(inplace=True))
    net.add_module("layer1", nn.Sequential(BasicBlock(4, 4), BasicBlock(4, 8, stride=2)))
    net.add_module("pool", nn.AdaptiveAvgPool2d(1))
    net.add_module("flat", nn.Flatten())
    net.add_module("fc", nn.Linear(8, 3))
    net = net.double()
    # non-trivial running statistics, as after training
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g, dtype=torch.float64))
            m.running_var.copy_(torch.rand(m.num_features, generator=g, dtype=torch.float64) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g, dtype=torch.float64))
            m.bias.data.copy_(torch.randn(m.num_features, generator=g, dtype=torch.float64))
    return net.eval()


def _x(n: int = 3, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g, dtype=torch.float64)


#: every module of the blocks that runs once per forward pass (the block's ReLU runs twice)
SINGLE_CALL_LAYERS = [
    "layer1.0.conv1",
    "layer1.0.bn1",
    "layer1.0.conv2",
    "layer1.0.bn2",
    "layer1.0",
    "layer1.1.conv1",
    "layer1.1.bn1",
    "layer1.1.conv2",
    "layer1.1.bn2",
    "layer1.1.downsample.0",
    "layer1.1.downsample.1",
    "layer1.1",
    "stem",
]


def _n_hooks(net: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in net.modules()
    )


@pytest.mark.parametrize("layer", SINGLE_CALL_LAYERS)
def test_gradcam_on_every_layer_of_a_basic_block_equals_captum(layer) -> None:
    net, x = _resnet(), _x()
    target = torch.tensor([0, 2, 1])
    exp = wb.GradCam(net, layer=layer).explain(x, target=target, upsample=False)
    ref = captum_attr.LayerGradCam(net, hooks.get_module(net, layer)).attribute(
        x.clone(), target=target, relu_attributions=True
    )
    np.testing.assert_allclose(exp.values, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    # Grad-CAM++ and signed maps run on the same layers
    wb.GradCamPlusPlus(net, layer=layer).explain(x, target=target, upsample=False)
    assert _n_hooks(net) == 0
    # the explanation's predictions are the model's own outputs, bit for bit
    with torch.no_grad():
        np.testing.assert_array_equal(exp.predictions, net(x)[torch.arange(3), target].numpy())


def _outputs_with_layer_replaced(net, x, layer, value):
    """f(x) with the layer's output replaced by ``value`` (a hand-written hook, not whybox's)."""
    module = hooks.get_module(net, layer)
    handle = module.register_forward_hook(lambda m, a, out: value.clone())
    try:
        with torch.no_grad():
            return net(x)
    finally:
        handle.remove()


def _layer_output(net, x, layer):
    box = []
    module = hooks.get_module(net, layer)
    handle = module.register_forward_hook(lambda m, a, out: box.append(out.clone()))
    try:
        with torch.no_grad():
            net(x)
    finally:
        handle.remove()
    return box[0]


@pytest.mark.parametrize("layer", ["layer1.0.bn2", "layer1.1.bn2", "layer1.0.bn1", "layer1.1"])
def test_layer_ig_after_in_place_ops_is_complete(layer) -> None:
    net, x = _resnet(), _x()
    b = torch.zeros_like(x)
    exp = wb.IntegratedGradients(net).explain(
        x, target=1, baseline=b, layer=layer, tolerance=1e-6, steps=4096
    )
    # base values: f(x | layer = a(baseline)) computed with a plain forward hook
    ref_base = _outputs_with_layer_replaced(net, x, layer, _layer_output(net, b, layer))
    np.testing.assert_allclose(exp.base_values, ref_base[:, 1].numpy(), rtol=1e-12, atol=1e-15)
    with torch.no_grad():
        np.testing.assert_array_equal(exp.predictions, net(x)[:, 1].numpy())
    # values have the layer's shape and complete f(x) - f(x | a = a(b)) (layer-IG definition)
    a_x = _layer_output(net, x, layer)
    assert exp.values.shape == tuple(a_x.shape)
    assert all(exp.meta["converged"])
    sums = exp.values.reshape(3, -1).sum(1)
    np.testing.assert_allclose(sums, exp.predictions - exp.base_values, rtol=1e-6, atol=1e-15)
    np.testing.assert_allclose(exp.data, a_x.numpy(), rtol=0, atol=0)
    assert _n_hooks(net) == 0


class _LinearBlock(nn.Module):
    """y = W2 (bn(W1 x) + x): linear in the batch norm's output a, with ``out += x``."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.lin = nn.Linear(4, 4)
        self.bn = nn.BatchNorm1d(4)
        self.head = nn.Linear(4, 2)
        self.bn.running_mean.uniform_(-1, 1)
        self.bn.running_var.uniform_(0.5, 2)

    def forward(self, x):
        out = self.bn(self.lin(x))
        out += x
        return self.head(out)


def test_layer_ig_of_a_linear_residual_block_is_w_times_the_layer_difference() -> None:
    net = _LinearBlock().double().eval()
    g = np.random.default_rng(0)
    x, b = g.normal(size=(5, 4)), g.normal(size=(5, 4))
    exp = wb.IntegratedGradients(net).explain(x, target=1, baseline=b, layer="bn", steps=2)
    # hand computation: a(z) = (W1 z + c1 - mu) / sqrt(var + eps) * gamma + beta
    W1, c1 = net.lin.weight.detach().numpy(), net.lin.bias.detach().numpy()
    mu, var = net.bn.running_mean.numpy(), net.bn.running_var.numpy()
    gamma, beta = net.bn.weight.detach().numpy(), net.bn.bias.detach().numpy()

    def a(z):
        return (z @ W1.T + c1 - mu) / np.sqrt(var + net.bn.eps) * gamma + beta

    w = net.head.weight.detach().numpy()[1]
    np.testing.assert_allclose(exp.values, w * (a(x) - a(b)), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(exp.completeness_gap(), 0.0, atol=1e-12)


def test_capture_keeps_the_layer_output_and_the_model_output_bit_for_bit() -> None:
    net, x = _resnet(), _x()
    with torch.no_grad():
        plain = net(x)
        manual_bn2 = net.layer1[0].bn2(
            net.layer1[0].conv2(
                net.layer1[0].relu(
                    net.layer1[0].bn1(net.layer1[0].conv1(net.stem_relu(net.stem(x))))
                )
            )
        )
    with torch.no_grad(), hooks.capture(net, ["layer1.0.bn2", "layer1.0.bn1"]) as cache:
        hooked = net(x)
    torch.testing.assert_close(hooked, plain, rtol=0, atol=0)
    # the recorded bn2 output is before `out += identity` (it used to be the sum)
    torch.testing.assert_close(cache["layer1.0.bn2"], manual_bn2, rtol=0, atol=0)
    assert float(cache["layer1.0.bn1"].min()) < 0  # recorded before the in-place ReLU
    with torch.no_grad(), hooks.capture(net, "layer1.0.bn2", detach=True) as cache:
        net(x)
    torch.testing.assert_close(cache["layer1.0.bn2"], manual_bn2, rtol=0, atol=0)
    # differentiable capture: d out / d bn2 through the residual sum and the ReLU
    xx = x.clone()
    with hooks.capture(net, "layer1.0.bn2") as cache:
        out = net(xx)
    (g,) = torch.autograd.grad(out[:, 0].sum(), cache["layer1.0.bn2"])
    a = manual_bn2.clone().requires_grad_(True)
    with hooks.replace(net, "layer1.0.bn2", lambda _o: a * 1.0):
        out2 = net(x)
    (g2,) = torch.autograd.grad(out2[:, 0].sum(), a)
    torch.testing.assert_close(g, g2, rtol=0, atol=0)
    assert _n_hooks(net) == 0


def test_replace_never_writes_into_the_replacement_tensor() -> None:
    net, x = _resnet(), _x()
    value = _layer_output(net, torch.zeros_like(x), "layer1.0.bn2")
    kept = value.clone()
    with torch.no_grad(), hooks.replace(net, "layer1.0.bn2", value):
        net(x)
    torch.testing.assert_close(value, kept, rtol=0, atol=0)  # `out += identity` hit a copy


class _Boom(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = _resnet().layer1[0]

    def forward(self, x):
        self.block(x)
        raise RuntimeError("boom after the layer")


def test_hooks_are_removed_after_an_exception_and_a_reused_relu_is_explained() -> None:
    net = _Boom().eval()
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    with pytest.raises(ModelCallError, match="boom after the layer"):
        wb.GradCam(net, layer="block.bn2").explain(x, target=0)
    with pytest.raises(ModelCallError, match="boom after the layer"):
        wb.IntegratedGradients(net).explain(x, target=0, layer="block.bn2")
    assert _n_hooks(net) == 0
    res = _resnet()
    with pytest.raises(InvalidParameterError, match=r"ran 2 times.*block's path"):
        wb.GradCam(res, layer="layer1.0.relu").explain(_x(), target=0)
    assert _n_hooks(res) == 0


def test_guided_backprop_through_in_place_relus_equals_captum() -> None:
    net, x = _resnet(), _x()
    exp = wb.GuidedBackprop(net).explain(x, target=torch.tensor([0, 1, 2]))
    ref = captum_attr.GuidedBackprop(net).attribute(x.clone(), target=torch.tensor([0, 1, 2]))
    np.testing.assert_allclose(exp.values, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
