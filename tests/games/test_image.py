"""Image regions as players: segmentation, maskers, the image game and image explanations."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

import whybox as wb
from whybox.errors import InvalidInputError, InvalidParameterError, MissingDependencyError
from whybox.games.image import (
    ImageGame,
    ImageMasker,
    as_image_batch,
    grid_segments,
    lime_image,
    segment,
    spread_to_pixels,
)
from whybox.games.shapley import all_coalitions, exact_shapley

torch = pytest.importorskip("torch")


# ------------------------------------------------------------------ helpers
def _images(n=3, c=1, h=8, w=8, seed=0, last=False):
    rng = np.random.default_rng(seed)
    x = rng.random((n, c, h, w)).astype(np.float32)
    return np.moveaxis(x, 1, -1).copy() if last else x


class _Additive:
    """f(X) = sum over pixels of W * X: additive over any partition of the pixels."""

    def __init__(self, W):
        self.W = np.asarray(W, dtype=float)

    def __call__(self, X):
        X = np.asarray(X, dtype=float)
        return (X * self.W).reshape(X.shape[0], -1).sum(axis=1)


def _segment_truth(f, x, fill, segments, channels):
    """Closed form of an additive model's segment values: sum_{p in S_j} W_p (x_p - fill_p)."""
    contrib = f.W * (x.astype(float) - fill.astype(float))
    if channels == "first":
        contrib = contrib.sum(axis=0)
    elif channels == "last":
        contrib = contrib.sum(axis=-1)
    return np.bincount(segments.ravel(), weights=contrib.ravel())


def _small_cnn(seed=0, c=1):
    g = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(c, 4, 3, padding=1),
        torch.nn.Tanh(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 64, 3),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return net.double().eval()


# ------------------------------------------------------------------ segmentation
def test_grid_segments_hand_computed():
    seg = grid_segments(8, 8, 16)
    expected = np.repeat(np.repeat(np.arange(16).reshape(4, 4), 2, axis=0), 2, axis=1)
    np.testing.assert_array_equal(seg, expected)
    # 6x9 image, 6 cells: 2 rows x 3 columns of 3x3 pixels
    seg = grid_segments(6, 9, 6)
    np.testing.assert_array_equal(seg[:3, :3], 0)
    np.testing.assert_array_equal(seg[3:, 6:], 5)
    assert seg.max() == 5


def test_slic_matches_scikit_image_as_a_partition():
    from skimage.segmentation import slic

    img = _images(1, 3, 16, 16, seed=1)[0]  # channel first
    ours = segment(img, "slic", n_segments=12, compactness=10.0)
    theirs = slic(
        np.moveaxis(img, 0, -1).astype(float),
        n_segments=12,
        compactness=10.0,
        start_label=0,
        channel_axis=-1,
    )
    # same partition, labels renumbered 0..S-1 in order of first appearance
    assert ours.min() == 0 and ours.max() == len(np.unique(theirs)) - 1
    pairs = set(zip(ours.ravel().tolist(), theirs.ravel().tolist(), strict=True))
    assert len(pairs) == len(np.unique(theirs))
    assert ours[0, 0] == 0


def test_segment_layouts_agree_and_grayscale_works():
    x = _images(1, 3, 12, 12, seed=2)[0]
    first = segment(x, "slic", n_segments=8)
    last = segment(np.moveaxis(x, 0, -1), "slic", n_segments=8)
    np.testing.assert_array_equal(first, last)
    gray = segment(x[0], "slic", n_segments=8)
    assert gray.shape == (12, 12) and gray.min() == 0
    qs = segment(x, "quickshift", random_state=0)
    assert qs.shape == (12, 12)


def test_missing_scikit_image_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)
    monkeypatch.setitem(sys.modules, "skimage.segmentation", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'whybox\[torch\]'"):
        segment(_images(1)[0], "slic")
    segment(_images(1)[0], "grid", n_segments=4)  # the grid needs only numpy


# ------------------------------------------------------------------ layouts and bad input
def test_layout_inference():
    assert as_image_batch(_images(2))[1] == "first"
    assert as_image_batch(_images(2, c=3, last=True))[1] == "last"
    assert as_image_batch(_images(2)[:, 0])[1] == "none"
    assert as_image_batch(torch.zeros(2, 5, 8, 8))[1] == "first"


def test_ambiguous_layout_message():
    with pytest.raises(InvalidInputError, match=r"cannot tell where the channel axis.*channels="):
        as_image_batch(np.zeros((2, 3, 5, 3)))
    with pytest.raises(InvalidInputError, match="cannot tell where the channel axis"):
        as_image_batch(np.zeros((2, 8, 8, 8)))
    assert as_image_batch(np.zeros((2, 5, 6, 7)))[1] == "first"
    assert as_image_batch(np.zeros((2, 7, 6, 2)))[1] == "last"


def test_bad_images_messages():
    with pytest.raises(InvalidInputError, match="empty"):
        as_image_batch(np.zeros((0, 1, 8, 8)))
    with pytest.raises(InvalidInputError, match="must have shape"):
        as_image_batch(np.zeros((8, 8)))
    x = _images(3)
    x[1, 0, 2, 2] = np.nan
    with pytest.raises(InvalidInputError, match="NaN or infinite pixel values in 1 of 3 images"):
        as_image_batch(x)
    with pytest.raises(InvalidInputError, match=r"do not match channels='first'"):
        as_image_batch(_images(2)[:, 0], channels="first")


def test_masker_parameter_messages():
    with pytest.raises(InvalidParameterError, match="fill='smear' is not supported"):
        ImageMasker(fill="smear")
    with pytest.raises(InvalidParameterError, match="integer label map"):
        ImageMasker(segments=np.zeros((8, 8), dtype=float))
    with pytest.raises(InvalidParameterError, match="sigma must be a positive"):
        ImageMasker(fill="blur", sigma=-1)
    m = ImageMasker("grid", n_segments=4, value=[0.1, 0.2])
    with pytest.raises(InvalidParameterError, match="value has 2 entries but the images have 3"):
        ImageGame(_Additive(np.ones((3, 8, 8))), _images(1, c=3)[0], m)
    bad = ImageMasker(segments=np.zeros((4, 4), dtype=int))
    with pytest.raises(InvalidInputError, match=r"spatial shape \(8, 8\)"):
        ImageGame(_Additive(np.ones((1, 8, 8))), _images(1)[0], bad)


# ------------------------------------------------------------------ fills and composition
def test_fills_against_scipy_and_hand_means():
    x = _images(1, c=3, h=8, w=8, seed=3)[0]
    seg = grid_segments(8, 8, 4)
    blur = ImageMasker(segments=seg, fill="blur", sigma=1.5).fill_image(x, seg, "first")
    ref = np.stack([gaussian_filter(x[ch].astype(float), 1.5, mode="nearest") for ch in range(3)])
    np.testing.assert_allclose(blur, ref.astype(np.float32), rtol=1e-6)
    mean = ImageMasker(segments=seg, fill="mean").fill_image(x, seg, "first")
    for s in range(4):
        for ch in range(3):
            np.testing.assert_allclose(mean[ch][seg == s], x[ch][seg == s].mean(), rtol=1e-5)
    # channel-last gives the same fills, transposed
    xl = np.moveaxis(x, 0, -1)
    mean_l = ImageMasker(segments=seg, fill="mean").fill_image(xl, seg, "last")
    np.testing.assert_allclose(np.moveaxis(mean_l, -1, 0), mean, rtol=1e-6)
    base = ImageMasker(segments=seg, value=[0.1, 0.2, 0.3]).fill_image(xl, seg, "last")
    np.testing.assert_allclose(base[3, 5], [0.1, 0.2, 0.3], rtol=1e-6)


def test_game_composes_images_by_segment():
    x = _images(1, c=2, seed=4)[0]
    m = ImageMasker("grid", n_segments=4, value=-1.0)
    game = ImageGame(_Additive(np.ones((2, 8, 8))), x, m)
    assert game.n_players == 4
    C = np.array([[True, False, False, True]])
    img = game.images(C)[0]
    np.testing.assert_array_equal(img[:, :4, :4], x[:, :4, :4])
    np.testing.assert_array_equal(img[:, :4, 4:], -1.0)
    np.testing.assert_array_equal(img[:, 4:, :4], -1.0)
    np.testing.assert_array_equal(img[:, 4:, 4:], x[:, 4:, 4:])
    wb.testing.check_game(game)


def test_game_chunks_and_cache():
    x = _images(1, seed=5)[0]
    f = _Additive(np.random.default_rng(0).normal(size=(1, 8, 8)))
    calls = []

    def model(X):
        calls.append(len(X))
        return f(X)

    game = ImageGame(model, x, ImageMasker("grid", n_segments=4), chunk_bytes=3 * x.nbytes)
    C = all_coalitions(4)
    v = game.value(C)
    assert max(calls[1:]) <= 3  # after the one-image probe of wrap_model
    big = ImageGame(f, x, ImageMasker("grid", n_segments=4))
    np.testing.assert_array_equal(v, big.value(C))
    n_calls = len(calls)
    game.value(C[::-1])
    assert len(calls) == n_calls  # cached


# ------------------------------------------------------------------ explanations
@pytest.mark.parametrize("last", [False, True])
@pytest.mark.parametrize("fill", ["baseline", "blur", "mean"])
def test_additive_model_recovered_by_every_estimator(last, fill):
    c = 2
    x = _images(2, c=c, seed=6, last=last)
    channels = "last" if last else "first"
    rng = np.random.default_rng(1)
    W = rng.normal(size=x.shape[1:])
    f = _Additive(W)
    masker = ImageMasker("grid", n_segments=9, fill=fill, value=0.25)
    for explainer, kw in (
        (wb.ExactShap(f, masker), {}),
        (wb.KernelShap(f, masker), {"budget": 100}),
        (wb.PermutationShap(f, masker), {"budget": 100}),
    ):
        exp = explainer.explain(x, **kw)
        assert exp.values.shape == x.shape
        for i in range(len(x)):
            seg = exp.meta["segments"][i]
            fill_img = masker.fill_image(x[i], seg, channels)
            truth = _segment_truth(f, x[i], fill_img, seg, channels)
            np.testing.assert_allclose(exp.meta["segment_values"][i], truth, atol=1e-9)
            # each pixel holds its segment's share; they add up to the segment values
            per_seg = np.bincount(
                seg.ravel(),
                weights=(exp.values[i].sum(axis=-1 if last else 0)).ravel(),
            )
            np.testing.assert_allclose(per_seg, truth, atol=1e-9)
        assert np.abs(exp.completeness_gap()).max() < 1e-8
        assert exp.params["channels"] == channels


def test_torch_model_and_tensor_input():
    net = _small_cnn()
    x = torch.from_numpy(_images(2, seed=7).astype(np.float64))
    masker = ImageMasker("grid", n_segments=6, fill="blur")
    exp = wb.ExactShap(net, masker).explain(x, target=1)
    assert exp.values.shape == (2, 1, 8, 8)
    with torch.no_grad():
        out = net(x)[:, 1].numpy()
    np.testing.assert_allclose(exp.predictions, out, rtol=1e-12)
    assert np.abs(exp.completeness_gap()).max() < 1e-8
    # several outputs: trailing output axis
    both = wb.ExactShap(net, masker).explain(x, target=[0, 2])
    assert both.values.shape == (2, 1, 8, 8, 2)
    np.testing.assert_allclose(
        both.values[..., 1], wb.ExactShap(net, masker).explain(x, target=2).values, atol=1e-12
    )


def test_exact_and_kernel_match_shap_kernel_explainer_on_the_segment_game():
    shap = pytest.importorskip("shap")
    net = _small_cnn(seed=3)
    x = _images(1, seed=8).astype(np.float64)
    masker = ImageMasker("grid", n_segments=9, fill="blur", sigma=1.0)
    game = ImageGame(net, x[0], masker, target=0)

    def f_mask(z):  # shap's image pattern: a function of 0/1 segment masks
        return game.value(np.asarray(z) > 0.5)[:, 0]

    ke = shap.KernelExplainer(f_mask, np.zeros((1, game.n_players)))
    ref = ke.shap_values(np.ones((1, game.n_players)), nsamples=2**game.n_players, l1_reg=False)
    ref = np.asarray(ref).reshape(-1)
    exact = wb.ExactShap(net, masker).explain(x, target=0)
    kernel = wb.KernelShap(net, masker).explain(x, target=0, budget=2**9)
    np.testing.assert_allclose(exact.meta["segment_values"][0], ref, atol=1e-8)
    np.testing.assert_allclose(kernel.meta["segment_values"][0], ref, atol=1e-8)
    np.testing.assert_allclose(exact.base_values[0], ke.expected_value, atol=1e-10)


def test_sampled_kernel_within_standard_errors_of_exact():
    net = _small_cnn(seed=4)
    x = _images(1, seed=9).astype(np.float64)
    masker = ImageMasker("grid", n_segments=12, fill="baseline")
    exact = wb.ExactShap(net, masker).explain(x, target=2).meta["segment_values"][0]
    exp = wb.KernelShap(net, masker, random_state=0).explain(x, target=2, budget=400)
    est, se = exp.meta["segment_values"][0], exp.meta["segment_std"][0]
    assert np.all(se > 0)
    assert np.all(np.abs(est - exact) <= 4 * se)
    assert np.abs(exp.completeness_gap()).max() < 1e-8


def test_lime_image_surrogate_matches_lime_base():
    lime_base = pytest.importorskip("lime.lime_base")
    from sklearn.metrics import pairwise_distances

    net = _small_cnn(seed=5)
    x = _images(1, seed=10).astype(np.float64)
    game = ImageGame(net, x[0], ImageMasker("grid", n_segments=9), target=1)
    rng = np.random.default_rng(0)
    phi, intercept, _std, info = lime_image(
        game, rng, budget=300, n_features=9, feature_selection="none"
    )
    # the same samples, distances and kernel through lime's own LimeBase
    Z = np.random.default_rng(0).integers(0, 2, size=(300, 9)).astype(bool)
    Z[0] = True
    y = game.value(Z)
    d = pairwise_distances(Z.astype(float), Z[:1].astype(float), metric="cosine").ravel()
    base = lime_base.LimeBase(lambda d: np.sqrt(np.exp(-(d**2) / 0.25**2)), random_state=0)
    b_int, b_exp, b_score, _local = base.explain_instance_with_data(
        Z.astype(float), y, d, 0, 9, feature_selection="none"
    )
    ref = np.zeros(9)
    for j, v in b_exp:
        ref[j] = v
    np.testing.assert_allclose(phi[:, 0], ref, atol=1e-8)
    np.testing.assert_allclose(intercept[0], b_int, atol=1e-8)
    np.testing.assert_allclose(info["fidelity"][0], b_score, atol=1e-8)


def test_lime_explainer_on_images():
    net = _small_cnn(seed=6)
    x = _images(2, seed=11).astype(np.float64)
    masker = ImageMasker("grid", n_segments=9)
    exp = wb.Lime(net, masker, n_features=4).explain(x, target=0, budget=200)
    assert exp.values.shape == (2, 1, 8, 8)
    assert all(np.count_nonzero(v) <= 4 for v in exp.meta["segment_values"])
    assert exp.params["kernel_width"] == 0.25
    assert len(exp.meta["fidelity"]) == 2
    game = ImageGame(net, x[1], masker, target=0)
    rng = wb.parallel.row_generator(0, x[1].astype(np.float64))
    phi, *_ = lime_image(game, rng, budget=200, n_features=4)
    np.testing.assert_allclose(exp.meta["segment_values"][1], phi[:, 0], atol=1e-12)


def test_per_image_and_callable_segments():
    f = _Additive(np.random.default_rng(2).normal(size=(1, 8, 8)))
    x = _images(2, seed=12)
    maps = np.stack([grid_segments(8, 8, 4), grid_segments(8, 8, 2)])
    exp = wb.ExactShap(f, ImageMasker(segments=maps)).explain(x)
    assert exp.meta["n_segments"] == [4, 2]
    np.testing.assert_array_equal(exp.meta["segments"], maps)
    called = []

    def seg_fn(img):
        called.append(img.shape)
        return grid_segments(8, 8, 4)

    exp2 = wb.ExactShap(f, ImageMasker(segments=seg_fn)).explain(x[:1])
    assert called[0] == (8, 8, 1)  # channel-last, as scikit-image expects
    np.testing.assert_allclose(exp2.values[0], exp.values[0], atol=1e-12)


class _RowWise:
    """A nonlinear model whose output for a row is computed from that row alone, in a fresh
    contiguous copy, so its bits do not depend on the batch it arrives in."""

    def __init__(self, W):
        self.W = np.asarray(W, dtype=float)

    def __call__(self, X):
        X = np.asarray(X, dtype=float)
        return np.array([np.tanh((np.ascontiguousarray(x) * self.W).sum()) for x in X])


class _BatchDependent(_RowWise):
    """Row i's output moves in the last bits with the batch size, as BLAS/conv kernels may."""

    def __call__(self, X):
        return super().__call__(X) * (1.0 + 2.0**-50 * len(X))


def test_results_do_not_depend_on_batching_or_chunks():
    """The guarantee, precisely: the estimator's arithmetic does not depend on chunking, the
    explained batch or the row's position; the model is evaluated on batches whose shape
    does. A model whose per-row outputs are batch-independent gives bit-identical values; a
    CNN (float64 conv/BLAS kernels may round differently per batch shape) agrees to rounding."""
    x = _images(3, seed=13).astype(np.float64)
    masker = ImageMasker("grid", n_segments=10)
    chunked = {"chunk_bytes": 5 * x[0].nbytes}  # 5 images per model call instead of 256

    def pair(model):
        a = wb.KernelShap(model, masker, random_state=1).explain(x, target=0, budget=120)
        b = wb.KernelShap(model, masker, random_state=1, **chunked).explain(
            x[2:], target=0, budget=120
        )
        return a, b

    a, b = pair(_RowWise(np.random.default_rng(5).normal(size=(1, 8, 8))))
    np.testing.assert_array_equal(a.values[2:], b.values)
    np.testing.assert_array_equal(a.std[2:], b.std)

    # the check can fail: outputs that move with the batch shape move the values
    a, b = pair(_BatchDependent(np.random.default_rng(5).normal(size=(1, 8, 8))))
    assert not np.array_equal(a.values[2:], b.values)

    a, b = pair(_small_cnn(seed=7))
    scale = np.abs(a.values).max()
    np.testing.assert_allclose(a.values[2:], b.values, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(a.std[2:], b.std, rtol=0, atol=1e-12 * scale)


def test_spread_to_pixels_keeps_sums():
    seg = grid_segments(4, 6, 3)
    phi = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.0]])
    out = spread_to_pixels(phi, seg, (3, 4, 6), "first")
    assert out.shape == (3, 4, 6, 2)
    np.testing.assert_allclose(out.sum(axis=(0, 1, 2)), phi.sum(axis=0))
    np.testing.assert_allclose(out[0, 0, 0], phi[0] / (8 * 3))


def test_explainer_image_errors():
    f = _Additive(np.ones((1, 8, 8)))
    masker = ImageMasker("grid", n_segments=4)
    with pytest.raises(InvalidParameterError, match="groups= does not apply to images"):
        wb.KernelShap(f, masker, groups={"a": ["x0"]}).explain(_images(1))
    with pytest.raises(InvalidParameterError, match="cannot explain images"):
        wb.ShapleyInteractions(f, masker).explain(_images(1))
    with pytest.raises(InvalidParameterError, match="budget=5 is below the minimum"):
        wb.KernelShap(f, masker).explain(_images(1), budget=5)
    with pytest.raises(InvalidParameterError, match="ExactShap enumerates all 2\\*\\*n"):
        wb.ExactShap(f, ImageMasker("grid", n_segments=64)).explain(_images(1))


def test_broken_estimator_fails_the_closed_form_check():
    """The additive-model check can fail: an estimator that halves one value is caught."""
    f = _Additive(np.random.default_rng(3).normal(size=(1, 8, 8)))
    x = _images(1, seed=14)
    game = ImageGame(f, x[0], ImageMasker("grid", n_segments=4))
    phi, _, _ = exact_shapley(game)
    truth = _segment_truth(f, x[0], game.fill, game.segments, "first")
    np.testing.assert_allclose(phi[:, 0], truth, atol=1e-9)
    broken = phi[:, 0].copy()
    broken[1] *= 0.5
    assert not np.allclose(broken, truth, atol=1e-9)


class _PicklableAdditive(_Additive):
    """A module-level model class, so worker processes can unpickle it."""


def test_process_backend_gives_identical_values():
    f = _PicklableAdditive(np.random.default_rng(4).normal(size=(1, 8, 8)))
    x = _images(4, seed=15)
    masker = ImageMasker("grid", n_segments=10)
    serial = wb.PermutationShap(f, masker, random_state=2).explain(x, budget=60)
    procs = wb.PermutationShap(f, masker, random_state=2, n_jobs=2).explain(x, budget=60)
    assert procs.params == serial.params
    np.testing.assert_array_equal(procs.values, serial.values)
    np.testing.assert_array_equal(procs.std, serial.std)


def test_image_explanation_saves_and_loads_with_its_segments(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    f = _Additive(np.random.default_rng(5).normal(size=(1, 8, 8)))
    exp = wb.ExactShap(f, ImageMasker("grid", n_segments=4)).explain(_images(2, seed=16))
    back = wb.load(exp.save(tmp_path / "img.whybox"))
    np.testing.assert_array_equal(back.values, exp.values)
    np.testing.assert_array_equal(np.asarray(back.meta["segments"]), exp.meta["segments"])
    np.testing.assert_allclose(back.meta["segment_values"][1], exp.meta["segment_values"][1])
    ax = back.plot.image(1)  # outlines from the loaded segment maps
    assert ax.collections
