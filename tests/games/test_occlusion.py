"""Occlusion against Captum's Occlusion, a hand computation, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import whybox as wb
from whybox.errors import InvalidParameterError
from whybox.games.image import ImageMasker
from whybox.games.occlusion import WindowGame, occlusion_attributions, window_boxes

torch = pytest.importorskip("torch")
captum_attr = pytest.importorskip("captum.attr")


def _cnn(seed=0, c=1, out=4):
    g = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(c, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 4, 3, padding=1),
        torch.nn.Tanh(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 64, out),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.4)
    return net.eval()


def _x(n=4, c=1, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, c, 8, 8), generator=g).to(dtype)


@pytest.mark.parametrize(
    "window, stride, baseline",
    [
        ((1, 3, 3), (1, 1, 1), 0.0),
        ((1, 2, 2), (1, 2, 2), 0.5),
        ((1, 3, 3), (1, 2, 2), 0.0),  # the last window is cropped at the border
        ((1, 4, 3), (1, 3, 1), -0.2),
    ],
)
def test_matches_captum_occlusion(window, stride, baseline):
    net = _cnn().double()
    x = _x()
    ours = wb.Occlusion(net, window=window, stride=stride, baseline=baseline).explain(x, target=2)
    ref = captum_attr.Occlusion(net).attribute(
        x, sliding_window_shapes=window, strides=stride, baselines=baseline, target=2
    )
    assert ours.values.shape == tuple(x.shape)
    np.testing.assert_allclose(ours.values, ref.numpy(), atol=1e-6, rtol=0)
    with torch.no_grad():
        np.testing.assert_allclose(ours.predictions, net(x)[:, 2].numpy(), rtol=1e-12)
        full = torch.full_like(x, baseline)
        np.testing.assert_allclose(ours.base_values, net(full)[:, 2].numpy(), rtol=1e-12)


def test_matches_captum_float32_multichannel_and_tensor_baseline():
    net = _cnn(seed=1, c=3)
    x = _x(3, c=3, seed=1, dtype=torch.float32)
    base = torch.rand((3, 3, 8, 8), generator=torch.Generator().manual_seed(5))
    ours = wb.Occlusion(net, window=(3, 2, 2), stride=(3, 1, 1), baseline=base).explain(x, target=0)
    ref = captum_attr.Occlusion(net).attribute(
        x, sliding_window_shapes=(3, 2, 2), strides=(3, 1, 1), baselines=base, target=0
    )
    # float32 model: the same inputs and outputs, rounding at float32's ~1e-7 relative
    np.testing.assert_allclose(ours.values, ref.numpy(), atol=1e-5, rtol=1e-5)
    assert ours.params["baseline"] == "per input"


def test_batching_and_memory_bound_do_not_change_values():
    net = _cnn(seed=2).double()
    x = _x(5, seed=2)
    big = wb.Occlusion(net, window=(1, 2, 2)).explain(x, target="all")
    tiny = wb.Occlusion(net, window=(1, 2, 2), chunk_bytes=10 * x[0].numel() * 8).explain(
        x, target="all"
    )
    assert big.values.shape == (5, 1, 8, 8, 4)
    np.testing.assert_allclose(big.values, tiny.values, atol=1e-12)
    # the single-image game engine gives the same numbers
    boxes = window_boxes((1, 8, 8), (1, 2, 2), (1, 1, 1))
    game = WindowGame(net, x[3].numpy(), np.zeros(1), boxes, "first", target="all")
    v, v_full, _ = occlusion_attributions(game)
    np.testing.assert_allclose(v, big.values[3], atol=1e-12)
    np.testing.assert_allclose(v_full, big.predictions[3], atol=1e-12)


def test_hand_computed_on_a_quadratic_function():
    # f(x) = (sum x)^2 on a 1x1x4 "image", window 2, stride 1: 3 windows
    def f(X):
        X = np.asarray(X, dtype=float)
        return X.reshape(len(X), -1).sum(axis=1) ** 2

    x = np.array([[[[1.0, 2.0, 3.0, 4.0]]]])
    exp = wb.Occlusion(f, window=(1, 1, 2), stride=1, baseline=0.0).explain(x)
    s = 10.0
    drops = [s**2 - (s - 3) ** 2, s**2 - (s - 5) ** 2, s**2 - (s - 7) ** 2]  # 51, 75, 91
    expected = [drops[0], (drops[0] + drops[1]) / 2, (drops[1] + drops[2]) / 2, drops[2]]
    np.testing.assert_allclose(exp.values[0, 0, 0], expected, rtol=1e-12)
    assert exp.n_evals == 3 + 2
    # the same on a table (n, p): occlusion needs no image layout
    flat = wb.Occlusion(f, window=2, stride=1).explain(x.reshape(1, 4))
    np.testing.assert_allclose(flat.values[0], expected, rtol=1e-12)


def test_window_positions_like_captum():
    boxes = window_boxes((1, 8, 8), (1, 3, 3), (1, 2, 2))
    # ceil((8 - 3) / 2) + 1 = 4 positions per spatial axis, the last cropped to 6:8
    assert len(boxes) == 16
    assert boxes[-1] == (slice(0, 1), slice(6, 8), slice(6, 8))


def test_bad_parameters_messages():
    net = _cnn()
    x = _x(1, dtype=torch.float32)
    with pytest.raises(InvalidParameterError, match=r"window .* is larger than the input"):
        wb.Occlusion(net, window=(1, 9, 3)).explain(x)
    with pytest.raises(InvalidParameterError, match=r"stride .* larger than the window"):
        wb.Occlusion(net, window=(1, 2, 2), stride=(1, 3, 3)).explain(x)
    with pytest.raises(InvalidParameterError, match="has 2 entries but one input has 3 axes"):
        wb.Occlusion(net, window=(3, 3)).explain(x)
    with pytest.raises(InvalidParameterError, match=r"baseline of shape .* does not broadcast"):
        wb.Occlusion(net, baseline=np.zeros((2, 8, 8))).explain(x)
    with pytest.raises(InvalidParameterError, match="unknown target 7"):
        wb.Occlusion(net).explain(x, target=7)


def test_occlusion_of_segments_is_leave_one_out_of_the_image_game():
    """The same engine: a segment's leave-one-out drop in ImageGame equals window occlusion
    when the windows are the grid cells."""
    net = _cnn(seed=3).double()
    x = _x(1, seed=3)
    occ = wb.Occlusion(net, window=(1, 4, 4), stride=(1, 4, 4)).explain(x, target=1)
    game = wb.ImageGame(net, x[0], ImageMasker("grid", n_segments=4), target=1)
    full = np.ones(4, dtype=bool)
    drops = game.value(full[None])[0, 0] - game.value(~np.eye(4, dtype=bool))[:, 0]
    expected = drops[game.segments]
    np.testing.assert_allclose(occ.values[0, 0], expected, atol=1e-12)
