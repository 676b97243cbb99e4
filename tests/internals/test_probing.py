"""Tests of whybox.internals.probing: probes as scikit-learn estimators, control tasks,
selectivity, k-sparse selection and layer sweeps with intervals.

Oracles: scikit-learn's own LogisticRegression / Ridge / pipelines fitted on the same data,
scipy's Wilson interval (``binomtest(...).proportion_ci``), exact binomial coverage sums,
counting by hand on constructed data (closed forms of control accuracy), pandas group means.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.linear_model import LogisticRegression, Ridge, RidgeClassifier
from sklearn.metrics import r2_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator
from threadpoolctl import threadpool_limits

from whybox.errors import InvalidInputError, InvalidParameterError
from whybox.internals.probing import (
    Probe,
    ProbeSweep,
    RegressionProbe,
    control_labels,
    wilson_interval,
)


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # thousands of tiny L-BFGS fits: BLAS threads only add contention on a shared machine
    with threadpool_limits(limits=1):
        yield


def _planted(n: int = 400, d: int = 12, seed: int = 0, neurons=(3, 7)) -> tuple:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X[:, neurons[0]] + 0.8 * X[:, neurons[1]] + 0.3 * rng.normal(size=n) > 0).astype(int)
    return X, y


# ------------------------------------------------------------------ scikit-learn contract
@pytest.mark.parametrize(
    "estimator",
    [
        Probe(random_state=0),
        Probe(kind="ridge", random_state=0),
        Probe(k=2, random_state=0),
        Probe(k=2, select="l1", standardize=True, random_state=0),
        RegressionProbe(n_boot=20, random_state=0),
        RegressionProbe(k=2, select="l1", n_boot=20, random_state=0),
    ],
    ids=["logistic", "ridge", "k-sparse", "k-sparse-l1", "regression", "regression-l1"],
)
def test_check_estimator(estimator) -> None:
    check_estimator(estimator)


# ------------------------------------------------------------------ against scikit-learn
def test_dense_logistic_probe_equals_sklearn_logistic_regression() -> None:
    X, y = _planted()
    probe = Probe(C=0.5, random_state=0).fit(X, y)
    ref = LogisticRegression(C=0.5, max_iter=1000).fit(X, y)
    np.testing.assert_allclose(probe.coef_, ref.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(probe.intercept_, ref.intercept_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(probe.predict_proba(X), ref.predict_proba(X), atol=1e-8)
    np.testing.assert_array_equal(probe.predict(X), ref.predict(X))
    assert probe.n_iter_ >= 1


def test_multiclass_and_standardised_probe_equal_sklearn_pipeline() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 6)) * [1, 10, 0.1, 3, 1, 5] + [0, 5, -2, 0, 1, 0]
    y = np.digitize(X[:, 1] / 10 + X[:, 3] / 3, [-0.5, 0.5])
    probe = Probe(standardize=True, random_state=0).fit(X, y)
    ref = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    np.testing.assert_allclose(probe.predict_proba(X), ref.predict_proba(X), atol=1e-8)
    # coef_ is in the units of X: the linear map of the whole pipeline
    np.testing.assert_allclose(
        X @ probe.coef_.T + probe.intercept_, ref.decision_function(X), atol=1e-7
    )


def test_ridge_probe_equals_sklearn_ridge_classifier_and_torch_input_is_accepted() -> None:
    torch = pytest.importorskip("torch")
    X, y = _planted()
    probe = Probe(kind="ridge", alpha=3.0, random_state=0).fit(torch.tensor(X), torch.tensor(y))
    ref = RidgeClassifier(alpha=3.0).fit(X, y)
    np.testing.assert_allclose(probe.decision_function(X), ref.decision_function(X), atol=1e-10)
    np.testing.assert_allclose(
        probe.decision_function(torch.tensor(X, dtype=torch.bfloat16)),
        ref.decision_function(torch.tensor(X, dtype=torch.bfloat16).float().numpy()),
        atol=1e-6,
    )
    assert not hasattr(probe, "predict_proba")


def test_held_out_score_is_the_train_split_fit_scored_on_the_test_split() -> None:
    X, y = _planted(seed=4)
    probe = Probe(C=2.0, test_size=0.3, random_state=7).fit(X, y)
    test = probe.test_index_
    train = np.setdiff1d(np.arange(len(y)), test)
    assert len(test) == math.ceil(0.3 * len(y))
    # stratified split: both classes in the held-out proportions
    assert abs(y[test].mean() - y.mean()) < 0.02
    ref = LogisticRegression(C=2.0, max_iter=1000).fit(X[train], y[train])
    correct = int((ref.predict(X[test]) == y[test]).sum())
    assert probe.score_ == correct / len(test)
    ci = stats.binomtest(correct, len(test)).proportion_ci(0.95, method="wilson")
    np.testing.assert_allclose(probe.score_ci_, (ci.low, ci.high), rtol=1e-12)
    majority = np.bincount(y[train]).argmax()
    assert probe.report_.baseline == np.mean(y[test] == majority)
    # seeded: the same random_state gives the same report; refit=False keeps the split fit
    again = Probe(C=2.0, test_size=0.3, random_state=7).fit(X, y)
    assert again.report_.score == probe.score_ and again.control_score_ == probe.control_score_
    split_fit = Probe(C=2.0, test_size=0.3, refit=False, random_state=7).fit(X, y)
    np.testing.assert_allclose(split_fit.coef_, ref.coef_, rtol=1e-6, atol=1e-8)
    assert "accuracy" in str(probe.report_) and "selectivity" in str(probe.report_)


# ------------------------------------------------------------------ k-sparse probes
def test_k_sparse_mean_difference_selects_by_group_means_and_fits_on_those() -> None:
    X, y = _planted(d=20, neurons=(5, 11))
    probe = Probe(k=3, random_state=0).fit(X, y)
    means = pd.DataFrame(X).groupby(y).mean()
    ranked = (means.loc[1] - means.loc[0]).abs().sort_values(ascending=False, kind="stable")
    assert sorted(probe.selected_) == sorted(ranked.index[:3])
    assert {5, 11} <= set(probe.selected_.tolist())
    ref = LogisticRegression(max_iter=1000).fit(X[:, probe.selected_], y)
    np.testing.assert_allclose(probe.coef_[:, probe.selected_], ref.coef_, rtol=1e-6, atol=1e-8)
    off = np.setdiff1d(np.arange(20), probe.selected_)
    assert np.all(probe.coef_[:, off] == 0)
    np.testing.assert_array_equal(probe.report_.selected, probe.selected_)


def test_k_sparse_l1_path_finds_the_planted_neurons() -> None:
    X, y = _planted(d=30, neurons=(2, 17), seed=3)
    # a distractor with a large scale but no signal must not win on scale alone
    X[:, 9] *= 50
    probe = Probe(k=2, select="l1", random_state=0).fit(X, y)
    assert probe.selected_.tolist() == [2, 17]
    assert probe.score_ > 0.85


def test_multiclass_mean_difference_takes_the_largest_one_vs_rest_gap() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, size=600)
    X = rng.normal(size=(600, 10))
    X[:, 4] += 3 * (y == 2)  # only class 2 differs, on neuron 4
    X[:, 8] -= 2 * (y == 0)  # only class 0 differs, on neuron 8
    probe = Probe(k=2, random_state=0).fit(X, y)
    assert probe.selected_.tolist() == [4, 8]
    assert probe.coef_.shape == (3, 10)


# ------------------------------------------------------------------ control tasks
def test_control_labels_are_one_label_per_group_drawn_from_the_label_distribution() -> None:
    rng = np.random.default_rng(0)
    y = rng.choice(["a", "b", "c"], p=[0.6, 0.3, 0.1], size=3000)
    groups = rng.integers(0, 2000, size=3000)
    ctrl = control_labels(y, groups, random_state=1)
    frame = pd.DataFrame({"g": groups, "c": ctrl})
    assert frame.groupby("g")["c"].nunique().max() == 1
    per_group = frame.drop_duplicates("g")["c"].value_counts(normalize=True)
    empirical = pd.Series(y).value_counts(normalize=True)
    # one label per group, ~2000 groups: frequencies within 4 binomial standard errors
    for label in "abc":
        se = math.sqrt(empirical[label] * (1 - empirical[label]) / len(per_group))
        assert abs(per_group[label] - empirical[label]) < 4 * se
    np.testing.assert_array_equal(ctrl, control_labels(y, groups, random_state=1))


def _word_data(seed: int = 0, n_types: int = 24, per_type: int = 30) -> tuple:
    rng = np.random.default_rng(seed)
    types = np.repeat(np.arange(n_types), per_type)
    rng.shuffle(types)
    tag_of_type = rng.integers(0, 2, size=n_types)
    tag_of_type[:2] = [0, 1]
    return types, tag_of_type[types]


def test_identity_only_features_give_full_control_accuracy_and_zero_selectivity() -> None:
    types, y = _word_data()
    X = np.eye(types.max() + 1)[types]  # the activation says which word it is, nothing else
    probe = Probe(C=100.0, random_state=0).fit(X, y, groups=types)
    # closed form: task and control labels are both functions of the word type, every type
    # is seen in training, so one-hot features fit both perfectly
    assert probe.score_ == 1.0
    assert probe.control_score_ == 1.0
    assert probe.selectivity_ == 0.0
    ctrl = probe.control_y_
    assert pd.Series(ctrl).groupby(types).nunique().max() == 1


def test_property_only_features_give_selectivity_from_the_majority_count() -> None:
    types, y = _word_data(seed=2)
    X = np.eye(2)[y]  # the activation encodes the tag only, not the word
    probe = Probe(C=100.0, random_state=3).fit(X, y, groups=types)
    assert probe.score_ == 1.0
    test = probe.test_index_
    train = np.setdiff1d(np.arange(len(y)), test)
    ctrl = probe.control_y_
    # closed form: the probe sees only the tag, so for each tag it predicts the control label
    # most frequent among training examples with that tag
    hits = 0
    for tag in (0, 1):
        share = ctrl[train][y[train] == tag].mean()
        assert share != 0.5
        hits += np.sum(ctrl[test][y[test] == tag] == int(share > 0.5))
    assert probe.control_score_ == hits / len(test)
    assert probe.selectivity_ == 1.0 - hits / len(test)
    assert probe.selectivity_ > 0.2


def test_no_groups_means_one_group_per_example_and_control_can_be_switched_off() -> None:
    X, y = _planted()
    probe = Probe(random_state=0).fit(X, y)
    assert probe.report_.n_groups == len(y)
    off = Probe(control=False, random_state=0).fit(X, y)
    assert math.isnan(off.control_score_) and math.isnan(off.selectivity_)
    assert off.score_ == probe.score_


# ------------------------------------------------------------------ intervals
def test_wilson_interval_equals_scipy_and_stays_in_the_unit_interval() -> None:
    for k, n in [(0, 10), (10, 10), (37, 50), (81, 100)]:
        ref = stats.binomtest(k, n).proportion_ci(0.9, method="wilson")
        np.testing.assert_allclose(wilson_interval(k, n, 0.9), (ref.low, ref.high), rtol=1e-12)
    low, high = wilson_interval(np.array([0, 5]), np.array([5, 5]))
    assert low[0] == 0.0 and high[1] == 1.0


def test_wilson_interval_exact_coverage_is_near_nominal() -> None:
    # exact coverage: sum of binomial probabilities of the counts whose interval holds p
    n = 60
    ks = np.arange(n + 1)
    low, high = wilson_interval(ks, np.full(n + 1, n), 0.95)
    coverage = []
    for p in np.linspace(0.05, 0.95, 181):
        covers = (low <= p) & (p <= high)
        coverage.append(stats.binom.pmf(ks, n, p)[covers].sum())
    coverage = np.array(coverage)
    assert 0.94 < coverage.mean() < 0.96
    assert coverage.min() > 0.88  # Brown, Cai & DasGupta (2001), fig. 4


def test_probe_interval_covers_the_true_accuracy_at_about_the_nominal_rate() -> None:
    # one informative neuron, labels flipped with probability 0.2: the best classifier
    # (threshold at 0) has accuracy exactly 0.8, which the learned probe attains closely
    covered = 0
    reps = 120
    for seed in range(reps):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(800, 1))
        y = (x[:, 0] > 0).astype(int) ^ (rng.random(800) < 0.2)
        probe = Probe(control=False, refit=False, test_size=0.25, random_state=seed).fit(x, y)
        lo, hi = probe.score_ci_
        covered += lo <= 0.8 <= hi
    # nominal 0.95; 120 replicates have a binomial standard error of 0.02
    assert 0.88 <= covered / reps <= 1.0


# ------------------------------------------------------------------ sweeps
def test_sweep_reports_each_layer_as_a_separate_fit_would() -> None:
    rng = np.random.default_rng(0)
    n = 300
    y = rng.integers(0, 2, size=n)
    acts = {f"L{i}": rng.normal(size=(n, 8)) for i in range(3)}
    acts["L1"][:, 2] += 2.5 * y  # only layer 1 carries the property
    sweep = Probe.sweep(acts, y, random_state=0)
    assert isinstance(sweep, ProbeSweep)
    assert sweep.layers == ["L0", "L1", "L2"] and sweep.best_layer == "L1"
    for i, layer in enumerate(sweep.layers):
        single = Probe(random_state=0).fit(acts[layer], y)
        assert sweep.score[i] == single.score_
        assert (sweep.ci_low[i], sweep.ci_high[i]) == single.score_ci_
        assert sweep.control_score[i] == single.control_score_
    assert sweep.ci_low[1] > sweep.ci_high[0]
    frame = sweep.to_frame()
    assert list(frame.columns) == [
        "accuracy",
        "ci_low",
        "ci_high",
        "control",
        "selectivity",
        "n_test",
    ]
    # an instance sweeps with its own parameters; a stacked array gives integer layers
    sparse = Probe(k=1).sweep(np.stack(list(acts.values())), y, random_state=0)
    assert sparse.layers == [0, 1, 2]
    assert sparse.probes[1].selected_.tolist() == [2]


# ------------------------------------------------------------------ regression probe
def test_regression_probe_equals_sklearn_ridge_and_reports_r2() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(400, 10))
    y = 2 * X[:, 1] - X[:, 6] + 0.5 * rng.normal(size=400)
    probe = RegressionProbe(alpha=2.0, random_state=0).fit(X, y)
    ref = Ridge(alpha=2.0).fit(X, y)
    np.testing.assert_allclose(probe.predict(X), ref.predict(X), atol=1e-10)
    test = probe.test_index_
    train = np.setdiff1d(np.arange(400), test)
    held = Ridge(alpha=2.0).fit(X[train], y[train])
    assert probe.score_ == pytest.approx(r2_score(y[test], held.predict(X[test])), abs=1e-12)
    lo, hi = probe.score_ci_
    assert lo < probe.score_ < hi
    assert probe.control_score_ < 0.1 and probe.selectivity_ > 0.7
    sparse = RegressionProbe(k=2, random_state=0).fit(X, y)
    assert sparse.selected_.tolist() == [1, 6]
    lasso = RegressionProbe(k=2, select="l1", random_state=0).fit(X, y)
    assert lasso.selected_.tolist() == [1, 6]


# ------------------------------------------------------------------ bad input
def test_bad_parameters_and_inputs_raise_whybox_errors() -> None:
    X, y = _planted(d=5, neurons=(1, 3))
    with pytest.raises(InvalidParameterError, match=r"k=9 .*n_features=5"):
        Probe(k=9).fit(X, y)
    with pytest.raises(InvalidParameterError, match="select='topk'"):
        Probe(k=2, select="topk").fit(X, y)
    with pytest.raises(InvalidParameterError, match=r"kind='svm'.*RegressionProbe"):
        Probe(kind="svm").fit(X, y)
    with pytest.raises(InvalidParameterError, match="test_size"):
        Probe(test_size=1.5).fit(X, y)
    with pytest.raises(
        InvalidInputError, match=r"groups must be one id per example, shape \(400,\)"
    ):
        Probe().fit(X, y, groups=np.arange(10))
    with pytest.raises(InvalidInputError, match="1 class"):
        Probe().fit(X, np.zeros(len(y)))
    probe = Probe(random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="X has 4 features, but Probe is expecting 5"):
        probe.predict(X[:, :4])
    three = Probe(random_state=0).fit(X, np.arange(len(y)) % 3)
    with pytest.raises(InvalidParameterError, match="binary or regression probe; this one has 3"):
        _ = three.direction_


def test_too_few_examples_for_a_split_still_fit_and_say_why() -> None:
    X = np.array([[0.0], [1.0], [2.0]])
    probe = Probe().fit(X, [0, 1, 1])
    assert math.isnan(probe.score_)
    assert "too few" in probe.report_.note
    assert probe.predict(X).shape == (3,)


# ------------------------------------------------------------------ probes on a model's layers
def test_probe_layers_fits_each_layer_on_the_activations_a_hook_captures() -> None:
    torch = pytest.importorskip("torch")
    from tests.internals.tiny import build
    from whybox.internals import hooks
    from whybox.internals.probing import probe_layers

    model = build("gpt2")
    rng = np.random.default_rng(0)
    # two lengths, so that equal-length inputs are batched apart and put back in order
    inputs = [list(rng.integers(4, 96, size=5 + i % 2)) for i in range(60)]
    labels = np.array([s[-1] % 2 for s in inputs])
    sweep = probe_layers(model, inputs, labels, layers=[0, 2], random_state=0)
    manual = {}
    for layer in (0, 2):
        rows = []
        for s in inputs:
            with torch.no_grad(), hooks.capture(model, f"transformer.h.{layer}") as cache:
                model(torch.tensor([s]))
            rows.append(cache[f"transformer.h.{layer}"][0, -1])
        manual[layer] = torch.stack(rows).numpy()
    # default control groups: the token read (the last one), Hewitt & Liang's word type
    last = np.array([s[-1] for s in inputs])
    expected = Probe.sweep(manual, labels, groups=last, random_state=0)
    assert sweep.layers == [0, 2]
    np.testing.assert_array_equal(sweep.score, expected.score)
    np.testing.assert_array_equal(sweep.control_score, expected.control_score)
    for fitted, ref in zip(sweep.probes, expected.probes, strict=True):
        np.testing.assert_allclose(fitted.coef_, ref.coef_, rtol=1e-5, atol=1e-6)
    assert sweep.probes[1].hook_name_ == "blocks.2.resid_post"
    assert sweep.probes[1].position_ == -1
    assert sweep.probes[0].report_.n_groups == len(set(last.tolist()))
    by_text = probe_layers(model, inputs, labels, layers=[0], position="mean", random_state=0)
    assert by_text.probes[0].report_.n_groups == len({tuple(s) for s in inputs})


def test_token_level_probe_layers_use_token_ids_as_word_types() -> None:
    torch = pytest.importorskip("torch")
    from tests.internals.tiny import build
    from whybox.internals import hooks
    from whybox.internals.probing import probe_layers

    model = build("gpt2")
    ids = torch.randint(4, 30, (12, 6), generator=torch.Generator().manual_seed(1))
    tags = (ids % 3 == 0).long()  # a property of the word type
    sweep = probe_layers(model, ids, tags, layers=[1], position="all", random_state=0, C=10.0)
    with torch.no_grad(), hooks.capture(model, "transformer.h.1") as cache:
        model(ids)
    acts = cache["transformer.h.1"].reshape(-1, 32).numpy()
    ref = Probe(random_state=0, C=10.0).fit(acts, tags.reshape(-1), groups=ids.reshape(-1))
    assert sweep.score[0] == ref.score_ and sweep.control_score[0] == ref.control_score_
    assert sweep.probes[0].report_.n_groups == len(torch.unique(ids))


def test_probe_layers_bad_input() -> None:
    pytest.importorskip("torch")
    from tests.internals.tiny import build, input_ids
    from whybox.internals.probing import probe_layers

    model = build("gpt2")
    ids = input_ids(8, 5)
    with pytest.raises(InvalidParameterError, match=r"layer 3 is out of range.*\(0 to 2"):
        probe_layers(model, ids, np.arange(8) % 2, layers=[3])
    with pytest.raises(InvalidInputError, match="labels has 7 entries for 8 inputs"):
        probe_layers(model, ids, np.arange(7) % 2)
    with pytest.raises(InvalidInputError, match="one label per token"):
        probe_layers(model, ids, np.arange(8) % 2, position="all")
    with pytest.raises(InvalidParameterError, match="position must be"):
        probe_layers(model, ids, np.arange(8) % 2, position="last")
    with pytest.raises(InvalidParameterError, match="no hook point named"):
        probe_layers(model, ids, np.arange(8) % 2, site="resid_postt")
