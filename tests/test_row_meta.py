"""Per-row meta entries (meta["row_keys"]) follow row selection: segment maps, completeness
gaps, LIME fidelities stay aligned with the rows of a sliced Explanation."""

from __future__ import annotations

import numpy as np
import pytest

import whybox as wb
from whybox.explanation import Explanation


def test_declared_row_keys_are_sliced_and_others_kept():
    meta = {"gap": [0.1, 0.2, 0.3], "maps": np.arange(12).reshape(3, 4), "note": "x"}
    meta["row_keys"] = ["gap", "maps"]
    exp = Explanation(np.zeros((3, 2)), np.zeros(3), meta=meta)
    sub = exp[[2, 0]]
    assert sub.meta["gap"] == [0.3, 0.1]
    np.testing.assert_array_equal(sub.meta["maps"], np.arange(12).reshape(3, 4)[[2, 0]])
    assert sub.meta["note"] == "x" and sub.meta["row_keys"] == ["gap", "maps"]
    assert exp.meta["gap"] == [0.1, 0.2, 0.3]  # the original is untouched
    # an undeclared per-row looking entry is left as it is
    plain = Explanation(np.zeros((3, 2)), np.zeros(3), meta={"gap": [0.1, 0.2, 0.3]})
    assert plain[[2]].meta["gap"] == [0.1, 0.2, 0.3]


def test_lime_fidelity_follows_rows():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))

    def f(Z):
        return np.tanh(Z @ np.array([1.0, -2.0, 0.5]))

    exp = wb.Lime(f, X, random_state=0).explain(X[:4], budget=300)
    sub = exp[[3, 1]]
    assert sub.meta["fidelity"] == [exp.meta["fidelity"][3], exp.meta["fidelity"][1]]
    assert sub.meta["conditions"] == [exp.meta["conditions"][3], exp.meta["conditions"][1]]


def test_integrated_gradients_gaps_follow_rows():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    model.eval()
    x = torch.randn(5, 3)
    exp = wb.IntegratedGradients(model).explain(x, steps=8, method="riemann_left")
    sub = exp[[4, 1]]
    # the oracle: the sliced Explanation's own predictions - base - sum(values)
    np.testing.assert_allclose(sub.meta["completeness_gap"], sub.completeness_gap(), rtol=1e-5)
    adaptive = wb.IntegratedGradients(model).explain(x, tolerance=1e-4)
    assert adaptive[[4, 1]].meta["steps"] == [adaptive.meta["steps"][4], adaptive.meta["steps"][1]]


def test_image_segment_maps_follow_rows():
    rng = np.random.default_rng(0)
    images = rng.random((3, 1, 8, 8))

    def f(Z):
        return np.asarray(Z).sum(axis=(1, 2, 3))

    masker = wb.ImageMasker(segments="slic", n_segments=6, fill="baseline")
    exp = wb.KernelShap(f, masker, random_state=0).explain(images, budget=64)
    sub = exp[[2]]
    np.testing.assert_array_equal(sub.meta["segments"], exp.meta["segments"][[2]])
    np.testing.assert_array_equal(sub.meta["segment_values"][0], exp.meta["segment_values"][2])
    # the per-segment values still add up to the sliced row's pixel values
    np.testing.assert_allclose(sub.meta["segment_values"][0].sum(), sub.values.sum(), atol=1e-10)
