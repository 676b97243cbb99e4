"""Counterfactual recourse: constraints, validity, metrics and bad input.

Oracles: the user's model called directly in the test (validity, predictions); hand-computed
MAD-scaled L1 distances, sparsity and k-nearest-neighbour plausibility; scikit-learn's
LocalOutlierFactor on a hand-built embedding; the closed-form minimal L1 move of a linear
logit for the torch gradient path.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from threadpoolctl import threadpool_limits

import whybox as wb
from whybox.errors import InvalidInputError, InvalidParameterError, UnsupportedModelError
from whybox.recourse import _cf_search
from whybox.recourse.counterfactuals import Counterfactuals

CONSTRAINTS = {
    "immutable": ["loan_purpose", "open_credit_lines"],
    "monotone": {"age": "increase", "late_payments": "decrease"},
    "ranges": {"age": (18, 70), "debt_to_income": (0.0, 0.6), "income": (None, 150_000)},
}


@pytest.fixture(autouse=True)
def _one_thread():
    # OpenMP start-up dominates small HistGradientBoosting calls on a shared machine
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def credit():
    data = wb.zoo.credit(n=1500, random_state=0)
    with threadpool_limits(1):
        model = HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(data.X, data.y)
        p = model.predict_proba(data.X)[:, 1]
    denied = np.flatnonzero(p > 0.5)
    return data.X, model, denied


@pytest.fixture(scope="module")
def cf(credit):
    X, model, _ = credit
    with threadpool_limits(1):
        return Counterfactuals(model, X, **CONSTRAINTS, time_budget=3.0, random_state=0)


def violations(X: pd.DataFrame, q: pd.DataFrame, cfs: pd.DataFrame) -> list[str]:
    """Every constraint of CONSTRAINTS checked on every counterfactual row, independently."""
    out = []
    qr = q.iloc[0]
    if list(cfs.columns) != list(X.columns) or list(cfs.dtypes) != list(X.dtypes):
        out.append("columns or dtypes differ from X_train")
    for i in range(len(cfs)):
        r = cfs.iloc[i]
        for c in CONSTRAINTS["immutable"]:
            if r[c] != qr[c]:
                out.append(f"row {i}: immutable {c} changed")
        if r["age"] < qr["age"]:
            out.append(f"row {i}: age decreased")
        if r["late_payments"] > qr["late_payments"]:
            out.append(f"row {i}: late_payments increased")
        for c, (lo, hi) in CONSTRAINTS["ranges"].items():
            lo = X[c].min() if lo is None else lo
            hi = X[c].max() if hi is None else hi
            if r[c] != qr[c] and not lo <= r[c] <= hi:
                out.append(f"row {i}: {c}={r[c]} outside [{lo}, {hi}]")
        for c in X.columns:
            if c in CONSTRAINTS["ranges"] or c == "loan_purpose":
                continue
            if r[c] != qr[c] and not X[c].min() <= r[c] <= X[c].max():
                out.append(f"row {i}: {c} outside the training range")
        for c in ("age", "months_employed", "late_payments", "open_credit_lines", "income"):
            if r[c] != np.round(r[c]):
                out.append(f"row {i}: {c} not an integer")
        if r["loan_purpose"] not in set(X["loan_purpose"]):
            out.append(f"row {i}: unseen category")
    return out


# ----------------------------------------------------------------------------- constraints
def test_every_counterfactual_is_valid_and_respects_every_constraint(credit, cf):
    X, model, denied = credit
    n_found = 0
    for i in denied[:8]:
        res = cf.explain(X.iloc[[i]], n=3)
        assert violations(X, res.query, res.counterfactuals) == []
        if len(res.counterfactuals):
            p = model.predict_proba(res.counterfactuals)  # validity by the model itself
            assert (p[:, 0] > p[:, 1]).all()
            np.testing.assert_allclose(res.prediction, p[:, 0], rtol=0, atol=1e-12)
            assert res.valid.all()
            assert (model.predict(res.counterfactuals) == 0).all()
        n_found += res.found
        assert res.status == "found" or res.status.startswith(("partial", "no counterfactual"))
    assert n_found >= 7


def test_the_constraint_check_catches_a_search_without_projection(credit, monkeypatch):
    # the same search with projection and the final feasibility filter switched off must
    # break a constraint somewhere: the check above can fail
    X, model, denied = credit
    monkeypatch.setattr(_cf_search.Space, "project", lambda self, Z: np.atleast_2d(Z).copy())
    monkeypatch.setattr(_cf_search.Space, "feasible", lambda self, Z: np.ones(len(Z), bool))
    broken = Counterfactuals(model, X, **CONSTRAINTS, time_budget=3.0)
    found = []
    for i in denied[:8]:
        res = broken.explain(X.iloc[[i]], n=3)
        found += violations(X, res.query, res.counterfactuals)
    assert found, found


def test_query_outside_a_range_keeps_its_value_or_moves_inside(credit):
    X, model, denied = credit
    q = X.iloc[[denied[0]]]
    lo = float(q["debt_to_income"].iloc[0]) + 0.05
    cf = Counterfactuals(model, X, ranges={"debt_to_income": (lo, 0.8)})
    res = cf.explain(q, n=3)
    v = res.counterfactuals["debt_to_income"].to_numpy()
    assert ((v == q["debt_to_income"].iloc[0]) | ((v >= lo) & (v <= 0.8))).all()


def test_listed_categories_are_the_only_new_values(credit):
    X, model, denied = credit
    cf = Counterfactuals(model, X, categorical={"loan_purpose": ["car", "home_improvement"]})
    for i in denied[:3]:
        q = X.iloc[[i]]
        res = cf.explain(q, n=3)
        new = res.counterfactuals["loan_purpose"]
        assert ((new == q["loan_purpose"].iloc[0]) | new.isin(["car", "home_improvement"])).all()


# --------------------------------------------------------------------------------- metrics
def _scales(X: pd.DataFrame) -> dict[str, float]:
    out = {}
    for c in X.columns:
        if c == "loan_purpose":
            continue
        v = X[c].to_numpy(dtype=float)
        mad = np.median(np.abs(v - np.median(v)))
        out[c] = mad if mad > 0 else (v.std() if v.std() > 0 else 1.0)
    return out


def test_proximity_sparsity_and_plausibility_by_hand(credit, cf):
    from sklearn.neighbors import LocalOutlierFactor

    X, _, denied = credit
    res = cf.explain(X.iloc[[denied[1]]], n=3)
    assert len(res.counterfactuals) >= 1
    s = _scales(X)
    q = res.query.iloc[0]
    cats = sorted(X["loan_purpose"].cat.categories)

    def embed(df: pd.DataFrame) -> np.ndarray:
        num = [(df[c].to_numpy(float) - np.median(X[c].to_numpy(float))) / s[c] for c in s]
        onehot = [0.5 * (df["loan_purpose"].astype(str).to_numpy() == k) for k in cats]
        return np.column_stack(num + onehot)

    E_train = embed(X)
    lof = LocalOutlierFactor(n_neighbors=20, novelty=True, metric="manhattan").fit(E_train)
    for i in range(len(res.counterfactuals)):
        r = res.counterfactuals.iloc[i]
        prox = sum(abs(float(r[c]) - float(q[c])) / s[c] for c in s)
        prox += float(r["loan_purpose"] != q["loan_purpose"])
        changed = sum(r[c] != q[c] for c in X.columns)
        assert res.proximity[i] == pytest.approx(prox, rel=1e-12, abs=1e-12)
        assert res.sparsity[i] == changed
        e = embed(res.counterfactuals.iloc[[i]])
        d = np.sort(np.abs(E_train - e).sum(axis=1))[:5]
        assert res.plausibility[i] == pytest.approx(d.mean(), rel=1e-10)
        assert res.lof[i] == pytest.approx(-lof.score_samples(e)[0], rel=1e-10)
    assert sorted(res.changes()[0]) == sorted(
        c for c in X.columns if res.counterfactuals.iloc[0][c] != q[c]
    )


def test_table_changes_and_frame(credit, cf):
    X, _, denied = credit
    res = cf.explain(X.iloc[[denied[2]]], n=2)
    t = res.table()
    assert list(t.columns[-6:]) == [
        "valid",
        "prediction",
        "proximity",
        "sparsity",
        "plausibility",
        "lof",
    ]
    for i, ch in enumerate(res.changes()):
        for c, (old, new) in ch.items():
            assert old == res.query[c].iloc[0] and new == res.counterfactuals[c].iloc[i]
            assert " -> " in t.loc[i, c]
        assert len(ch) == t.loc[i, "sparsity"]
    f = res.to_frame()
    assert list(f.columns[: X.shape[1]]) == list(X.columns) and len(f) == len(t)
    assert list(res.query.dtypes) == list(X.dtypes)


def test_diverse_set_is_pairwise_distinct_and_seeded(credit):
    X, model, denied = credit
    a = Counterfactuals(model, X, random_state=3).explain(X.iloc[[denied[3]]], n=4)
    b = Counterfactuals(model, X, random_state=3).explain(X.iloc[[denied[3]]], n=4)
    assert a.found and len(a.counterfactuals) == 4
    rows = {tuple(r) for r in a.counterfactuals.astype(object).itertuples(index=False)}
    assert len(rows) == 4
    pd.testing.assert_frame_equal(a.counterfactuals, b.counterfactuals)
    np.testing.assert_array_equal(a.proximity, b.proximity)


def test_explain_many(credit, cf):
    X, _, denied = credit
    results = cf.explain_many(X.iloc[denied[:2]], n=1)
    assert len(results) == 2 and all(r.n_requested == 1 for r in results)
    pd.testing.assert_frame_equal(results[1].query, X.iloc[[denied[1]]].reset_index(drop=True))


# ------------------------------------------------------------------- no counterfactual exists
def test_impossible_outcome_returns_promptly_with_status(credit):
    X, _, _ = credit
    y = np.r_[np.zeros(len(X) - 10), np.ones(10)].astype(int)
    const = DummyClassifier(strategy="prior").fit(X, y)  # always predicts class 0
    cf = Counterfactuals(const, X, desired=1, time_budget=1.0)
    t0 = time.perf_counter()
    res = cf.explain(X.iloc[[0]], n=2)
    assert time.perf_counter() - t0 < 3.0
    assert not res.found and len(res.counterfactuals) == 0
    assert res.status.startswith("no counterfactual found within the time budget (")
    assert list(res.counterfactuals.columns) == list(X.columns)
    assert res.table().empty and res.changes() == []


def test_time_budget_bounds_a_slow_model():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))

    def slow(Z):
        time.sleep(0.05)
        return np.full(len(Z), -1.0)  # never reaches the desired interval

    cf = Counterfactuals(slow, X, desired=(0.0, None), time_budget=0.5)
    res = cf.explain(X[0], n=1)
    assert res.elapsed < 0.5 + 0.3
    assert not res.found and res.status.startswith("no counterfactual found")


# ------------------------------------------------------------------------ other model kinds
def test_regressor_interval_and_integer_array_columns():
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.integers(0, 10, 300), rng.normal(size=300), rng.normal(size=300)])
    y = 2.0 * X[:, 0] + X[:, 1] - X[:, 2]
    reg = LinearRegression().fit(X, y)
    cf = Counterfactuals(reg, X, desired=(15.0, 20.0), immutable=["x2"], random_state=0)
    res = cf.explain(X[5], n=3)
    assert res.found
    Z = res.counterfactuals.to_numpy()
    pred = reg.predict(Z)
    assert ((pred >= 15.0) & (pred <= 20.0)).all()
    np.testing.assert_allclose(res.prediction, pred, atol=1e-12)
    assert (Z[:, 0] == np.round(Z[:, 0])).all()  # integer-valued column stays integer
    assert (Z[:, 2] == X[5, 2]).all()


def test_pipeline_with_string_column_and_probability_threshold(credit_frame):
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    X, y = credit_frame
    enc = make_column_transformer((OneHotEncoder(), ["region", "job"]), remainder="passthrough")
    model = make_pipeline(enc, LogisticRegression(max_iter=1000)).fit(X, y)
    cf = Counterfactuals(model, X, desired_proba=0.7)
    p = model.predict_proba(X)[:, 1]
    i = int(np.argmin(p))
    res = cf.explain(X.iloc[[i]], n=2, desired=1)
    assert res.found
    assert list(res.counterfactuals.dtypes) == list(X.dtypes)
    assert set(res.counterfactuals["job"]) <= set(X["job"])
    np.testing.assert_allclose(res.prediction, model.predict_proba(res.counterfactuals)[:, 1])
    assert (res.prediction >= 0.7).all()


def test_multiclass_desired_class():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    cf = Counterfactuals(model, X, desired=2)
    res = cf.explain(X.iloc[[0]], n=2)
    assert res.found and (model.predict(res.counterfactuals) == 2).all()
    with pytest.raises(InvalidParameterError, match="pass desired=<class>"):
        Counterfactuals(model, X).explain(X.iloc[[0]])


# ---------------------------------------------------------------------- torch gradient path
@pytest.fixture(scope="module")
def torch_logistic():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 3))
    logit = X @ np.array([0.5, -1.2, 2.5]) + 0.3
    y = (rng.random(500) < 1 / (1 + np.exp(-logit))).astype(float)
    model = torch.nn.Linear(3, 1).double()
    opt = torch.optim.LBFGS(model.parameters(), max_iter=100)
    Xt, yt = torch.tensor(X), torch.tensor(y)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(Xt)[:, 0], yt)
        loss.backward()
        return loss

    opt.step(closure)
    w = model.weight.detach().numpy()[0].copy()
    b = float(model.bias.item())
    return X, model, w, b


def _mad(v: np.ndarray) -> float:
    return float(np.median(np.abs(v - np.median(v))))


@pytest.mark.parametrize("frozen", [None, "best"])
def test_gradient_path_finds_the_closed_form_l1_move(torch_logistic, frozen):
    X, model, w, b = torch_logistic
    scale = np.array([_mad(X[:, j]) for j in range(3)])
    gain = np.abs(w) * scale  # logit change per unit of scaled L1 distance
    order = np.argsort(-gain)
    immutable = [] if frozen is None else [f"x{order[0]}"]
    j = order[0] if frozen is None else order[1]
    # minimal scaled-L1 move to logit 0: all on feature j, by -logit / w_j (a query whose
    # move stays inside the training range of x_j, so that the box does not bind)
    logit = X @ w + b
    target = X[:, j] - logit / w[j]
    inside = (target > X[:, j].min()) & (target < X[:, j].max()) & (logit < -1.0)
    x = X[np.flatnonzero(inside)[np.argmin(logit[inside])]]
    cost = -(x @ w + b) / gain[j]
    cf = Counterfactuals(model, X, desired=(0.0, None), immutable=immutable, method="gradient")
    res = cf.explain(x, n=1)
    assert res.found and res.method == "gradient"
    z = res.counterfactuals.to_numpy()[0]
    moved = np.flatnonzero(z != x)
    assert moved.tolist() == [j]
    assert np.sign(z[j] - x[j]) == np.sign(w[j])
    new_logit = z @ w + b
    assert 0.0 <= new_logit < 0.02 * abs(x @ w + b)
    assert res.proximity[0] == pytest.approx(cost, rel=0.02)
    with __import__("torch").no_grad():
        out = model(__import__("torch").tensor(z[None, :]))[0, 0].item()
    assert out == pytest.approx(res.prediction[0]) and out >= 0


# -------------------------------------------------------------------------------- bad input
def test_bad_constructor_input_messages(credit):
    X, model, _ = credit
    with pytest.raises(InvalidParameterError, match=r"nothing can\s+change"):
        Counterfactuals(model, X, immutable=list(X.columns))
    with pytest.raises(InvalidParameterError, match=r"contradictory: lo > hi"):
        Counterfactuals(model, X, ranges={"age": (80, 18)})
    with pytest.raises(InvalidParameterError, match=r"not columns of X_train. The columns"):
        Counterfactuals(model, X, immutable=["agee"])
    with pytest.raises(InvalidParameterError, match=r"\['salary'\].*'income', 'debt_to_income'"):
        Counterfactuals(model, X, ranges={"salary": (0, 1)})
    with pytest.raises(InvalidParameterError, match=r"is not a direction.*'increase' or"):
        Counterfactuals(model, X, monotone={"age": "up"})
    with pytest.raises(InvalidParameterError, match=r"desired=2 is not a class.*\[0, 1\]"):
        Counterfactuals(model, X, desired=2)
    with pytest.raises(InvalidParameterError, match="not a class of this model"):
        Counterfactuals(model, X).explain(X.iloc[[0]], desired="approved")
    with pytest.raises(InvalidParameterError, match="time_budget must be a positive"):
        Counterfactuals(model, X, time_budget=0)
    with pytest.raises(InvalidParameterError, match="unordered categorical"):
        Counterfactuals(model, X, monotone={"loan_purpose": "increase"})
    with pytest.raises(InvalidParameterError, match="contains no integer"):
        Counterfactuals(model, X, ranges={"age": (30.2, 30.8)})
    with pytest.raises(UnsupportedModelError, match=r"needs a torch\.nn\.Module"):
        Counterfactuals(model, X, method="gradient")
    with pytest.raises(InvalidParameterError, match=r"method='fast' is not supported"):
        Counterfactuals(model, X, method="fast")


def test_range_excluding_an_immutable_query_value(credit):
    X, model, _ = credit
    q = X.iloc[[0]]
    age = int(q["age"].iloc[0])
    cf = Counterfactuals(model, X, immutable=["age"], ranges={"age": (age + 1, 80)})
    with pytest.raises(InvalidParameterError, match=r"excludes the query's value .*immutable"):
        cf.explain(q)


def test_bad_query_messages(credit, cf):
    X, _, _ = credit
    with pytest.raises(InvalidInputError, match=r"missing columns: \['age'\]"):
        cf.explain(X.iloc[[0]].drop(columns="age"))
    with pytest.raises(InvalidInputError, match=r"unexpected columns: \['zip'\]"):
        cf.explain(X.iloc[[0]].assign(zip=1))
    with pytest.raises(InvalidInputError, match="explain_many"):
        cf.explain(X.iloc[:2])
    bad = X.iloc[[0]].copy()
    bad["loan_purpose"] = bad["loan_purpose"].cat.add_categories("boat")
    bad.loc[bad.index[0], "loan_purpose"] = "boat"
    with pytest.raises(InvalidInputError, match=r"\['boat'\] that are not categories seen"):
        cf.explain(bad)
    # NaN is the model's business (tests/recourse/test_cf_contract.py); infinities are not
    inf = X.iloc[[0]].copy()
    inf.loc[inf.index[0], "income"] = np.inf
    with pytest.raises(InvalidInputError, match="'income' of x has 1 infinite"):
        cf.explain(inf)


def test_regressor_needs_an_interval():
    X = np.random.default_rng(0).normal(size=(50, 2))
    reg = LinearRegression().fit(X, X[:, 0])
    with pytest.raises(InvalidParameterError, match=r"pass desired=\(lo, hi\)"):
        Counterfactuals(reg, X).explain(X[0])
    with pytest.raises(InvalidParameterError, match="is an interval"):
        Counterfactuals(reg, X, desired=3.0).explain(X[0])


def test_default_desired_is_the_other_class_and_a_satisfied_query_is_reported(credit, cf):
    X, model, _ = credit
    approved = X.iloc[[int(np.flatnonzero(model.predict(X) == 0)[0])]]
    res = cf.explain(approved, n=1)  # binary default: the other class, here 1
    assert res.desired.startswith("class 1") and res.found
    assert (model.predict(res.counterfactuals) == 1).all()
    same = cf.explain(approved, n=1, desired=0)
    assert not same.found and len(same.counterfactuals) == 0
    assert same.status.startswith("the query already has the desired outcome (class 0")


def test_torch_auto_path_joins_gradient_and_search(torch_logistic):
    torch = pytest.importorskip("torch")
    X, model, w, b = torch_logistic
    x = X[int(np.argmin(np.abs(X @ w + b + 2.0)))]  # logit about -2
    res = Counterfactuals(model, X, desired=(0.0, None)).explain(x, n=3)
    assert res.found and res.method == "gradient"
    Z = res.counterfactuals.to_numpy()
    with torch.no_grad():
        out = model(torch.tensor(Z))[:, 0].numpy()
    assert (out >= 0).all()
    np.testing.assert_allclose(res.prediction, out, atol=1e-12)
    np.testing.assert_allclose(out, Z @ w + b, atol=1e-10)


def test_array_with_a_listed_integer_coded_categorical():
    rng = np.random.default_rng(2)
    code = rng.choice([1.0, 4.0, 7.0], size=300)  # a categorical stored as numbers
    X = np.column_stack([code, rng.normal(size=300)])
    y = ((code == 7.0) | (X[:, 1] > 1.0)).astype(int)
    model = LogisticRegression(max_iter=1000).fit(np.column_stack([code == 7.0, X[:, 1]]), y)

    def f(Z):
        Z = np.asarray(Z, dtype=float)
        return model.predict_proba(np.column_stack([Z[:, 0] == 7.0, Z[:, 1]]))

    cf = Counterfactuals(f, X, categorical=["x0"], desired=1, random_state=0)
    q = X[np.flatnonzero((code == 1.0) & (X[:, 1] < 0))[0]]
    res = cf.explain(q, n=2)
    assert res.found
    Z = res.counterfactuals.to_numpy()
    assert set(Z[:, 0]) <= {1.0, 4.0, 7.0}
    assert (f(Z)[:, 1] > 0.5).all()
    # a changed category counts 1 in the proximity, whatever the codes' numeric distance
    for i in np.flatnonzero(Z[:, 0] != q[0]):
        scale = np.median(np.abs(X[:, 1] - np.median(X[:, 1])))
        assert res.proximity[i] == pytest.approx(1.0 + abs(Z[i, 1] - q[1]) / scale)
    with pytest.raises(InvalidInputError, match="x has 3 values but X_train has 2 columns"):
        cf.explain(np.r_[q, 0.0])


def test_series_and_array_queries_equal_the_dataframe_query(credit, cf):
    X, _, denied = credit
    row = X.iloc[[denied[4]]]
    frame = cf.explain(row, n=2)
    for q in (row.iloc[0], row.iloc[0].to_numpy()):
        other = cf.explain(q, n=2)
        pd.testing.assert_frame_equal(other.counterfactuals, frame.counterfactuals)
        pd.testing.assert_frame_equal(other.query, frame.query)
    assert list(frame.query.dtypes) == list(X.dtypes)


def test_diverse_selection_prefers_a_different_change_over_a_near_duplicate():
    # three valid candidates around x0 = 0: A and A2 move feature 0 by about 1 (A2 is a near
    # duplicate of A), B moves feature 1 by 1.2. By proximity alone the second pick would be
    # A2; the determinant of K_ij = q_i q_j / (1 + d_ij) is about 0 for {A, A2}, so it is B.
    space = _cf_search.Space(
        x0=np.zeros(2),
        is_cat=np.zeros(2, bool),
        is_int=np.zeros(2, bool),
        scale=np.ones(2),
        lo=np.full(2, -5.0),
        hi=np.full(2, 5.0),
        allowed={},
    )
    Z = np.array([[1.0, 0.0], [1.01, 0.0], [0.0, 1.2]])
    q = np.exp(-np.array([1.0, 1.01, 1.2]) / np.mean([1.0, 1.01, 1.2]))
    K = q[:, None] * q[None, :] / (1 + np.abs(Z[:, None, :] - Z[None, :, :]).sum(axis=2))
    assert np.linalg.det(K[np.ix_([0, 2], [0, 2])]) > 10 * np.linalg.det(K[:2, :2])
    assert _cf_search.select_diverse(space, Z, 2).tolist() == [0, 2]
    assert _cf_search.select_diverse(space, Z, 1).tolist() == [0]
