"""Grad-CAM, Grad-CAM++, guided backpropagation and Guided Grad-CAM against Captum and
hand computations."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
captum_attr = pytest.importorskip("captum.attr")

import whybox as wb  # noqa: E402
from whybox.errors import InvalidParameterError, UnsupportedModelError  # noqa: E402
from whybox.parallel import row_generator  # noqa: E402  (the documented seeding scheme)


def _np(t):
    return t.detach().numpy()


def _n_hooks(net) -> int:
    return sum(len(m._forward_hooks) + len(m._backward_hooks) for m in net.modules())


def test_gradcam_layer_resolution_equals_captum_layer_gradcam(cnn, x16) -> None:
    model, data = cnn
    target = data.y_test[:16]
    exp = wb.GradCam(model, layer="features.3").explain(x16, target=target, upsample=False)
    ref = captum_attr.LayerGradCam(model, model.features[3]).attribute(
        x16.clone(), target=target, relu_attributions=True
    )
    assert exp.values.shape == (16, 1, 4, 4)
    np.testing.assert_allclose(exp.values, _np(ref), rtol=1e-5, atol=1e-6)
    signed = wb.GradCam(model, layer="features.3", relu=False)
    ref_signed = captum_attr.LayerGradCam(model, model.features[3]).attribute(
        x16.clone(), target=target
    )
    np.testing.assert_allclose(
        signed.explain(x16, target=target, upsample=False).values,
        _np(ref_signed),
        rtol=1e-5,
        atol=1e-6,
    )
    assert exp.params["layer"] == "features.3" and exp.params["upsample"] is False
    assert _n_hooks(model) == 0


def test_gradcam_upsampled_is_the_bilinear_resize_of_the_layer_map(cnn, x16) -> None:
    model, _ = cnn
    gc = wb.GradCam(model, layer="features.3")
    up = gc.explain(x16, target=[1, 4])
    low = gc.explain(x16, target=[1, 4], upsample=False)
    assert up.values.shape == (16, 1, 8, 8, 2)
    for j in range(2):
        ref = captum_attr.LayerAttribution.interpolate(
            torch.as_tensor(low.values[..., j]), (8, 8), interpolate_mode="bilinear"
        )
        np.testing.assert_allclose(up.values[..., j], _np(ref), rtol=1e-6, atol=1e-9)
    near = gc.explain(x16, target=1, mode="nearest").values
    np.testing.assert_allclose(
        near, np.repeat(np.repeat(low.values[..., 0], 2, 2), 2, 3), rtol=1e-5, atol=1e-7
    )


def test_gradcam_plus_plus_equals_the_papers_closed_form(cnn, x16) -> None:
    model, data = cnn
    target = data.y_test[:16]
    exp = wb.GradCamPlusPlus(model, layer="features.3").explain(x16, target=target, upsample=False)
    # hand computation from the layer activations and gradients (plain autograd)
    feats = model.features[:4](x16).detach().requires_grad_(True)
    out = model.fc(model.flatten(model.features[4](feats)))
    (g,) = torch.autograd.grad(out.gather(1, target[:, None]).sum(), feats)
    A, g = feats.detach().double().numpy(), g.double().numpy()
    num = g**2
    den = 2 * g**2 + A.sum((2, 3), keepdims=True) * g**3
    with np.errstate(invalid="ignore", divide="ignore"):
        aij = np.where(g != 0, num / np.where(den == 0, 1.0, den), 0.0)
    w = (aij * np.maximum(g, 0)).sum((2, 3))  # (n, C)
    cam = np.maximum((w[:, :, None, None] * A).sum(1, keepdims=True), 0)
    np.testing.assert_allclose(exp.values, cam, rtol=1e-4, atol=1e-6)
    plain = wb.GradCam(model, layer="features.3").explain(x16, target=target, upsample=False)
    assert not np.allclose(exp.values, plain.values)  # a different weighting


def test_guided_backprop_equals_captum_and_removes_its_hooks(cnn, x16) -> None:
    model, data = cnn
    target = data.y_test[:16]
    exp = wb.GuidedBackprop(model).explain(x16, target=target)
    ref = captum_attr.GuidedBackprop(model).attribute(x16.clone(), target=target)
    np.testing.assert_allclose(exp.values, _np(ref), rtol=1e-5, atol=1e-7)
    assert exp.params["guided_relus"] == 2 and _n_hooks(model) == 0
    plain = wb.Saliency(model, absolute=False).explain(x16, target=target)
    assert not np.allclose(exp.values, plain.values)
    # after guided backprop, plain gradients are back (hooks really removed)
    again = wb.Saliency(model, absolute=False).explain(x16, target=target)
    np.testing.assert_array_equal(again.values, plain.values)


def test_guided_gradcam_equals_captum_with_bilinear_upsampling(cnn, x16) -> None:
    model, data = cnn
    target = data.y_test[:16]
    exp = wb.GuidedGradCam(model, layer="features.3").explain(x16, target=target)
    ref = captum_attr.GuidedGradCam(model, model.features[3]).attribute(
        x16.clone(), target=target, interpolate_mode="bilinear"
    )
    assert exp.values.shape == (16, 1, 8, 8)
    np.testing.assert_allclose(exp.values, _np(ref), rtol=1e-5, atol=1e-7)
    near = wb.GuidedGradCam(model, layer="features.3").explain(x16, target=target, mode="nearest")
    ref_near = captum_attr.GuidedGradCam(model, model.features[3]).attribute(
        x16.clone(), target=target
    )
    np.testing.assert_allclose(near.values, _np(ref_near), rtol=1e-5, atol=1e-7)


class _FunctionalRelu(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3)
        self.fc = torch.nn.Linear(2 * 6 * 6, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def test_bad_layers_and_models(cnn, x16) -> None:
    model, _ = cnn
    with pytest.raises(InvalidParameterError, match=r"no module at path 'features\.9'"):
        wb.GradCam(model, layer="features.9")
    with pytest.raises(InvalidParameterError, match="Grad-CAM needs channels and spatial axes"):
        wb.GradCam(model, layer="fc").explain(x16, target=0)
    with pytest.raises(InvalidParameterError, match="upsample must be True or False"):
        wb.GradCam(model, layer="features.3").explain(x16, target=0, upsample="yes")
    net = _FunctionalRelu().eval()
    with pytest.raises(UnsupportedModelError, match=r"has none \(ReLUs applied with F\.relu"):
        wb.GuidedBackprop(net).explain(torch.rand(2, 1, 8, 8), target=0)
    assert _n_hooks(model) == 0


def test_guided_backprop_handles_inplace_relus_like_captum_on_the_plain_twin() -> None:
    torch.manual_seed(0)

    def net(inplace: bool) -> torch.nn.Module:
        return torch.nn.Sequential(
            torch.nn.Conv2d(1, 4, 3),
            torch.nn.ReLU(inplace=inplace),
            torch.nn.Flatten(),
            torch.nn.Linear(4 * 36, 8),
            torch.nn.ReLU(inplace=inplace),
            torch.nn.Linear(8, 3),
        ).eval()

    a, b = net(True), net(False)
    b.load_state_dict(a.state_dict())
    x = torch.rand(3, 1, 8, 8)
    got = wb.GuidedBackprop(a).explain(x, target=1).values
    ref = captum_attr.GuidedBackprop(b).attribute(x.clone(), target=1)
    np.testing.assert_allclose(got, _np(ref), rtol=1e-6, atol=1e-8)
    assert _n_hooks(a) == 0


def test_smoothgrad_wraps_gradcam_as_the_mean_of_maps_on_the_same_noise(cnn, x16) -> None:
    model, data = cnn
    x, target = x16[:4], data.y_test[:4]
    gc = wb.GradCam(model, layer="features.3")
    got = wb.SmoothGrad(gc, noise=0.1, n_samples=3, random_state=1).explain(
        x, target=target, upsample=False
    )
    # the noise SmoothGrad documents: each example's own stream (seed + content), 3 draws
    eps = np.stack(
        [row_generator(1, r).standard_normal((3, *r.shape)) for r in x.double().numpy()], axis=1
    )
    span = (x.reshape(4, -1).max(1).values - x.reshape(4, -1).min(1).values).double()
    maps = []
    for s in range(3):
        noisy = x.double() + 0.1 * span.reshape(-1, 1, 1, 1) * torch.as_tensor(eps[s])
        maps.append(gc.explain(noisy.float(), target=target, upsample=False).values)
    np.testing.assert_allclose(got.values, np.mean(maps, axis=0), rtol=1e-5, atol=1e-7)
    assert got.values.shape == (4, 1, 4, 4)
