"""Explanation: layout checks, indexing, summaries, completeness, display and lossless save/load.

Expected numbers are computed here directly with numpy / pandas, never through Explanation.
"""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays as np_arrays

from whybox.errors import InvalidInputError, InvalidParameterError
from whybox.explanation import Explanation, load

FEATURES = ["income", "age", "purpose", "city"]


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "income": [30000.0, 52000.0, 81000.0, 12000.0],
            "age": np.array([25, 40, 61, 33], dtype=np.int64),
            "purpose": pd.Categorical(
                ["car", "home", "car", "edu"], categories=["car", "edu", "home", "unused"]
            ),
            "city": ["Oslo", None, "Lyon", "Pune"],
        },
        index=pd.Index(["a", "b", "c", "d"], name="applicant"),
    )


@pytest.fixture
def tab() -> Explanation:
    """Four rows, four named features, DataFrame data with a non-range index."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(4, 4))
    std = np.abs(rng.normal(size=(4, 4)))
    base = np.full(4, 0.5)
    pred = base + values.sum(axis=1) + np.array([0.0, 1e-3, 0.0, -2e-3])
    return Explanation(
        values,
        base,
        data=_frame(),
        std=std,
        predictions=pred,
        method="exact",
        params={"output": "probability of class 1"},
        n_evals=16,
        random_state=7,
        meta={"note": "hi"},
    )


@pytest.fixture
def multi() -> Explanation:
    """Three rows, three features, two outputs, with std, predictions and numpy data."""
    values = np.arange(18.0).reshape(3, 3, 2) - 7.0
    return Explanation(
        values,
        np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]),
        data=np.arange(9.0).reshape(3, 3),
        feature_names=["a", "b", "c"],
        output_names=["p", "q"],
        std=values / 10.0,
        predictions=np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]),
        method="kernel",
    )


@pytest.fixture
def ragged() -> Explanation:
    return Explanation(
        [np.array([1.0, -2.0]), np.array([0.5, 0.25, 4.0]), np.array([3.0, -1.0])],
        [0.0, 1.0, -1.0],
        data=[np.array(["the", "cat"]), np.array(["a", "big", "dog"]), np.array(["hi", "you"])],
        feature_names=[["the", "cat"], ["a", "big", "dog"], ["hi", "you"]],
        std=[np.array([0.1, 0.2]), np.array([0.3, 0.4, 0.5]), np.array([0.6, 0.7])],
        predictions=[0.0, 5.0, 1.0],
        method="tokenshap",
    )


# ----------------------------------------------------------------------- construction
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"values": np.zeros((3, 2)), "base_values": np.zeros(4)}, r"base_values.*\(4,\)"),
        ({"values": np.zeros((3, 2)), "base_values": np.zeros((3, 2, 1))}, "base_values"),
        ({"values": np.zeros((3, 2)), "base_values": np.zeros((3, 2))}, "do not match"),
        ({"values": np.zeros((3, 2, 3)), "base_values": np.zeros((3, 2))}, "do not match"),
        ({"values": np.zeros((3, 2)), "feature_names": ["a"]}, "1 feature_names"),
        ({"values": np.zeros((3, 2, 2)), "feature_names": ["a", "b"]}, "feature_names"),
        ({"values": np.zeros((3, 2)), "std": np.zeros((3, 3))}, "std"),
        ({"values": np.zeros((3, 2)), "std": np.zeros((2, 2))}, "std"),
        ({"values": np.zeros((3, 2)), "predictions": np.zeros(2)}, r"predictions.*\(2,\)"),
        (
            {
                "values": np.zeros((3, 2, 2)),
                "base_values": np.zeros((3, 2)),
                "predictions": [0] * 3,
            },
            "predictions",
        ),
        ({"values": np.zeros((3, 2)), "output_names": ["a", "b"]}, "output_names"),
        ({"values": np.zeros(3)}, "feature axis"),
        ({"values": 1.0}, "row axis"),
        ({"values": np.zeros((3, 2)), "data": np.zeros((4, 2))}, "data has 4 rows"),
        (
            {"values": np.zeros((3, 2)), "data": pd.DataFrame({"a": [1, 2], "b": [3, 4]})},
            "data has 2 rows",
        ),
        (
            {"values": [np.zeros(2), np.zeros(3)], "base_values": [0.0, 0.0], "std": [1, 2]},
            "std",
        ),
        (
            {"values": [np.zeros(2), np.zeros(3)], "base_values": np.zeros((2, 2))},
            r"row 0 .*\(2,\)",
        ),
        (
            {"values": [np.zeros(2), np.zeros(3)], "feature_names": [["a", "b"], ["c"]]},
            "ragged feature_names",
        ),
        (
            {"values": [np.zeros(2), np.zeros(3)], "feature_names": ["ab", "cde"]},
            "ragged feature_names",
        ),
    ],
)
def test_construction_rejects_mismatched_layouts(kwargs, match):
    rows = len(kwargs["values"]) if isinstance(kwargs["values"], list) else 3
    kwargs = {"base_values": np.zeros(rows), **kwargs}
    with pytest.raises(InvalidInputError, match=match):
        Explanation(**kwargs)


def test_construction_defaults_and_layout_properties(tab):
    scalar_base = Explanation(np.ones((3, 2)), 0.25)
    np.testing.assert_array_equal(scalar_base.base_values, [0.25, 0.25, 0.25])
    assert scalar_base.feature_names == ["x0", "x1"]
    assert scalar_base.output_names is None and not scalar_base.multi_output
    assert tab.feature_names == FEATURES  # taken from the DataFrame columns
    assert (len(tab), tab.n_rows, tab.n_outputs, tab.feature_shape) == (4, 4, 1, (4,))
    assert tab.is_tabular and not tab.is_ragged

    image = Explanation(np.ones((2, 2, 3)), [0.0, 0.0])
    assert image.feature_shape == (2, 3) and image.feature_axes == (1, 2)
    assert image.feature_names == [f"x{j}" for j in range(6)] and not image.is_tabular

    multi = Explanation(np.ones((2, 3, 2)), np.zeros((2, 2)))
    assert multi.multi_output and multi.n_outputs == 2 and multi.feature_shape == (3,)
    assert multi.output_names == ["output 0", "output 1"]

    # equal-length rows with per-row names are still ragged rows
    same_len = Explanation(
        [np.ones(2), np.ones(2)], [0.0, 0.0], feature_names=[["a", "b"], ["c", "d"]]
    )
    assert same_len.is_ragged and same_len.row_feature_names(1) == ["c", "d"]
    with pytest.raises(InvalidParameterError, match="ragged"):
        same_len.feature_shape  # noqa: B018


def test_row_accessors(tab, ragged, multi):
    np.testing.assert_array_equal(tab.row_values(2), tab.values[2])
    assert tab.row_data(1)[:3].tolist() == [52000.0, 40, "home"]
    assert tab.row_labels == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(multi.row_values(1), multi.values[1])
    assert ragged.row_feature_names(1) == ["a", "big", "dog"]
    assert ragged.row_data(1).tolist() == ["a", "big", "dog"]
    assert ragged.row_labels == [0, 1, 2]
    image = Explanation(np.arange(12.0).reshape(2, 2, 3), [0.0, 0.0], data=np.ones((2, 2, 3)))
    np.testing.assert_array_equal(image.row_values(1), np.arange(6.0, 12.0))
    assert image.row_data(0).shape == (6,)


# ----------------------------------------------------------------------------- indexing
def _assert_rows(sub: Explanation, exp: Explanation, rows: list[int]) -> None:
    np.testing.assert_array_equal(sub.values, exp.values[rows])
    np.testing.assert_array_equal(sub.base_values, exp.base_values[rows])
    np.testing.assert_array_equal(sub.std, exp.std[rows])
    np.testing.assert_array_equal(sub.predictions, exp.predictions[rows])
    pd.testing.assert_frame_equal(sub.data, exp.data.iloc[rows])
    assert sub.feature_names == exp.feature_names
    assert (sub.method, sub.params, sub.n_evals, sub.random_state, sub.meta) == (
        exp.method,
        exp.params,
        exp.n_evals,
        exp.random_state,
        exp.meta,
    )


def test_integer_row_keeps_row_axis(tab):
    one = tab[0]
    assert one.values.shape == (1, 4) and len(one) == 1
    _assert_rows(one, tab, [0])
    assert one.row_labels == ["a"]
    _assert_rows(tab[-1], tab, [3])
    _assert_rows(tab[np.int64(2)], tab, [2])


@pytest.mark.parametrize(
    ("key", "rows"),
    [
        (slice(1, 3), [1, 2]),
        (slice(None, None, -2), [3, 1]),
        ([0, 2], [0, 2]),
        (np.array([3, 0]), [3, 0]),
        ([-1, 0], [3, 0]),
        ([True, False, True, False], [0, 2]),
        (np.array([False, True, True, True]), [1, 2, 3]),
        ([], []),
    ],
)
def test_row_selections(tab, key, rows):
    sub = tab[key]
    assert sub.values.shape == (len(rows), 4)
    _assert_rows(sub, tab, rows)


@pytest.mark.parametrize("key", [4, -5, [0, 4], np.array([-5])])
def test_out_of_range_rows_raise(tab, key):
    with pytest.raises(InvalidParameterError, match="out of range for 4 rows"):
        tab[key]


@pytest.mark.parametrize("key", ["a", 1.5, [True, False], (0, slice(None), 0, 0)])
def test_bad_row_keys_raise(tab, key):
    with pytest.raises(InvalidParameterError):
        tab[key]


def test_single_feature_by_name(tab):
    sub = tab[:, "income"]
    assert sub.feature_names == ["income"]
    assert sub.values.shape == (4, 1)
    np.testing.assert_array_equal(sub.values, tab.values[:, [0]])
    np.testing.assert_array_equal(sub.std, tab.std[:, [0]])
    pd.testing.assert_frame_equal(sub.data, _frame()[["income"]])
    np.testing.assert_array_equal(sub.base_values, tab.base_values)
    np.testing.assert_array_equal(sub.predictions, tab.predictions)


@pytest.mark.parametrize(
    ("key", "cols"),
    [
        (["age", "city"], [1, 3]),
        (["city", "income"], [3, 0]),
        (2, [2]),
        (-1, [3]),
        (slice(1, 3), [1, 2]),
        ([True, False, False, True], [0, 3]),
        (np.array(["purpose"]), [2]),
    ],
)
def test_feature_selections_keep_everything_consistent(tab, key, cols):
    sub = tab[:, key]
    names = [FEATURES[j] for j in cols]
    assert sub.feature_names == names
    np.testing.assert_array_equal(sub.values, tab.values[:, cols])
    np.testing.assert_array_equal(sub.std, tab.std[:, cols])
    pd.testing.assert_frame_equal(sub.data, _frame()[names])
    assert sub.mean_abs().index.tolist() == names


def test_rows_and_features_together(tab):
    sub = tab[[1, 3], ["age"]]
    np.testing.assert_array_equal(sub.values, tab.values[np.ix_([1, 3], [1])])
    pd.testing.assert_frame_equal(sub.data, _frame().iloc[[1, 3]][["age"]])
    np.testing.assert_array_equal(sub.predictions, tab.predictions[[1, 3]])


def test_feature_selection_on_numpy_data(multi):
    sub = multi[:, ["c", "a"]]
    np.testing.assert_array_equal(sub.data, np.arange(9.0).reshape(3, 3)[:, [2, 0]])
    np.testing.assert_array_equal(sub.values, multi.values[:, [2, 0], :])
    assert sub.multi_output and sub.output_names == ["p", "q"]


@pytest.mark.parametrize("key", ["salary", ["income", "salary"], 4, -5])
def test_unknown_features_raise_with_known_names(tab, key):
    with pytest.raises(InvalidParameterError) as info:
        tab[:, key]
    message = str(info.value)
    assert all(name in message for name in FEATURES)


def test_feature_selection_needs_tabular_layout(ragged):
    image = Explanation(np.ones((2, 2, 3)), [0.0, 0.0])
    with pytest.raises(InvalidParameterError, match="tabular"):
        image[:, 0]
    with pytest.raises(InvalidParameterError, match="ragged"):
        ragged[:, "cat"]


def test_one_output_by_name_drops_output_axis(multi):
    q = multi[:, :, "q"]
    assert not q.multi_output and q.values.shape == (3, 3)
    np.testing.assert_array_equal(q.values, multi.values[:, :, 1])
    np.testing.assert_array_equal(q.std, multi.std[:, :, 1])
    np.testing.assert_array_equal(q.base_values, [0.2, 0.4, 0.6])
    np.testing.assert_array_equal(q.predictions, [2.0, 4.0, 6.0])
    assert q.output_names == ["q"] and q.params["output"] == "q"
    np.testing.assert_array_equal(multi[:, :, -2].values, multi.values[:, :, 0])


@pytest.mark.parametrize(
    ("key", "outs"),
    [
        ([0, 1], [0, 1]),
        ([1, 0], [1, 0]),
        (["q"], [1]),
        (slice(1, None), [1]),
        ([True, True], [0, 1]),
    ],
)
def test_output_lists_keep_output_axis(multi, key, outs):
    sub = multi[:, :, key]
    assert sub.multi_output and sub.values.shape == (3, 3, len(outs))
    np.testing.assert_array_equal(sub.values, multi.values[:, :, outs])
    np.testing.assert_array_equal(sub.base_values, multi.base_values[:, outs])
    np.testing.assert_array_equal(sub.predictions, multi.predictions[:, outs])
    assert sub.output_names == [["p", "q"][o] for o in outs]


def test_rows_features_and_output_together(multi):
    sub = multi[[0, 2], "b", "p"]
    np.testing.assert_array_equal(sub.values, multi.values[[0, 2]][:, [1], 0])
    assert sub.feature_names == ["b"] and not sub.multi_output


@pytest.mark.parametrize("key", ["r", 2, -3, ["p", "zz"]])
def test_unknown_outputs_raise_with_known_names(multi, key):
    with pytest.raises(InvalidParameterError, match=r"\['p', 'q'\]"):
        multi[:, :, key]


@pytest.mark.parametrize("key", [0, "output 0", [0]])
def test_single_output_has_no_output_axis(tab, key):
    with pytest.raises(InvalidParameterError, match="single output"):
        tab[:, :, key]


def test_ragged_indexing(ragged):
    one = ragged[1]
    assert one.is_ragged and one.feature_names == [["a", "big", "dog"]]
    np.testing.assert_array_equal(one.values[0], [0.5, 0.25, 4.0])
    both = ragged[[0, 2]]  # equal lengths, still per-row names
    assert both.is_ragged and both.feature_names == [["the", "cat"], ["hi", "you"]]
    np.testing.assert_array_equal(both.predictions, [0.0, 1.0])
    assert [d.tolist() for d in both.data] == [["the", "cat"], ["hi", "you"]]
    none = ragged[[False, False, False]]
    assert none.is_ragged and len(none) == 0
    assert none.completeness_gap().shape == (0,)


def test_ragged_multi_output_selection():
    exp = Explanation(
        [np.ones((2, 2)), np.arange(6.0).reshape(3, 2)],
        np.zeros((2, 2)),
        output_names=["neg", "pos"],
    )
    pos = exp[:, :, "pos"]
    assert pos.is_ragged and not pos.multi_output
    np.testing.assert_array_equal(pos.values[1], [1.0, 3.0, 5.0])


# ---------------------------------------------------------------------------- summaries
def test_mean_abs_single_output(tab):
    got = tab.mean_abs()
    assert isinstance(got, pd.Series)
    expected = pd.Series(np.abs(tab.values).mean(axis=0), index=FEATURES)
    pd.testing.assert_series_equal(got, expected, check_names=False)


def test_mean_abs_multi_output(multi):
    got = multi.mean_abs()
    assert isinstance(got, pd.DataFrame) and got.shape == (3, 2)
    v = np.arange(18.0).reshape(3, 3, 2) - 7.0
    expected = pd.DataFrame(np.abs(v).mean(axis=0), index=["a", "b", "c"], columns=["p", "q"])
    pd.testing.assert_frame_equal(got, expected)
    assert got.loc["a", "q"] == pytest.approx((6 + 0 + 6) / 3)


def test_mean_abs_needs_tabular(ragged):
    with pytest.raises(InvalidParameterError, match="to_frame"):
        ragged.mean_abs()
    with pytest.raises(InvalidParameterError, match=r"\(2, 3\)"):
        Explanation(np.ones((2, 2, 3)), [0.0, 0.0]).mean_abs()


def test_top_orders_by_mean_abs():
    exp = Explanation(
        np.array([[1.0, -3.0, 2.0, 0.5], [-1.0, 3.0, -5.0, 0.5]]),
        [0.0, 0.0],
        feature_names=["a", "b", "c", "d"],
    )
    top = exp.top(2)
    assert top.index.tolist() == ["c", "b"]
    np.testing.assert_allclose(top.to_numpy(), [3.5, 3.0])
    assert exp.top(10).index.tolist() == ["c", "b", "a", "d"]  # k larger than p: all
    assert exp.top(np.int64(1)).index.tolist() == ["c"]


def test_top_ties_keep_feature_order():
    exp = Explanation(
        np.array([[2.0, 1.0, -2.0, 1.0, 2.0]]), [0.0], feature_names=["e", "d", "c", "b", "a"]
    )
    assert exp.top(5).index.tolist() == ["e", "c", "a", "d", "b"]


def test_top_averages_outputs(multi):
    expected = np.abs(multi.values).mean(axis=0).mean(axis=1)  # per feature
    order = [["a", "b", "c"][j] for j in np.argsort(-expected, kind="stable")]
    top = multi.top(3)
    assert top.index.tolist() == order
    np.testing.assert_allclose(top.to_numpy(), np.sort(expected)[::-1])


@pytest.mark.parametrize("k", [0, -1, 1.5, True, "3", None])
def test_top_rejects_bad_k(tab, k):
    with pytest.raises(InvalidParameterError, match="k must be a positive integer"):
        tab.top(k)


# ----------------------------------------------------------------------------- to_frame
def test_to_frame_wide_uses_dataframe_index(tab):
    wide = tab.to_frame()
    expected = pd.DataFrame(tab.values, index=_frame().index, columns=FEATURES)
    pd.testing.assert_frame_equal(wide, expected)
    assert wide.index.name == "applicant"


def test_to_frame_wide_without_data():
    values = np.arange(6.0).reshape(3, 2)
    wide = Explanation(values, np.zeros(3), feature_names=["u", "v"]).to_frame()
    assert wide.index.tolist() == [0, 1, 2]
    assert wide.loc[2, "v"] == 5.0 and wide.loc[1, "u"] == 2.0


def test_to_frame_multi_output_places_every_value(multi):
    frame = multi.to_frame()
    assert isinstance(frame.columns, pd.MultiIndex)
    assert list(frame.columns.names) == ["output", "feature"]
    assert frame.shape == (3, 6)
    v = np.arange(18.0).reshape(3, 3, 2) - 7.0
    for i in range(3):
        for j, feature in enumerate(["a", "b", "c"]):
            for o, output in enumerate(["p", "q"]):
                assert frame.loc[i, (output, feature)] == v[i, j, o]
    np.testing.assert_array_equal(frame["q"].to_numpy(), v[:, :, 1])


def test_to_frame_long_for_ragged(ragged):
    long = ragged.to_frame()
    assert list(long.columns) == ["row", "feature", "value", "std"]
    expected = pd.DataFrame(
        {
            "row": [0, 0, 1, 1, 1, 2, 2],
            "feature": ["the", "cat", "a", "big", "dog", "hi", "you"],
            "value": [1.0, -2.0, 0.5, 0.25, 4.0, 3.0, -1.0],
            "std": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
        }
    )
    pd.testing.assert_frame_equal(long.reset_index(drop=True), expected, check_dtype=False)


def test_to_frame_long_for_images():
    values = np.arange(12.0).reshape(2, 2, 3)
    long = Explanation(values, [0.0, 0.0]).to_frame()
    assert list(long.columns) == ["row", "feature", "value"] and len(long) == 12
    for i in range(2):
        part = long[long["row"] == i]
        assert part["feature"].tolist() == [f"x{j}" for j in range(6)]
        np.testing.assert_array_equal(part["value"].to_numpy(), values[i].reshape(-1))


def test_to_frame_long_for_multi_output_images():
    values = np.arange(24.0).reshape(2, 2, 3, 2)
    long = Explanation(values, np.zeros((2, 2)), output_names=["n", "y"]).to_frame()
    assert list(long.columns) == ["row", "feature", "output", "value"]
    assert len(long) == 24
    sel = long[(long["row"] == 1) & (long["feature"] == "x4") & (long["output"] == "y")]
    assert sel["value"].tolist() == [values[1, 1, 1, 1]]  # x4 is pixel (1, 1) in C order


# ------------------------------------------------------------------- completeness gap
def test_completeness_gap_tabular(tab):
    expected = tab.predictions - np.full(4, 0.5) - tab.values.sum(axis=1)
    np.testing.assert_allclose(tab.completeness_gap(), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tab.completeness_gap(), [0.0, 1e-3, 0.0, -2e-3], atol=1e-12)


def test_completeness_gap_multi_output(multi):
    v = np.arange(18.0).reshape(3, 3, 2) - 7.0
    pred = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    base = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])
    gap = multi.completeness_gap()
    assert gap.shape == (3, 2)
    np.testing.assert_allclose(gap, pred - base - v.sum(axis=1))
    assert gap[0, 0] == pytest.approx(1.0 - 0.1 - (-7 - 5 - 3))


def test_completeness_gap_image_shaped():
    values = np.arange(12.0).reshape(2, 2, 3)
    exp = Explanation(values, [1.0, 2.0], predictions=[20.0, 60.0])
    np.testing.assert_allclose(exp.completeness_gap(), [20 - 1 - 15, 60 - 2 - 51])
    multi = Explanation(np.ones((2, 2, 3, 2)), np.zeros((2, 2)), predictions=np.full((2, 2), 7.0))
    np.testing.assert_allclose(multi.completeness_gap(), np.ones((2, 2)))


def test_completeness_gap_ragged(ragged):
    np.testing.assert_allclose(ragged.completeness_gap(), [0 - 0 - (-1), 5 - 1 - 4.75, 1 + 1 - 2])
    multi = Explanation(
        [np.ones((2, 2)), np.arange(6.0).reshape(3, 2)],
        np.zeros((2, 2)),
        predictions=[[2.0, 2.0], [6.0, 9.0]],
    )
    np.testing.assert_allclose(multi.completeness_gap(), [[0.0, 0.0], [0.0, 0.0]])


def test_completeness_gap_needs_predictions():
    with pytest.raises(InvalidParameterError, match="no predictions"):
        Explanation(np.ones((1, 2)), [0.0]).completeness_gap()


# ------------------------------------------------------------------------------- display
def test_repr_html_escapes_feature_names_and_method():
    evil = "<script>alert(1)</script>"
    exp = Explanation(
        np.array([[1.0, 0.5]]),
        [0.0],
        feature_names=[evil, "b"],
        method="<img src=x onerror=alert(2)>",
        params={"output": "<b>P(y)</b>"},
    )
    page = exp._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img" not in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "<b>P(y)</b>" not in page and "&lt;b&gt;P(y)&lt;/b&gt;" in page


def test_repr_html_of_other_layouts(ragged, multi):
    assert "tokenshap" in ragged._repr_html_()
    assert "<table>" in multi._repr_html_()
    assert "<table>" not in multi[:, []]._repr_html_()  # no features: no table, no error
    assert "values shape (3, 3, 2)" in repr(multi) and "3 ragged rows" in repr(ragged)


# ------------------------------------------------------------------------ save / load
def _save_load(exp: Explanation, path) -> Explanation:
    out = exp.save(path)
    assert out == path and path.is_file()
    return load(str(path))


def test_round_trip_scalars_and_arrays(tab, tmp_path):
    exp = Explanation(
        tab.values,
        tab.base_values,
        data=_frame(),
        std=tab.std,
        predictions=tab.predictions,
        method="exact",
        params={
            "output": "probability of class 1",
            "n": np.int64(3),
            "x": np.float32(0.5),
            "flag": np.bool_(True),
            "arr": np.array([1, 2]),
            "nested": {"t": (1, 2.5), 3: None},
        },
        n_evals=16,
        random_state=np.int64(7),
        meta={"note": "hi", "timing": np.float64(1.25)},
    )
    back = _save_load(exp, tmp_path / "e.whybox")
    np.testing.assert_array_equal(back.values, tab.values)
    np.testing.assert_array_equal(back.base_values, tab.base_values)
    np.testing.assert_array_equal(back.std, tab.std)
    np.testing.assert_array_equal(back.predictions, tab.predictions)
    assert back.params == {
        "output": "probability of class 1",
        "n": 3,
        "x": 0.5,
        "flag": True,
        "arr": [1, 2],
        "nested": {"t": [1, 2.5], "3": None},
    }
    assert type(back.params["n"]) is int and type(back.params["flag"]) is bool
    assert (back.method, back.n_evals, back.random_state) == ("exact", 16, 7)
    assert back.meta == {"note": "hi", "timing": 1.25}
    assert back.feature_names == FEATURES and back.output_names is None
    pd.testing.assert_frame_equal(back.data, _frame())


def test_round_trip_dataframe_dtypes(tmp_path):
    original = pd.DataFrame(
        {
            "f": [0.1, -2.5, np.nan, 1e300],
            "i": np.array([1, -2, 3, 2**62], dtype=np.int64),
            "i32": np.array([1, 2, 3, 4], dtype=np.int32),
            "b": [True, False, True, True],
            "cat": pd.Categorical(["x", "y", "x", None], categories=["y", "x", "never"]),
            "ord": pd.Categorical(
                ["lo", "hi", "mid", "lo"], categories=["lo", "mid", "hi", "max"], ordered=True
            ),
            "s": ["Oslo", None, "", "Lyon"],
            "obj": pd.Series(["a", None, "c", np.nan], dtype=object, index=[10, 30, 20, 40]),
            "n": pd.array([1, None, 2**60 + 1, -4], dtype="Int64"),
            "nb": pd.array([True, None, False, True], dtype="boolean"),
            "when": pd.to_datetime(
                ["2024-01-01", "2024-02-29 13:45:10.5", None, "2600-01-01"], format="ISO8601"
            ),
            "tz": pd.to_datetime(["2024-01-01", "2024-07-01", "2024-12-31", None]).tz_localize(
                "Europe/Oslo"
            ),
            "dt": pd.to_timedelta([1, 2, None, 4], unit="h"),
            "bins": pd.cut([1.0, 5.0, np.nan, 9.0], bins=[0, 3, 6, 10, 20]),
            "month": pd.period_range("2024-01", periods=4, freq="M"),
        },
        index=pd.Index([10, 30, 20, 40], name="id"),
    )
    p = original.shape[1]
    exp = Explanation(np.zeros((4, p)), np.zeros(4), data=original)
    back = _save_load(exp, tmp_path / "df.whybox")
    pd.testing.assert_frame_equal(back.data, original)
    assert back.data.dtypes.to_dict() == original.dtypes.to_dict()
    assert back.data["cat"].cat.categories.tolist() == ["y", "x", "never"]
    assert back.data["ord"].cat.ordered and not back.data["cat"].cat.ordered
    assert back.data["n"].iloc[2] == 2**60 + 1  # exact, not through float
    assert back.data["s"].iloc[2] == "" and pd.isna(back.data["s"].iloc[1])
    assert back.data["obj"].iloc[1] is None and np.isnan(back.data["obj"].iloc[3])
    assert back.data["bins"].cat.categories.tolist() == original["bins"].cat.categories.tolist()
    assert back.feature_names == list(original.columns)


@pytest.mark.parametrize(
    "original",
    [
        pd.DataFrame({"a": [1.0, 2.0]}, index=["r1", "r2"]),
        pd.DataFrame({"a": [1.0, 2.0]}, index=pd.RangeIndex(5, 9, 2, name="k")),
        pd.DataFrame({"a": [1.0, 2.0]}, index=pd.date_range("2024-01-01", periods=2, freq="D")),
        pd.DataFrame(
            {"a": [1.0, 2.0]}, index=pd.DatetimeIndex(["2024-01-01", "2025-01-01"], tz="UTC")
        ),
        pd.DataFrame(
            {"a": [1.0, 2.0]},
            index=pd.MultiIndex.from_tuples([("x", 1), ("y", 2)], names=["k", "j"]),
        ),
        pd.DataFrame(
            {"a": [1.0, 2.0]}, index=pd.CategoricalIndex(["u", "v"], categories=["v", "u"])
        ),
        pd.DataFrame(np.ones((2, 2))),  # integer column labels
        pd.DataFrame(np.ones((2, 2)), columns=["a", "a"]),  # duplicate column labels
        pd.DataFrame(np.ones((2, 2)), columns=pd.MultiIndex.from_tuples([("a", 1), ("b", 2)])),
        pd.DataFrame(np.ones((2, 2)), columns=pd.Index(["a", "b"], name="feature")),
        pd.DataFrame(index=pd.Index(["r", "s"])),  # no columns at all
    ],
    ids=[
        "str-index",
        "named-range",
        "dates-with-freq",
        "tz-index",
        "multiindex",
        "categorical-index",
        "int-columns",
        "duplicate-columns",
        "tuple-columns",
        "named-columns",
        "no-columns",
    ],
)
def test_round_trip_indexes_and_columns(original, tmp_path):
    exp = Explanation(
        np.ones((2, original.shape[1])),
        np.zeros(2),
        data=original,
        feature_names=[f"f{j}" for j in range(original.shape[1])],
    )
    back = _save_load(exp, tmp_path / "ix.whybox")
    pd.testing.assert_frame_equal(back.data, original)


def test_round_trip_numpy_data_and_multi_output(multi, tmp_path):
    back = _save_load(multi, tmp_path / "m.whybox")
    assert back.multi_output and back.output_names == ["p", "q"]
    assert back.feature_names == ["a", "b", "c"] and back.method == "kernel"
    for name in ("values", "base_values", "std", "predictions", "data"):
        np.testing.assert_array_equal(getattr(back, name), getattr(multi, name))
    assert back.data.dtype == np.float64
    ints = Explanation(np.ones((2, 3)), [0.0, 0.0], data=np.arange(6, dtype=np.int32).reshape(2, 3))
    back = _save_load(ints, tmp_path / "i.whybox")
    assert back.data.dtype == np.int32
    np.testing.assert_array_equal(back.data, ints.data)


def test_round_trip_image_shaped(tmp_path):
    rng = np.random.default_rng(3)
    exp = Explanation(
        rng.normal(size=(2, 2, 3, 2)),
        rng.normal(size=(2, 2)),
        data=rng.integers(0, 255, size=(2, 2, 3), dtype=np.uint8),
        std=rng.random(size=(2, 2, 3, 2)),
        predictions=rng.normal(size=(2, 2)),
    )
    back = _save_load(exp, tmp_path / "img.whybox")
    for name in ("values", "base_values", "std", "predictions", "data"):
        np.testing.assert_array_equal(getattr(back, name), getattr(exp, name))
    assert back.data.dtype == np.uint8 and back.feature_shape == (2, 3)


def test_round_trip_ragged(ragged, tmp_path):
    back = _save_load(ragged, tmp_path / "r.whybox")
    assert back.is_ragged and back.feature_names == ragged.feature_names
    assert len(back.values) == 3
    for got, want in zip(back.values, ragged.values, strict=True):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(back.std, ragged.std, strict=True):
        np.testing.assert_array_equal(got, want)
    assert [d.tolist() for d in back.data] == [["the", "cat"], ["a", "big", "dog"], ["hi", "you"]]
    np.testing.assert_array_equal(back.predictions, [0.0, 5.0, 1.0])
    np.testing.assert_allclose(back.completeness_gap(), ragged.completeness_gap())


def test_round_trip_ragged_edge_cases(tmp_path):
    multi = Explanation(
        [np.ones((2, 2)), np.arange(6.0).reshape(3, 2)],
        np.zeros((2, 2)),
        data=[np.ones((2, 4)), np.zeros((3, 4))],  # per-row 2-D inputs keep their shape
        output_names=["neg", "pos"],
    )
    back = _save_load(multi, tmp_path / "rm.whybox")
    assert back.is_ragged and back.output_names == ["neg", "pos"]
    np.testing.assert_array_equal(back.values[1], np.arange(6.0).reshape(3, 2))
    assert [d.shape for d in back.data] == [(2, 4), (3, 4)]
    texts = Explanation(
        [np.ones(2), np.ones(2)],
        [0.0, 0.0],
        data=["hello you", "hi there"],  # one text per row
        feature_names=[["hello", "you"], ["hi", "there"]],
    )
    back = _save_load(texts, tmp_path / "t.whybox")
    assert back.is_ragged and back.data == ["hello you", "hi there"]
    empty = Explanation([], [])
    back = _save_load(empty, tmp_path / "empty.whybox")
    assert back.is_ragged and len(back) == 0


def _npy_members(path):
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        return names, {
            n: np.load(io.BytesIO(zf.read(n)), allow_pickle=False)
            for n in names
            if n != "meta.json"
        }


def test_saved_file_holds_no_pickle(tab, ragged, tmp_path):
    frame = _frame()
    frame["mixed"] = pd.Series(["x", 2, None, 3.5], dtype=object, index=frame.index)
    exp = Explanation(np.zeros((4, 5)), np.zeros(4), data=frame, params={"obj": object()})
    for e, name in ((exp, "df"), (ragged, "rg")):
        path = e.save(tmp_path / f"{name}.whybox")
        names, arrays = _npy_members(path)
        assert "meta.json" in names
        assert all(n == "meta.json" or n.endswith(".npy") for n in names)
        assert len(arrays) == len(names) - 1 and arrays
        assert all(a.dtype.kind != "O" for a in arrays.values())
        with zipfile.ZipFile(path) as zf:
            json.loads(zf.read("meta.json"))
    _, arrays = _npy_members(tmp_path / "df.whybox")
    text = [a for a in arrays.values() if a.dtype.kind == "U"]
    assert any(set(a.tolist()) >= {"x", "2", "3.5"} for a in text)  # object column as text
    back = load(tmp_path / "df.whybox")
    assert back.data["mixed"].dtype == object
    assert back.data["mixed"].tolist()[:2] == ["x", "2"] and back.data["mixed"].iloc[3] == "3.5"
    assert pd.isna(back.data["mixed"].iloc[2])
    assert back.params["obj"].startswith("<object object")  # repr, not a pickled object


def test_pickled_member_is_refused(tab, tmp_path):
    path = tab.save(tmp_path / "e.whybox")
    evil = io.BytesIO()
    np.save(evil, np.array([{"boom": 1}], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("extra.npy", evil.getvalue())
    with pytest.raises(InvalidInputError, match="not a whybox explanation file"):
        load(path)


def _rewrite_meta(src, dst, change) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            payload = zin.read(name)
            if name == "meta.json":
                payload = change(payload)
            if payload is not None:
                zout.writestr(name, payload)


def test_bad_files_raise_invalid_input(tab, tmp_path):
    good = tab.save(tmp_path / "good.whybox")
    (tmp_path / "text.whybox").write_bytes(b"not a zip at all")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("readme.txt", "hello")

    def set_key(key, value):
        def change(payload):
            meta = json.loads(payload)
            meta[key] = value
            return json.dumps(meta).encode()

        return change

    _rewrite_meta(good, tmp_path / "newer.whybox", set_key("version", 99))
    _rewrite_meta(good, tmp_path / "foreign.whybox", set_key("format", "someone.else"))
    _rewrite_meta(good, tmp_path / "badjson.whybox", lambda b: b"{not json")
    _rewrite_meta(good, tmp_path / "list.whybox", lambda b: b"[1, 2]")
    _rewrite_meta(
        good,
        tmp_path / "nokeys.whybox",
        lambda b: json.dumps({"format": "whybox.explanation", "version": 1}).encode(),
    )
    cases = {
        "text.whybox": "not a whybox",
        "other.zip": "not a whybox",
        "newer.whybox": "newer whybox",
        "foreign.whybox": "not a whybox",
        "badjson.whybox": "not a whybox",
        "list.whybox": "not a whybox",
        "nokeys.whybox": "damaged",
        "missing.whybox": "no such file",
    }
    for name, match in cases.items():
        with pytest.raises(InvalidInputError, match=match):
            load(tmp_path / name)
    (tmp_path / "folder.whybox").mkdir()
    with pytest.raises(InvalidInputError, match="not a file"):
        load(tmp_path / "folder.whybox")
    assert load(good).feature_names == FEATURES  # the source file itself was fine


def test_save_into_missing_folder_raises(tab, tmp_path):
    with pytest.raises(InvalidParameterError, match="does not exist"):
        tab.save(tmp_path / "nope" / "e.whybox")
    assert list(tmp_path.iterdir()) == []


def test_save_uses_umask_permissions(tab, tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    path = tab.save(tmp_path / "perm.whybox")
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("target", [(np.lib.format, "write_array"), (os, "replace"), (os, "fsync")])
def test_failed_save_keeps_previous_file(tab, tmp_path, monkeypatch, target):
    path = tab.save(tmp_path / "keep.whybox")
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(*target, boom)
    changed = tab[:2]
    with pytest.raises(OSError, match="disk full"):
        changed.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.whybox"]  # no temp files
    assert len(load(path)) == 4


def test_save_overwrites_existing_file(tab, tmp_path):
    path = tab.save(tmp_path / "e.whybox")
    tab[1:3].save(path)
    back = load(path)
    assert back.row_labels == ["b", "c"]
    np.testing.assert_array_equal(back.values, tab.values[1:3])


# ------------------------------------------------------------------------ properties
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
anything = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True, width=64)


@st.composite
def explanations(draw, elements):
    n = draw(st.integers(1, 4))
    k = draw(st.integers(0, 3))
    out = () if k == 0 else (k,)
    base = draw(np_arrays(np.float64, (n, *out), elements=elements))
    pred = draw(np_arrays(np.float64, (n, *out), elements=elements))
    if draw(st.booleans()):  # ragged rows
        lengths = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
        values = [draw(np_arrays(np.float64, (p, *out), elements=elements)) for p in lengths]
        names = [[f"t{i}_{j}" for j in range(p)] for i, p in enumerate(lengths)]
        data = [np.arange(p) + 10 * i for i, p in enumerate(lengths)]
        exp = Explanation(values, base, predictions=pred, feature_names=names, data=data)
        direct = pred - base - np.stack([v.sum(axis=0) for v in values])
        return exp, direct
    feature_shape = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))
    values = draw(np_arrays(np.float64, (n, *feature_shape, *out), elements=elements))
    data = draw(np_arrays(np.float64, (n, *feature_shape), elements=elements))
    names = [f"k{j}" for j in range(k)] if k else None
    exp = Explanation(
        values, base, predictions=pred, output_names=names, data=data, std=np.abs(values)
    )
    p = int(np.prod(feature_shape))
    flat = values.reshape(n, p, *out)
    direct = pred - base - sum(flat[:, j] for j in range(p))
    return exp, direct


def _assert_same(back: Explanation, exp: Explanation) -> None:
    assert back.is_ragged == exp.is_ragged
    assert back.feature_names == exp.feature_names and back.output_names == exp.output_names
    np.testing.assert_array_equal(back.base_values, exp.base_values)
    np.testing.assert_array_equal(back.predictions, exp.predictions)
    if exp.is_ragged:
        assert len(back.values) == len(exp.values)
        for a, b in zip(back.values, exp.values, strict=True):
            assert a.shape == b.shape
            np.testing.assert_array_equal(a, b)
        for a, b in zip(back.data, exp.data, strict=True):
            np.testing.assert_array_equal(a, b)
    else:
        assert back.values.shape == exp.values.shape
        np.testing.assert_array_equal(back.values, exp.values)
        np.testing.assert_array_equal(back.std, exp.std)
        np.testing.assert_array_equal(back.data, exp.data)


@settings(max_examples=75, deadline=None)
@given(case=explanations(anything))
def test_property_save_load_is_exact(tmp_path_factory, case):
    exp, _ = case
    path = tmp_path_factory.mktemp("prop") / "e.whybox"
    _assert_same(load(exp.save(path)), exp)


@settings(max_examples=75, deadline=None)
@given(case=explanations(finite))
def test_property_completeness_gap_matches_numpy(case):
    exp, direct = case
    gap = exp.completeness_gap()
    assert gap.shape == exp.base_values.shape
    np.testing.assert_allclose(gap, direct, rtol=1e-9, atol=1e-6)
