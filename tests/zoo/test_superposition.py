"""Tests of whybox.zoo.superposition: Toy Models of Superposition (Elhage et al. 2022).

The reproduction is the paper's opening example: 5 features in 2 dimensions, importance
``0.9**i``. At sparsity 0 the two most important features sit on orthogonal directions and the
other three are dropped; at sparsity 0.8 four features are stored as two antipodal pairs (the
least important dropped); at sparsity 0.9 all five form a pentagon.

Oracles (none from the code under test): the geometry helpers on hand-built embeddings whose
norms, angles and dimensionalities are known in closed form (a pair: ``D = 1/2``; a pentagon:
``D = 1 / (1 + 2 cos^2 72 + 2 cos^2 144) = 2/5``; a triangle ``2/3``); at sparsity 0 the loss
of the PCA-like optimum is ``sum_{i >= 2} I_i Var(U[0, 1]) = (0.9^2 + 0.9^3 + 0.9^4) / 12`` (the
two kept features reconstructed exactly, the dropped ones predicted by their mean 1/2 through
the bias); losses recomputed here in numpy from ``W`` and ``b``.

Measured (seeds 0-2, one thread, ~3-5 s per regime): S 0: norms (1.00, 1.00, <= 0.012,
<= 0.006, <= 0.005), loss 0.1828-0.1829 (closed form 0.18293); S 0.8: norms 1.00-1.015 for
features 0-3 and <= 0.004 for feature 4, pairs (0, 3) + (1, 2) or (0, 2) + (1, 3) at 90 degrees
to each other, D 0.494-0.506; S 0.9: pentagon, adjacent angles 69.5-73.9 degrees, norms
1.08-1.11, D 0.387-0.411, loss 0.0211-0.0217 (the instances stuck in other minima 0.026-0.030).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from whybox.errors import InvalidInputError, InvalidParameterError
from whybox.zoo.superposition import (
    classify_geometry,
    dimensions_per_feature,
    feature_angles,
    feature_dimensionality,
    feature_norms,
    sample_sparse_features,
    toy_superposition_model,
)


def _polar(degrees, norms=None) -> np.ndarray:
    """Columns (cos a, sin a) * norm: a 2-d embedding with features at these angles."""
    a = np.radians(np.asarray(degrees, dtype=float))
    r = np.ones_like(a) if norms is None else np.asarray(norms, dtype=float)
    return np.stack([np.cos(a), np.sin(a)]) * r


# ------------------------------------------------------------------ geometry by hand


def test_orthogonal_embedding_by_hand():
    W = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(feature_norms(W), [2.0, 1.0, 0.0])
    np.testing.assert_allclose(feature_dimensionality(W), [1.0, 1.0, 0.0])
    A = feature_angles(W)
    assert A[0, 1] == pytest.approx(90.0) and A[0, 0] == pytest.approx(0.0, abs=1e-6)
    assert np.isnan(A[2]).all() and np.isnan(A[:, 2]).all()
    assert dimensions_per_feature(W) == pytest.approx(2 / 5)  # m / ||W||_F^2 = 2 / (4 + 1)
    g = classify_geometry(W, norm_threshold=0.4)
    assert (g.kind, g.represented) == ("orthogonal", (0, 1))
    # a stricter threshold leaves only the longest feature: one feature is trivially orthogonal
    assert classify_geometry(W, norm_threshold=0.6).represented == (0,)


def test_antipodal_pairs_by_hand():
    W = np.concatenate([_polar([10, 100, 190, 280]), np.array([[0.01], [0.0]])], axis=1)
    np.testing.assert_allclose(feature_dimensionality(W)[:4], 0.5, atol=1e-3)
    assert feature_dimensionality(W)[4] < 1e-3
    A = feature_angles(W)
    assert A[0, 2] == pytest.approx(180.0, abs=1e-4) and A[0, 1] == pytest.approx(90.0)
    g = classify_geometry(W)
    assert g.kind == "antipodal" and g.represented == (0, 1, 2, 3)
    assert set(g.pairs) == {(0, 2), (1, 3)}
    np.testing.assert_allclose(g.adjacent_angles, 90.0, atol=1e-6)
    # one pair and one feature orthogonal to it is antipodal too; a fourth feature at 45 degrees
    # to the pair is not
    assert classify_geometry(_polar([0, 180, 90])).kind == "antipodal"
    assert classify_geometry(_polar([0, 180, 45])).kind == "other"


def test_pentagon_by_hand():
    W = _polar(np.arange(5) * 72 + 13)
    expected_d = 1 / (
        1 + 2 * math.cos(math.radians(72)) ** 2 + 2 * math.cos(math.radians(144)) ** 2
    )
    assert expected_d == pytest.approx(0.4)
    np.testing.assert_allclose(feature_dimensionality(W), expected_d)
    assert dimensions_per_feature(W) == pytest.approx(2 / 5)
    g = classify_geometry(W)
    assert g.kind == "pentagon" and g.pairs == ()
    np.testing.assert_allclose(g.adjacent_angles, 72.0, atol=1e-6)
    assert sorted(g.order) == [0, 1, 2, 3, 4] and g.adjacent_angles.sum() == pytest.approx(360)
    # shuffled columns: the order round the circle follows the angles, not the column index
    g = classify_geometry(_polar([0, 144, 288, 72, 216]))
    assert g.kind == "pentagon" and g.order == (0, 3, 1, 4, 2)
    # one vertex moved by 15 degrees: no longer a regular pentagon
    assert classify_geometry(_polar([0, 72, 144, 216, 303])).kind == "other"
    assert classify_geometry(_polar([0, 72, 144, 216, 292])).kind == "pentagon"  # 4 deg off


def test_triangle_on_a_tilted_plane_in_three_dimensions():
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    W = Q[:, :2] @ _polar([5, 125, 245])  # (3, 3): a triangle on a random plane of R^3
    np.testing.assert_allclose(feature_dimensionality(W), 2 / 3)  # 1 / (1 + 2 * 0.25)
    g = classify_geometry(W)
    assert g.kind == "triangle"
    np.testing.assert_allclose(g.adjacent_angles, 120.0, atol=1e-6)
    assert g.order == (0, 1, 2)
    # a shuffled pentagon on that plane: from feature 0 to its lower-numbered neighbour first
    g = classify_geometry(Q[:, :2] @ _polar([0, 144, 288, 72, 216]))
    assert g.kind == "pentagon" and g.order == (0, 2, 4, 1, 3)
    np.testing.assert_allclose(g.adjacent_angles, 72.0, atol=1e-6)
    # lifted off the plane it is neither a triangle nor orthogonal
    W2 = W + Q[:, 2:] @ np.array([[0.5, 0.5, 0.5]])
    assert classify_geometry(W2).kind == "other" and classify_geometry(W2).adjacent_angles.size == 0


def test_geometry_is_rotation_invariant():
    rng = np.random.default_rng(1)
    W = rng.normal(size=(4, 7))
    Q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    np.testing.assert_allclose(feature_dimensionality(Q @ W), feature_dimensionality(W))
    np.testing.assert_allclose(feature_angles(Q @ W), feature_angles(W), atol=1e-6)
    # D by its definition, in a loop
    d = [
        np.dot(W[:, i], W[:, i]) ** 2 / sum(np.dot(W[:, i], W[:, j]) ** 2 for j in range(7))
        for i in range(7)
    ]
    np.testing.assert_allclose(feature_dimensionality(W), d)


def test_nothing_represented_and_bad_weights():
    assert classify_geometry(np.zeros((2, 3))).kind == "none"
    np.testing.assert_array_equal(feature_dimensionality(np.zeros((2, 3))), 0.0)
    assert dimensions_per_feature(np.zeros((2, 3))) == math.inf
    with pytest.raises(InvalidInputError, match="d_hidden, n_features"):
        feature_norms(np.ones(3))
    with pytest.raises(InvalidInputError, match="NaN"):
        feature_angles(np.array([[1.0, np.nan]]))
    with pytest.raises(InvalidParameterError, match="norm_threshold"):
        classify_geometry(np.eye(2), norm_threshold=1.5)


# ------------------------------------------------------------------ inputs


def test_sampled_inputs_have_the_sparsity_and_uniform_values():
    x = sample_sparse_features(40_000, 5, 0.8, random_state=3)
    assert x.shape == (40_000, 5) and x.dtype == np.float32
    zero = (x == 0).mean()
    assert abs(zero - 0.8) < 4 * math.sqrt(0.8 * 0.2 / x.size)  # binomial, 4 sigma
    active = x[x > 0]
    assert abs(active.mean() - 0.5) < 4 * math.sqrt(1 / 12 / active.size)
    assert active.max() <= 1.0
    np.testing.assert_array_equal(x, sample_sparse_features(40_000, 5, 0.8, random_state=3))
    assert (sample_sparse_features(100, 5, 0.0, random_state=0) > 0).all()


def test_bad_settings_are_refused():
    with pytest.raises(InvalidParameterError, match="sparsity"):
        sample_sparse_features(5, 3, 1.0)
    with pytest.raises(InvalidParameterError, match="importance"):
        toy_superposition_model(importance=[1.0, 0.5], cache=False)
    with pytest.raises(InvalidParameterError, match="importance"):
        toy_superposition_model(importance=-0.9, cache=False)
    with pytest.raises(InvalidParameterError, match="d_hidden"):
        toy_superposition_model(d_hidden=0, cache=False)
    with pytest.raises(InvalidParameterError, match="lr"):
        toy_superposition_model(lr=0.0, cache=False)


def test_training_is_seeded_and_cached(tmp_path):
    kw = {"n_features": 3, "d_hidden": 2, "sparsity": 0.5, "steps": 20, "n_instances": 2}
    a = toy_superposition_model(seed=4, cache=False, **kw)
    b = toy_superposition_model(seed=4, cache_dir=tmp_path, **kw)
    c = toy_superposition_model(seed=4, cache_dir=tmp_path, **kw)  # from the cache
    d = toy_superposition_model(seed=5, cache=False, **kw)
    np.testing.assert_array_equal(a.W, b.W)
    np.testing.assert_array_equal(b.W, c.W)
    np.testing.assert_array_equal(b.b, c.b)
    assert not np.array_equal(a.W, d.W)
    assert a.W.shape == (2, 3) and a.b.shape == (3,) and a.losses.shape == (2,)
    assert a.loss == a.losses.min()
    np.testing.assert_allclose(a.importance, [1.0, 0.9, 0.81])
    with pytest.raises(InvalidInputError, match="rows, 3"):
        a.hidden(np.ones((2, 4)))


# ------------------------------------------------------------------ the paper's regimes


def _numpy_loss(model, x) -> float:
    out = np.maximum(x @ model.W.T @ model.W + model.b, 0.0)
    return float(((0.9 ** np.arange(5)) * (x - out) ** 2).sum(1).mean())


@pytest.fixture(scope="module")
def regimes(zoo_cache):
    return {s: toy_superposition_model(sparsity=s, cache_dir=zoo_cache) for s in (0.0, 0.8, 0.9)}


def test_dense_features_top_two_orthogonal(regimes):
    m = regimes[0.0]
    norms = np.linalg.norm(m.W, axis=0)
    np.testing.assert_allclose(norms[:2], 1.0, atol=0.02)
    assert norms[2:].max() < 0.05
    cos = m.W[:, 0] @ m.W[:, 1] / (norms[0] * norms[1])
    assert abs(cos) < math.sin(math.radians(2))
    g = m.geometry()
    assert (g.kind, g.represented) == ("orthogonal", (0, 1))
    np.testing.assert_allclose(m.dimensionality()[:2], 1.0, atol=0.01)
    # the PCA-like optimum: kept features exact (bias 0), dropped ones predicted by their mean
    np.testing.assert_allclose(m.b[:2], 0.0, atol=0.02)
    np.testing.assert_allclose(m.b[2:], 0.5, atol=0.02)
    closed_form = (0.9**2 + 0.9**3 + 0.9**4) / 12
    x = sample_sparse_features(200_000, 5, 0.0, random_state=11).astype(np.float64)
    assert _numpy_loss(m, x) == pytest.approx(closed_form, rel=0.01)
    assert m.loss == pytest.approx(closed_form, rel=0.01)


def test_sparsity_08_antipodal_pairs(regimes):
    m = regimes[0.8]
    norms = np.linalg.norm(m.W, axis=0)
    kept = np.flatnonzero(norms > 0.5)
    np.testing.assert_array_equal(kept, [0, 1, 2, 3])  # the least important feature is dropped
    np.testing.assert_allclose(norms[kept], 1.0, atol=0.05)
    assert norms[4] < 0.05
    unit = m.W[:, kept] / norms[kept]
    cos = unit.T @ unit
    partner = cos.argmin(1)
    assert (partner[partner] == np.arange(4)).all()  # pairs: each feature's most opposite one
    np.testing.assert_allclose(cos[np.arange(4), partner], -1.0, atol=1 - math.cos(math.radians(3)))
    g = m.geometry()
    assert g.kind == "antipodal" and len(g.pairs) == 2 and g.represented == (0, 1, 2, 3)
    np.testing.assert_allclose(g.adjacent_angles, 90.0, atol=3.0)  # the two pairs orthogonal
    np.testing.assert_allclose(m.dimensionality()[:4], 0.5, atol=0.03)
    x = sample_sparse_features(100_000, 5, 0.8, random_state=12).astype(np.float64)
    assert _numpy_loss(m, x) == pytest.approx(m.loss, rel=0.03)


def test_sparsity_09_pentagon(regimes):
    m = regimes[0.9]
    norms = np.linalg.norm(m.W, axis=0)
    np.testing.assert_allclose(norms, 1.1, atol=0.06)  # all five represented
    polar = np.sort(np.degrees(np.arctan2(m.W[1], m.W[0])) % 360)
    gaps = np.diff(np.append(polar, polar[0] + 360))
    np.testing.assert_allclose(gaps, 72.0, atol=5.0)
    g = m.geometry()
    assert g.kind == "pentagon" and g.represented == (0, 1, 2, 3, 4)
    np.testing.assert_allclose(np.sort(g.adjacent_angles), np.sort(gaps), atol=1e-6)
    np.testing.assert_allclose(m.dimensionality(), 0.4, atol=0.03)
    # superposition pays: the pentagon's loss is below the antipodal model's at S 0.9
    x = sample_sparse_features(100_000, 5, 0.9, random_state=13).astype(np.float64)
    assert _numpy_loss(m, x) == pytest.approx(m.loss, rel=0.03)
    assert _numpy_loss(m, x) < 0.9 * _numpy_loss(regimes[0.8], x)
    assert m.loss_on(x) == pytest.approx(_numpy_loss(m, x), rel=1e-9)
    np.testing.assert_allclose(m.hidden(x[:10]), x[:10] @ m.W.T, rtol=1e-6, atol=1e-7)
