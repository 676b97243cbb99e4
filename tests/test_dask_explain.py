"""Explainers on Dask collections (whybox._dask_explain, whybox._dask_inspect, whybox._shards).

Every result is compared bit for bit with the serial explainer on the computed data (the
oracle is the serial code path, itself tested against shap / scikit-learn elsewhere); the
cluster is one LocalCluster of two single-threaded workers (threads, to keep the file fast;
tests/test_dask_kill.py runs worker processes and kills one).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
from sklearn.inspection import partial_dependence as sk_partial_dependence
from sklearn.linear_model import LinearRegression

import whybox as wb
from whybox._shards import ShardedExplanation
from whybox.errors import InvalidInputError, InvalidParameterError, WhyboxError
from whybox.inspection.importance import permutation_importance
from whybox.inspection.partial_dependence import partial_dependence
from whybox.trees.treeshap import TreeShap

from ._dask_cluster import two_worker_client

distributed = pytest.importorskip("distributed")
dd = pytest.importorskip("dask.dataframe")
da = pytest.importorskip("dask.array")


@pytest.fixture(scope="module")
def client():
    with two_worker_client(processes=False) as c:  # thread workers: fast to start
        yield c


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 5)), columns=["a", "b", "c", "d", "e"])
    y = 2 * X.a + X.b * X.c - X.d + rng.normal(scale=0.1, size=300)
    reg = GradientBoostingRegressor(n_estimators=25, max_depth=3, random_state=0).fit(X, y)
    clf = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(
        X, pd.cut(y, 3, labels=False)
    )
    return X, y, reg, clf


def same(a, b):
    assert np.array_equal(a.values, b.values)
    assert np.array_equal(a.base_values, b.base_values)
    assert np.array_equal(a.predictions, b.predictions)
    assert a.feature_names == b.feature_names and a.output_names == b.output_names


# ------------------------------------------------------------------ TreeShap
def test_treeshap_path_dependent_dask_dataframe_bit_identical(data, client):
    X, _, reg, _ = data
    serial = TreeShap(reg).explain(X)
    seen = []
    dask = TreeShap(reg, client=client).explain(
        dd.from_pandas(X, npartitions=4), progress=lambda d, t: seen.append(d)
    )
    same(dask, serial)
    pd.testing.assert_frame_equal(dask.data, X)
    # the explainer pickles without its client (a connection, not data)
    import pickle

    again = pickle.loads(pickle.dumps(TreeShap(reg, client=client)))
    assert again.backend == "dask" and again.client is None
    assert seen[-1] == len(X) and sorted(seen) == seen


def test_treeshap_interventional_dask_array_multiclass_bit_identical(data, client):
    X, _, _, clf = data
    Xa = X.to_numpy()
    serial = TreeShap(clf, background=Xa[:40]).explain(Xa, target="all")
    # uneven row chunks, and columns split over two chunks (rechunked to whole rows)
    dX = da.from_array(Xa, chunks=((70, 130, 100), (2, 3)))
    dask = TreeShap(clf, background=Xa[:40], client=client).explain(dX, target="all")
    same(dask, serial)
    assert dask.values.shape == (300, 5, 3)
    # an in-memory X with backend="dask" is split by whybox
    auto = TreeShap(clf, background=Xa[:40], backend="dask", client=client).explain(Xa, target=1)
    same(auto, TreeShap(clf, background=Xa[:40]).explain(Xa, target=1))


def test_out_folder_writes_shards_loaded_lazily(data, client, tmp_path):
    X, _, reg, _ = data
    serial = TreeShap(reg, background=X.iloc[:30]).explain(X)
    folder = tmp_path / "shap"
    res = TreeShap(reg, background=X.iloc[:30], client=client).explain(
        dd.from_pandas(X, npartitions=3), out=folder
    )
    assert isinstance(res, ShardedExplanation)
    names = sorted(p.name for p in folder.iterdir())
    assert "whybox-shards.json" in names
    assert [n for n in names if n.endswith(".values.npy")] == [
        f"part-{i:05d}.values.npy" for i in range(3)
    ]
    assert not [n for n in names if n.endswith(".tmp")]  # every write renamed into place
    loaded = wb.load(folder)
    assert isinstance(loaded, ShardedExplanation)
    assert loaded.n_rows == 300 and loaded.rows == [100, 100, 100]
    first = loaded.shard(0)
    assert isinstance(first.values.base, np.memmap)  # memory-mapped, not read
    assert np.array_equal(first.values, serial.values[:100])
    assert list(first.data.columns) == ["a", "b", "c", "d", "e"]
    assert np.array_equal(loaded.values.compute(), serial.values)  # lazy dask array
    whole = loaded.to_explanation()
    same(whole, serial)
    assert whole.params == serial.params
    # files saved before the shard format still load as before
    serial.save(tmp_path / "one.whybox")
    same(wb.load(tmp_path / "one.whybox"), serial)


def test_out_non_empty_folder_is_refused_before_any_work(data, client, tmp_path):
    X, _, reg, _ = data
    folder = tmp_path / "used"
    folder.mkdir()
    (folder / "old.npy").write_bytes(b"x")
    with pytest.raises(InvalidParameterError, match=r"is not empty \(1 entries: old.npy\)") as e:
        TreeShap(reg, client=client).explain(dd.from_pandas(X, npartitions=2), out=folder)
    assert "Pass a new folder, or delete" in str(e.value)
    assert sorted(p.name for p in folder.iterdir()) == ["old.npy"]
    with pytest.raises(InvalidParameterError, match="is a file"):
        TreeShap(reg, client=client).explain(
            dd.from_pandas(X, npartitions=2), out=folder / "old.npy"
        )
    with pytest.raises(InvalidParameterError, match="one shard per Dask partition"):
        TreeShap(reg).explain(X, out=tmp_path / "new")


def test_partitions_with_different_columns_are_a_whybox_error(data, client):
    from dask import delayed

    X, _, reg, _ = data
    good = X.iloc[:100]
    bad = X.iloc[100:200].rename(columns={"e": "E"})
    dX = dd.from_delayed([delayed(good), delayed(bad)], meta=good.iloc[:0], verify_meta=False)
    with pytest.raises(InvalidInputError) as info:
        TreeShap(reg, client=client).explain(dX)
    assert isinstance(info.value, WhyboxError)
    text = str(info.value)
    assert "partition 1 of the Dask DataFrame has columns" in text
    assert "missing ['e'], extra ['E']" in text and "X[columns]" in text


def test_incomplete_or_foreign_folder_does_not_load(tmp_path):
    (tmp_path / "part-00000.values.npy").write_bytes(b"")
    with pytest.raises(InvalidInputError, match="did not finish"):
        wb.load(tmp_path)


def test_per_row_target_is_refused_on_dask(data, client):
    X, _, _, clf = data
    with pytest.raises(InvalidParameterError, match="one target per row"):
        TreeShap(clf, client=client).explain(
            dd.from_pandas(X, npartitions=2), target=np.zeros(len(X), dtype=int)
        )


# ------------------------------------------------------------------ gradients
def test_gradient_methods_on_dask_arrays_bit_identical(client):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)
    ).double()
    x = np.random.default_rng(1).normal(size=(40, 4))
    dx = da.from_array(x, chunks=10)
    for cls, kwargs in (
        (wb.IntegratedGradients, {"steps": 16}),
        (wb.Saliency, {}),
        (wb.InputXGradient, {}),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            serial = cls(net).explain(x, target=2, internal_batch_size=10, **kwargs)
            dask = cls(net).explain(dx, target=2, client=client, internal_batch_size=10, **kwargs)
        np.testing.assert_array_equal(dask.values, serial.values, err_msg=cls.__name__)
        np.testing.assert_array_equal(dask.predictions, serial.predictions)
        np.testing.assert_array_equal(dask.base_values, serial.base_values)
    # completeness gaps (a per-row meta entry) come back in row order
    gap = serial.meta.get("completeness_gap")
    if gap is not None:
        np.testing.assert_array_equal(np.asarray(dask.meta["completeness_gap"]), gap)


def test_gradient_out_folder_and_out_without_dask(client, tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    net = net.double()
    x = np.random.default_rng(2).normal(size=(30, 3))
    # torch's matmul rounds by batch: the same batches (6 rows divides every partition)
    # give the same bits; other batches agree to rounding only
    serial = wb.IntegratedGradients(net).explain(x, target=0, steps=8, internal_batch_size=6)
    res = wb.IntegratedGradients(net).explain(
        da.from_array(x, chunks=12),
        target=0,
        steps=8,
        internal_batch_size=6,
        out=tmp_path / "ig",
        client=client,
    )
    loaded = wb.load(tmp_path / "ig")
    assert loaded.rows == res.rows == [12, 12, 6]
    np.testing.assert_array_equal(loaded.to_explanation().values, serial.values)
    np.testing.assert_array_equal(loaded.shard(2).data, x[24:])
    with pytest.raises(InvalidParameterError, match="one shard per Dask partition"):
        wb.Saliency(net).explain(x, out=tmp_path / "sal")


# ------------------------------------------------------------------ PDP / ICE
def test_partial_dependence_dask_bit_identical_and_matches_sklearn(data, client):
    X, _, reg, _ = data
    dX = dd.from_pandas(X, npartitions=4)
    w = np.random.default_rng(3).uniform(size=len(X))
    for kw in (
        {"feature": "a", "kind": "both"},
        {"feature": "b", "kind": "individual", "centered": True},
        {"feature": ("a", "c"), "grid_resolution": 5},
        {"feature": 3, "sample_weight": w, "method": "brute"},
    ):
        serial = partial_dependence(reg, X, **kw)
        dask = partial_dependence(reg, dX, client=client, **kw)
        np.testing.assert_array_equal(dask.average, serial.average)
        assert (dask.individual is None) == (serial.individual is None)
        if serial.individual is not None:
            np.testing.assert_array_equal(dask.individual, serial.individual)
        assert dask.method == serial.method and dask.output == serial.output
        for g, h in zip(np.atleast_1d(dask.grid), np.atleast_1d(serial.grid), strict=True):
            np.testing.assert_array_equal(np.asarray(g), np.asarray(h))
    # and the numbers are scikit-learn's
    sk = sk_partial_dependence(reg, X, ["a"], grid_resolution=20, method="brute")
    ours = partial_dependence(reg, dX, "a", client=client, method="brute")
    np.testing.assert_allclose(ours.average, sk["average"][0], rtol=1e-12, atol=1e-12)


def test_partial_dependence_dask_refuses_sample(data, client):
    X, _, reg, _ = data
    with pytest.raises(InvalidParameterError, match=r"X.sample\(frac="):
        partial_dependence(reg, dd.from_pandas(X, npartitions=2), "a", sample=50)


# ------------------------------------------------------------------ permutation importance
@pytest.mark.parametrize("scoring", [None, "neg_mean_squared_error"])
def test_permutation_importance_dask_bit_identical(data, client, scoring):
    X, y, reg, _ = data
    serial = permutation_importance(reg, X, y, scoring=scoring, n_repeats=3, random_state=4)
    dask = permutation_importance(
        reg, dd.from_pandas(X, npartitions=3), y, scoring=scoring, n_repeats=3,
        random_state=4, client=client,
    )  # fmt: skip
    np.testing.assert_array_equal(dask.importances, serial.importances)
    assert dask.baseline_score == serial.baseline_score
    assert dask.feature_names == serial.feature_names


def test_permutation_importance_dask_array_and_groups(client):
    rng = np.random.default_rng(2)
    Xa = rng.normal(size=(120, 4))
    y = Xa @ [1.0, -2.0, 0.0, 0.5]
    lin = LinearRegression().fit(Xa, y)
    groups = {"first two": ["x0", "x1"]}
    serial = permutation_importance(lin, Xa, y, n_repeats=2, groups=groups, random_state=0)
    dask = permutation_importance(
        lin, da.from_array(Xa, chunks=50), y, n_repeats=2, groups=groups, random_state=0,
        client=client,
    )  # fmt: skip
    assert dask.feature_names == serial.feature_names
    np.testing.assert_allclose(dask.importances, serial.importances, rtol=0, atol=1e-12)
