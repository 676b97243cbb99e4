"""Image plots: the drawn arrays, colour limits and outlines, checked against hand computations."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import LineCollection

from whybox import Explanation
from whybox.errors import InvalidParameterError
from whybox.games.image import grid_segments
from whybox.viz import images as vi


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _exp(n=2, c=1, h=8, w=8, seed=0, signed=True, k=None, last=False, segments=None, **kw):
    rng = np.random.default_rng(seed)
    shape = (n, h, w, c) if last else (n, c, h, w)
    vals = rng.normal(size=shape + ((k,) if k else ()))
    if not signed:
        vals = np.abs(vals)
    data = rng.random(shape)
    base = np.zeros((n, k)) if k else np.zeros(n)
    meta = {} if segments is None else {"segments": segments}
    return Explanation(
        vals,
        base,
        data=data,
        method="m",
        predictions=base + 1.0,
        output_names=[f"class {j}" for j in range(k)] if k else ["out"],
        meta=meta,
        **kw,
    )


def test_heatmap_is_the_channel_sum_with_symmetric_limits():
    exp = _exp(c=3)
    ax = exp.plot.image(1)
    heat = ax.images[-1]
    expected = exp.values[1].sum(axis=0)
    np.testing.assert_allclose(heat.get_array(), expected)
    m = np.abs(expected).max()
    assert heat.get_clim() == pytest.approx((-m, m))
    assert heat.get_cmap().name == vi.DIVERGING.name
    # the image underneath is the explained input, channels last for imshow
    np.testing.assert_allclose(ax.images[0].get_array(), np.moveaxis(exp.data[1], 0, -1))
    assert heat.get_alpha() == pytest.approx(0.6)
    assert len(ax.figure.axes) == 2  # the colorbar


def test_channel_last_and_non_negative_maps():
    exp = _exp(c=3, last=True, signed=False, params={"channels": "last"})
    ax = vi.image(exp, 0, colorbar=False)
    heat = ax.images[-1]
    expected = exp.values[0].sum(axis=-1)
    np.testing.assert_allclose(heat.get_array(), expected)
    assert heat.get_clim() == pytest.approx((0.0, expected.max()))
    assert heat.get_cmap().name == vi.SEQUENTIAL
    assert len(ax.figure.axes) == 1


def test_grayscale_normalised_inputs_are_rescaled_for_display():
    exp = _exp(c=1)
    exp.data = exp.data * 4.0 - 2.0  # z-scored inputs outside [0, 1]
    ax = vi.image(exp, 0)
    x = exp.data[0, 0]
    np.testing.assert_allclose(ax.images[0].get_array(), (x - x.min()) / (x.max() - x.min()))


def test_segment_outlines_hand_counted():
    seg = grid_segments(8, 8, 16)  # 4 x 4 cells of 2 x 2 pixels
    exp = _exp(segments=np.stack([seg, seg]))
    ax = vi.image(exp, 0)
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(lines) == 1
    # 3 interior vertical boundaries x 8 pixel rows + 3 horizontal x 8 columns
    assert len(lines[0].get_segments()) == 48
    ax2 = vi.image(exp, 0, outline=False)
    assert not [c for c in ax2.collections if isinstance(c, LineCollection)]


def test_segment_boundaries_of_a_small_map():
    seg = np.array([[0, 1], [0, 0]])
    lines = vi.segment_boundaries(seg)
    # edge between (0,0) and (0,1): x = 0.5 from y = -0.5 to 0.5; between (0,1) and (1,1):
    # y = 0.5 from x = 0.5 to 1.5
    expected = {((0.5, -0.5), (0.5, 0.5)), ((0.5, 0.5), (1.5, 0.5))}
    assert {tuple(map(tuple, seg_)) for seg_ in lines} == expected


def test_outline_without_segments_message():
    with pytest.raises(InvalidParameterError, match=r"outline=True needs the segment maps"):
        vi.image(_exp(), 0, outline=True)
    # segment maps not declared per row (meta["row_keys"]) do not follow a row slice: they
    # no longer align with its rows, so outlines are refused, not drawn wrong
    seg = grid_segments(8, 8, 4)
    exp = _exp(segments=np.stack([seg, seg]))
    with pytest.raises(InvalidParameterError, match="outline=True needs the segment maps"):
        vi.image(exp[1], 0, outline=True)


def test_row_slice_keeps_declared_segment_maps_aligned():
    a, b = grid_segments(8, 8, 4), grid_segments(8, 8, 16)
    exp = _exp(segments=np.stack([a, b]))
    exp.meta["row_keys"] = ["segments"]
    ax = vi.image(exp[1], 0, outline=True)
    lines = next(c for c in ax.collections if isinstance(c, LineCollection))
    assert len(lines.get_segments()) == len(vi.segment_boundaries(b))  # row 1's map, not row 0's
    assert len(vi.segment_boundaries(a)) != len(vi.segment_boundaries(b))


def test_several_outputs_need_output():
    exp = _exp(k=3)
    with pytest.raises(InvalidParameterError, match=r"explains 3 outputs.*Pass output="):
        vi.image(exp, 0)
    ax = vi.image(exp, 0, output="class 2")
    np.testing.assert_allclose(ax.images[-1].get_array(), exp.values[0, ..., 2].sum(axis=0))
    ax = vi.image(exp, 1, output=1)
    np.testing.assert_allclose(ax.images[-1].get_array(), exp.values[1, ..., 1].sum(axis=0))


def test_bad_input_messages():
    tab = Explanation(np.zeros((2, 5)), np.zeros(2))
    with pytest.raises(InvalidParameterError, match=r"needs an explanation of images"):
        vi.image(tab, 0)
    with pytest.raises(InvalidParameterError, match="row 5 is out of range"):
        vi.image(_exp(), 5)
    with pytest.raises(InvalidParameterError, match="alpha must be a number in"):
        vi.image(_exp(), 0, alpha=2)


def test_compare_draws_each_method_per_image():
    a, b = _exp(seed=1), _exp(seed=2, signed=False)
    fig = vi.compare({"A": a, "B": b}, [0, 1])
    axes = np.array(fig.axes).reshape(2, 3)
    for r in range(2):
        np.testing.assert_allclose(axes[r, 0].images[0].get_array(), a.data[r, 0])
        np.testing.assert_allclose(axes[r, 1].images[-1].get_array(), a.values[r].sum(axis=0))
        np.testing.assert_allclose(axes[r, 2].images[-1].get_array(), b.values[r].sum(axis=0))
    assert [ax.get_title() for ax in axes[0]] == ["input", "A", "B"]
    fig2 = vi.compare([a, b], 0, titles=["x", "y"], show_input=False)
    assert [ax.get_title() for ax in fig2.axes] == ["x", "y"]


def test_compare_messages():
    a = _exp()
    with pytest.raises(InvalidParameterError, match="got 1 titles for 2 explanations"):
        vi.compare([a, a], 0, titles=["x"])
    small = _exp(h=4, w=4)
    with pytest.raises(InvalidParameterError, match=r"images of size \(4, 4\)"):
        vi.compare({"a": a, "small": small}, 0)
    with pytest.raises(InvalidParameterError, match="at least one explanation"):
        vi.compare([], 0)
