"""Games and maskers: composition of masked inputs, dtypes, caching, chunking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from whybox.errors import InvalidInputError, InvalidParameterError
from whybox.games.game import TabularGame, group_matrix
from whybox.games.maskers import Baseline, Independent
from whybox.testing import check_game


def test_independent_compose_array_is_coalition_major():
    bg = np.array([[10.0, 20.0, 30.0], [11.0, 21.0, 31.0]])
    x = np.array([1.0, 2.0, 3.0])
    masks = np.array([[True, False, True], [False, False, False]])
    out = Independent(bg).compose(x, masks)
    expected = np.array([[1, 20, 3], [1, 21, 3], [10, 20, 30], [11, 21, 31]], dtype=float)
    np.testing.assert_array_equal(out, expected)


def test_independent_compose_frame_keeps_dtypes_and_values():
    bg = pd.DataFrame(
        {
            "num": [1.5, 2.5],
            "int": np.array([7, 8], dtype=np.int64),
            "cat": pd.Categorical(["a", "b"], categories=["a", "b", "c"]),
            "txt": pd.Series(["u", "v"], dtype=object),
            "nullable": pd.array([1, None], dtype="Int64"),
        }
    )
    x = pd.DataFrame(
        {
            "num": [9.5],
            "int": np.array([9], dtype=np.int64),
            "cat": pd.Categorical(["c"], categories=["a", "b", "c"]),
            "txt": pd.Series(["w"], dtype=object),
            "nullable": pd.array([5], dtype="Int64"),
        }
    )
    masks = np.array([[True, False, True, False, True]])
    out = Independent(bg, allow_nan=True).compose(x, masks)
    assert out.dtypes.equals(bg.dtypes)
    assert out["num"].tolist() == [9.5, 9.5]
    assert out["int"].tolist() == [7, 8]
    assert out["cat"].tolist() == ["c", "c"]
    assert out["txt"].tolist() == ["u", "v"]
    assert out["nullable"].tolist() == [5, 5]


def test_category_unseen_in_background_is_added():
    bg = pd.DataFrame({"cat": pd.Categorical(["a", "a"])})
    x = pd.DataFrame({"cat": pd.Categorical(["z"])})
    out = Independent(bg).compose(x, np.array([[True], [False]]))
    assert out["cat"].tolist() == ["z", "z", "a", "a"]


def test_independent_subsamples_and_weights():
    bg = np.arange(30.0).reshape(15, 2)
    m = Independent(bg, max_samples=5, random_state=0)
    assert m.n_rows == 5
    np.testing.assert_allclose(m.weights, 0.2)
    w = Independent(bg[:3], weights=[1, 1, 2])
    np.testing.assert_allclose(w.weights, [0.25, 0.25, 0.5])
    with pytest.raises(InvalidParameterError, match="weights"):
        Independent(bg[:3], weights=[1, -1, 2])


def test_baseline_with_frame_template():
    X = pd.DataFrame({"a": [1.0, 2.0], "cat": pd.Categorical(["p", "q"])})
    m = Baseline({"a": 0.0, "cat": "q"}).bound(X)
    assert m.n_rows == 1
    assert m.background["a"].tolist() == [0.0]
    assert m.background["cat"].tolist() == ["q"]
    with pytest.raises(InvalidParameterError, match="unknown columns"):
        Baseline({"zz": 1}).bound(X)


def test_tabular_game_value_is_weighted_background_average():
    bg = np.array([[0.0, 0.0], [2.0, 4.0]])
    f = lambda Z: (Z[:, 0] * Z[:, 1])[:, None]  # noqa: E731
    game = TabularGame(f, np.array([1.0, 3.0]), Independent(bg, weights=[3, 1]))
    C = np.array([[False, False], [True, False], [False, True], [True, True]])
    v = game.value(C)[:, 0]
    # by hand: empty: .75*0 + .25*8 = 2; {0}: .75*0 + .25*4 = 1; {1}: .75*0 + .25*6 = 1.5; full 3
    np.testing.assert_allclose(v, [2.0, 1.0, 1.5, 3.0])
    check_game(game)


def test_cache_never_evaluates_a_coalition_twice():
    rows = []

    def f(Z):
        rows.append(len(Z))
        return Z.sum(axis=1)

    game = TabularGame(f, np.ones(3), Independent(np.zeros((4, 3))))
    C = np.array([[True, False, True], [True, False, True], [False, False, False]])
    game.value(C)
    game.value(C[:1])
    assert game.n_evaluated == 2
    assert sum(rows) == 2 * 4


def test_chunking_bounds_rows_per_model_call():
    sizes = []

    def f(Z):
        sizes.append(len(Z))
        return Z.sum(axis=1)

    masker = Independent(np.zeros((10, 4)))
    game = TabularGame(f, np.ones(4), masker, chunk_bytes=30 * masker.row_nbytes)
    C = np.random.default_rng(0).random((16, 4)) < 0.5
    v = game.value(C)
    assert max(sizes) <= 30
    np.testing.assert_allclose(v[:, 0], C.sum(axis=1))


def test_value_rejects_wrong_coalition_shape():
    game = TabularGame(lambda Z: Z.sum(axis=1), np.ones(3), Independent(np.zeros((2, 3))))
    with pytest.raises(InvalidInputError, match=r"\(m, 3\)"):
        game.value(np.ones((2, 4), dtype=bool))


def test_group_matrix_keeps_order_and_positions():
    players, M = group_matrix(["a", "b", "c", "d"], {"g": ["d", "b"]})
    assert players == ["a", "g", "c"]
    np.testing.assert_array_equal(M, [[1, 0, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0]])


def test_kmeans_summary_is_real_weighted_rows():
    from whybox.games.maskers import kmeans

    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [10.0, 10.0], [-10.0, 5.0]])
    X = np.concatenate(
        [c + rng.normal(scale=0.1, size=(n, 2)) for c, n in zip(centers, (50, 30, 20), strict=True)]
    )
    m = kmeans(X, 3, random_state=0)
    assert m.n_rows == 3
    np.testing.assert_allclose(sorted(m.weights), [0.2, 0.3, 0.5])
    # every representative is a real row of X, near its cluster centre
    for row in m.background:
        assert any(np.array_equal(row, x) for x in X)
        assert np.min(np.abs(centers - row).max(axis=1)) < 0.5
    # the weighted mean equals the data mean up to the within-cluster spread
    np.testing.assert_allclose(m.weights @ m.background, X.mean(axis=0), atol=0.2)


def test_kmeans_summary_of_mixed_frame_keeps_dtypes():
    from whybox.games.maskers import kmeans

    rng = np.random.default_rng(1)
    df = pd.DataFrame(
        {"num": rng.normal(size=40), "cat": pd.Categorical(rng.choice(["a", "b"], 40))}
    )
    m = kmeans(df, 4, random_state=0)
    assert m.background.dtypes.equals(df.dtypes) and m.n_rows == 4
    assert abs(m.weights.sum() - 1) < 1e-12


def test_weighted_background_equals_repeated_rows():
    # a weight of 2 on a row is the same game as that row appearing twice
    from whybox.agnostic.shapley import ExactShap

    bg = np.array([[0.0, 1.0], [2.0, -1.0]])
    f = lambda Z: Z[:, 0] * Z[:, 1] + Z[:, 0]  # noqa: E731
    x = np.array([[1.5, 2.0]])
    weighted = ExactShap(f, background=Independent(bg, weights=[2, 1])).explain(x)
    repeated = ExactShap(f, background=bg[[0, 0, 1]]).explain(x)
    np.testing.assert_allclose(weighted.values, repeated.values, atol=1e-12)
