"""Tests of whybox.internals.hooks: addressing, capture, replace, removal on errors."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from whybox.errors import InvalidParameterError, UnsupportedModelError  # noqa: E402
from whybox.internals import hooks  # noqa: E402


def _net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential()
    net.add_module("features", nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 5)))
    net.add_module("fc", nn.Linear(5, 3))
    return net.eval()


def _n_hooks(net: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in net.modules()
    )


def test_get_module_by_path_and_closest_paths_on_error() -> None:
    net = _net()
    assert hooks.get_module(net, "features.2") is net.features[2]
    assert hooks.get_module(net, "") is net
    assert hooks.module_paths(net) == [
        "",
        "features",
        "features.0",
        "features.1",
        "features.2",
        "fc",
    ]
    with pytest.raises(InvalidParameterError) as info:
        hooks.get_module(net, "feature.2")
    msg = str(info.value)
    assert "no module at path 'feature.2'" in msg and "Closest valid paths: 'features.2'" in msg
    with pytest.raises(InvalidParameterError, match="Valid paths include: 'features'"):
        hooks.get_module(net, "zzzzzzzzzzzz")
    with pytest.raises(UnsupportedModelError, match=r"need a torch\.nn\.Module"):
        hooks.get_module(lambda x: x, "fc")


def test_capture_records_outputs_and_inputs_equal_to_manual_forward() -> None:
    net = _net()
    x = torch.randn(7, 4)
    with hooks.capture(net, ["features.1", "fc"], inputs=True) as cache:
        out = net(x)
    h1 = net.features[1](net.features[0](x))
    torch.testing.assert_close(cache["features.1"], h1)
    torch.testing.assert_close(cache["fc"], out)
    torch.testing.assert_close(cache.inputs["fc"][0], net.features(x))
    assert cache.calls == {"features.1": 1, "fc": 1}
    assert _n_hooks(net) == 0
    # not detached: gradients flow to the captured activation (d out / d h for a linear tail)
    with hooks.capture(net, "features.1") as cache:
        y = net(x)[:, 0].sum()
    (g,) = torch.autograd.grad(y, cache["features.1"])
    w = net.fc.weight[0] @ net.features[2].weight
    torch.testing.assert_close(g, w.expand(7, -1).detach())


def test_replace_output_with_tensor_or_function_and_input() -> None:
    net = _net()
    x = torch.randn(3, 4)
    with torch.no_grad():
        with hooks.replace(net, "features.1", torch.zeros(6)):
            out = net(x)
        expected = net.fc(net.features[2](torch.zeros(3, 6)))
        torch.testing.assert_close(out, expected)
        with hooks.replace(net, "features.2", lambda o: 2 * o):
            out = net(x)
        torch.testing.assert_close(out, net.fc(2 * net.features(x)))
        with hooks.replace(net, "fc", torch.ones(3, 5), inputs=True):
            out = net(x)
        torch.testing.assert_close(out, net.fc(torch.ones(3, 5)))
    assert _n_hooks(net) == 0
    with pytest.raises(InvalidParameterError, match="do not broadcast"):
        with hooks.replace(net, "features.1", torch.zeros(4)):
            net(x)
    assert _n_hooks(net) == 0


def test_hooks_are_removed_when_the_forward_raises() -> None:
    net = _net()

    def boom(out):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        with hooks.capture(net, ["features.0", "fc"]):
            with hooks.replace(net, "features.1", boom):
                net(torch.randn(2, 4))
    assert _n_hooks(net) == 0
    with pytest.raises(ValueError, match="inside"):
        with hooks.capture(net, "fc"):
            raise ValueError("inside")
    assert _n_hooks(net) == 0
    # a bad path in a list installs nothing
    with pytest.raises(InvalidParameterError):
        with hooks.capture(net, ["fc", "nope"]):
            pass  # pragma: no cover
    assert _n_hooks(net) == 0
