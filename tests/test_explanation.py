"""Explanation: layout checks, indexing, summaries, completeness and lossless save/load."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest

from whybox.errors import InvalidInputError, InvalidParameterError
from whybox.explanation import Explanation, load


@pytest.fixture
def tab():
    rng = np.random.default_rng(0)
    data = pd.DataFrame(
        {
            "income": [30000.0, 52000.0, 81000.0, 12000.0],
            "age": np.array([25, 40, 61, 33], dtype=np.int64),
            "purpose": pd.Categorical(
                ["car", "home", "car", "edu"], categories=["car", "edu", "home", "unused"]
            ),
            "city": np.array(["Oslo", None, "Lyon", "Pune"], dtype=object),
        },
        index=["a", "b", "c", "d"],
    )
    values = rng.normal(size=(4, 4))
    std = np.abs(rng.normal(size=(4, 4)))
    base = np.full(4, 0.5)
    pred = base + values.sum(axis=1) + np.array([0.0, 1e-3, 0.0, -2e-3])
    return Explanation(
        values,
        base,
        data=data,
        std=std,
        predictions=pred,
        method="exact",
        params={"output": "probability of class 1", "n": np.int64(3), "x": np.float32(0.5)},
        n_evals=16,
        random_state=7,
        meta={"note": "hi"},
    )


def test_layout_validation():
    with pytest.raises(InvalidInputError, match="base_values"):
        Explanation(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(InvalidInputError, match="feature_names"):
        Explanation(np.zeros((3, 2)), np.zeros(3), feature_names=["a"])
    with pytest.raises(InvalidInputError, match="std"):
        Explanation(np.zeros((3, 2)), np.zeros(3), std=np.zeros((3, 3)))
    with pytest.raises(InvalidInputError, match="predictions"):
        Explanation(np.zeros((3, 2)), np.zeros(3), predictions=np.zeros(2))
    with pytest.raises(InvalidInputError, match="do not match"):
        Explanation(np.zeros((3, 2)), np.zeros((3, 2)))


def test_row_feature_and_output_indexing(tab):
    one = tab[0]
    assert one.values.shape == (1, 4) and one.row_labels == ["a"]
    np.testing.assert_array_equal(tab[[0, 2]].values, tab.values[[0, 2]])
    np.testing.assert_array_equal(tab[np.array([True, False, True, False])].std, tab.std[[0, 2]])
    np.testing.assert_array_equal(tab[1:3].predictions, tab.predictions[1:3])
    sub = tab[:, ["purpose", "income"]]
    assert sub.feature_names == ["purpose", "income"]
    np.testing.assert_array_equal(sub.values, tab.values[:, [2, 0]])
    assert list(sub.data.columns) == ["purpose", "income"]
    assert tab[:, "age"].values.shape == (4, 1)
    with pytest.raises(InvalidParameterError, match="income"):
        tab[:, "salary"]
    with pytest.raises(InvalidParameterError, match="out of range"):
        tab[9]
    with pytest.raises(InvalidParameterError, match="single output"):
        tab[:, :, 0]
    multi = Explanation(
        np.arange(24.0).reshape(2, 3, 4), np.zeros((2, 4)), output_names=["p", "q", "r", "s"]
    )
    q = multi[:, :, "q"]
    assert not q.multi_output and q.values.shape == (2, 3)
    np.testing.assert_array_equal(q.values, multi.values[..., 1])
    assert q.params["output"] == "q"
    assert multi[:, :, [0, 3]].output_names == ["p", "s"]


def test_summaries(tab):
    np.testing.assert_allclose(tab.mean_abs().to_numpy(), np.abs(tab.values).mean(axis=0))
    top = tab.top(2)
    expected = np.argsort(-np.abs(tab.values).mean(axis=0))[:2]
    assert list(top.index) == [tab.feature_names[j] for j in expected]
    with pytest.raises(InvalidParameterError):
        tab.top(0)
    wide = tab.to_frame()
    assert list(wide.index) == ["a", "b", "c", "d"] and list(wide.columns) == tab.feature_names
    multi = Explanation(
        np.arange(12.0).reshape(2, 3, 2), np.zeros((2, 2)), output_names=["no", "yes"]
    )
    frame = multi.to_frame()
    assert frame.loc[1, ("yes", "x2")] == multi.values[1, 2, 1]
    assert multi.mean_abs().shape == (3, 2)


def test_completeness_gap_for_every_layout(tab):
    np.testing.assert_allclose(tab.completeness_gap(), [0.0, 1e-3, 0.0, -2e-3], atol=1e-15)
    img = Explanation(np.ones((2, 2, 3)), [1.0, 2.0], predictions=[7.0, 9.0])
    np.testing.assert_allclose(img.completeness_gap(), [0.0, 1.0])
    assert len(img.to_frame()) == 12
    ragged = Explanation(
        [np.ones(2), np.ones(4)],
        [0.0, 1.0],
        predictions=[2.0, 6.0],
        feature_names=[["a", "b"], ["a", "b", "c", "d"]],
    )
    np.testing.assert_allclose(ragged.completeness_gap(), [0.0, 1.0])
    assert len(ragged.to_frame()) == 6
    with pytest.raises(InvalidParameterError, match="no predictions"):
        Explanation(np.ones((1, 2)), [0.0]).completeness_gap()


def test_html_escapes_names():
    evil = "<script>alert(1)</script>"
    exp = Explanation(np.ones((1, 2)), [0.0], feature_names=[evil, "b"], method="<b>m</b>")
    html = exp._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<b>m</b>" not in html


def test_save_load_round_trip(tab, tmp_path):
    tab.data["when"] = pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01"])
    tab.data["count"] = pd.array([1, None, 3, 4], dtype="Int64")
    tab.data["flag"] = [True, False, True, True]
    path = tab.save(tmp_path / "e.whybox")
    back = load(path)
    np.testing.assert_array_equal(back.values, tab.values)
    np.testing.assert_array_equal(back.std, tab.std)
    np.testing.assert_array_equal(back.predictions, tab.predictions)
    pd.testing.assert_frame_equal(back.data, tab.data)
    assert back.params == {"output": "probability of class 1", "n": 3, "x": 0.5}
    assert (back.method, back.n_evals, back.random_state, back.meta) == (
        "exact",
        16,
        7,
        {"note": "hi"},
    )
    assert back.data["purpose"].cat.categories.tolist() == ["car", "edu", "home", "unused"]


def test_saved_file_holds_no_pickle(tab, tmp_path):
    path = tab.save(tmp_path / "e.whybox")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert "meta.json" in names
        assert all(n == "meta.json" or n.endswith(".npy") for n in names)
        for n in names:
            if n.endswith(".npy"):
                np.load(io.BytesIO(zf.read(n)), allow_pickle=False)


def test_ragged_and_multi_round_trip(tmp_path):
    ragged = Explanation(
        [np.arange(2.0), np.arange(3.0)],
        [0.0, 1.0],
        data=[np.array(["a", "b"]), np.array(["x", "y", "z"])],
        feature_names=[["a", "b"], ["x", "y", "z"]],
    )
    back = load(ragged.save(tmp_path / "r.whybox"))
    assert back.is_ragged and back.feature_names == ragged.feature_names
    np.testing.assert_array_equal(back.values[1], [0.0, 1.0, 2.0])
    assert back.data[1].tolist() == ["x", "y", "z"]
    multi = Explanation(
        np.ones((2, 3, 2)),
        np.zeros((2, 2)),
        output_names=["u", "v"],
        data=np.arange(6.0).reshape(2, 3),
    )
    back = load(multi.save(tmp_path / "m.whybox"))
    assert back.output_names == ["u", "v"]
    np.testing.assert_array_equal(back.data, multi.data)


def test_bad_files_and_failed_writes(tab, tmp_path, monkeypatch):
    (tmp_path / "x.whybox").write_bytes(b"not a zip")
    with pytest.raises(InvalidInputError, match="not a whybox"):
        load(tmp_path / "x.whybox")
    with pytest.raises(InvalidInputError, match="no such file"):
        load(tmp_path / "missing.whybox")
    with pytest.raises(InvalidParameterError, match="does not exist"):
        tab.save(tmp_path / "nope" / "e.whybox")
    path = tab.save(tmp_path / "keep.whybox")
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", boom)
    with pytest.raises(OSError, match="disk full"):
        tab.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
def test_property_round_trip_and_gap(tmp_path_factory):
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    @settings(max_examples=30, deadline=None)
    @given(
        n=st.integers(1, 5),
        p=st.integers(1, 4),
        k=st.integers(0, 3),
        data=st.data(),
    )
    def check(n, p, k, data):
        shape = (n, p) if k == 0 else (n, p, k)
        floats = st.floats(-1e6, 1e6, allow_nan=False)
        values = data.draw(arrays(np.float64, shape, elements=floats))
        base = data.draw(arrays(np.float64, (n,) if k == 0 else (n, k), elements=floats))
        pred = data.draw(arrays(np.float64, base.shape, elements=floats))
        names = [f"k{j}" for j in range(k)] if k else None
        exp = Explanation(values, base, predictions=pred, output_names=names)
        np.testing.assert_array_equal(exp.completeness_gap(), pred - base - values.sum(axis=1))
        path = tmp_path_factory.mktemp("h") / "e.whybox"
        back = load(exp.save(path))
        np.testing.assert_array_equal(back.values, values)
        np.testing.assert_array_equal(back.base_values, base)
        np.testing.assert_array_equal(back.predictions, pred)

    check()
