"""ExactShap and exact_shapley against shap, closed forms and the Shapley axioms."""

from __future__ import annotations

import itertools
from math import factorial

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_wine
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from whybox.agnostic.shapley import ExactShap
from whybox.errors import InvalidInputError, InvalidParameterError
from whybox.games.game import BaseGame
from whybox.games.shapley import all_coalitions, exact_shapley
from whybox.testing import check_explainer


class FunctionGame(BaseGame):
    """A game from a Python function of a frozenset of players."""

    def __init__(self, n, v):
        super().__init__(n)
        self.v = v

    def _evaluate(self, coalitions):
        return np.array([[self.v(frozenset(np.flatnonzero(c)))] for c in coalitions])


def brute_force_shapley(n, v):
    """Shapley values from the permutation definition (average marginal contribution)."""
    phi = np.zeros(n)
    for perm in itertools.permutations(range(n)):
        before = set()
        for j in perm:
            phi[j] += v(frozenset(before | {j})) - v(frozenset(before))
            before.add(j)
    return phi / factorial(n)


def test_all_coalitions_enumerates_bits():
    C = all_coalitions(3)
    assert C.shape == (8, 3)
    assert C[5].tolist() == [True, False, True]  # 5 = 0b101
    assert len({tuple(r) for r in C}) == 8


@pytest.mark.parametrize("n", [1, 2, 4, 5])
def test_exact_shapley_matches_permutation_definition(n):
    rng = np.random.default_rng(n)
    table = {
        frozenset(s): rng.normal()
        for r in range(n + 1)
        for s in itertools.combinations(range(n), r)
    }
    game = FunctionGame(n, table.__getitem__)
    phi, v0, vN = exact_shapley(game)
    np.testing.assert_allclose(phi[:, 0], brute_force_shapley(n, table.__getitem__), atol=1e-12)
    assert v0[0] == table[frozenset()]
    assert vN[0] == table[frozenset(range(n))]


def test_unanimity_game_closed_form():
    # v(S) = 1 if S contains {0, 2, 3}: each of the three gets 1/3, the others 0
    game = FunctionGame(5, lambda s: float({0, 2, 3} <= s))
    phi, _, _ = exact_shapley(game)
    np.testing.assert_allclose(phi[:, 0], [1 / 3, 0, 1 / 3, 1 / 3, 0], atol=1e-15)


def test_weighted_voting_game_closed_form():
    # weights (3, 1, 1, 1), quota 4: player 0 is pivotal unless it comes first -> 3/4; a
    # small player is pivotal only right after player 0 opened the order -> 1/4 * 1/3 = 1/12
    w = np.array([3, 1, 1, 1])
    game = FunctionGame(4, lambda s: float(sum(w[list(s)]) >= 4))
    phi, _, _ = exact_shapley(game)
    np.testing.assert_allclose(phi[:, 0], [3 / 4, 1 / 12, 1 / 12, 1 / 12], atol=1e-15)


def test_pairwise_interaction_game_splits_equally():
    # v(S) = a_0 [0 in S] + b [1 in S and 2 in S]: 0 gets a_0, 1 and 2 get b/2 each
    game = FunctionGame(4, lambda s: 2.0 * (0 in s) + 3.0 * ({1, 2} <= s))
    phi, _, _ = exact_shapley(game)
    np.testing.assert_allclose(phi[:, 0], [2.0, 1.5, 1.5, 0.0], atol=1e-15)


def test_exact_shapley_evaluates_every_coalition_once():
    calls = []

    class Counting(FunctionGame):
        def _evaluate(self, coalitions):
            calls.append(len(coalitions))
            return super()._evaluate(coalitions)

    game = Counting(6, lambda s: float(len(s) ** 2))
    exact_shapley(game)
    exact_shapley(game)  # all cached now
    assert sum(calls) == 2**6
    assert game.n_evaluated == 64


@pytest.fixture(scope="module")
def wine_model():
    X, y = load_wine(return_X_y=True, as_frame=True)
    X = X.iloc[:, :7]
    model = GradientBoostingClassifier(random_state=0, n_estimators=30).fit(X, y)
    return model, X


def test_exact_matches_shap_exact_explainer(wine_model):
    shap = pytest.importorskip("shap")  # a dev dependency: always installed by make test
    model, X = wine_model
    bg = X.iloc[::4].iloc[:30]
    explained = X.iloc[:6]
    exp = ExactShap(model, background=bg).explain(explained, target=0)
    masker = shap.maskers.Independent(bg, max_samples=len(bg))
    ref = shap.explainers.ExactExplainer(lambda x: model.predict_proba(x)[:, 0], masker)(explained)
    np.testing.assert_allclose(exp.values, ref.values, atol=1e-8)
    np.testing.assert_allclose(exp.base_values, ref.base_values, atol=1e-8)
    assert np.abs(exp.completeness_gap()).max() < 1e-10
    assert exp.params["output"] == "probability of class 0"


def test_exact_multiclass_has_output_axis(wine_model):
    model, X = wine_model
    exp = ExactShap(model, background=X.iloc[:20]).explain(X.iloc[:3])
    assert exp.values.shape == (3, 7, 3)
    assert exp.output_names == ["0", "1", "2"]
    np.testing.assert_allclose(exp.predictions, model.predict_proba(X.iloc[:3]), atol=1e-12)
    # efficiency per class, and probabilities sum to one so the values over classes sum to 0
    assert np.abs(exp.completeness_gap()).max() < 1e-10
    np.testing.assert_allclose(exp.values.sum(axis=2), 0.0, atol=1e-10)


def test_linear_model_closed_form():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    coef = np.array([1.5, -2.0, 0.0, 0.7, 3.0])
    model = LinearRegression().fit(X, X @ coef + 0.3)
    bg = X[:40]
    exp = ExactShap(model, background=bg).explain(X[100:110])
    expected = model.coef_ * (X[100:110] - bg.mean(axis=0))
    np.testing.assert_allclose(exp.values, expected, atol=1e-10)
    np.testing.assert_allclose(exp.values[:, 2], 0.0, atol=1e-10)  # dummy player


def test_logistic_model_logit_link_is_linear_in_features():
    # with link="logit" and a single background row the log-odds are linear:
    # phi_j = w_j (x_j - b_j) exactly
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 4))
    y = (X @ [1, -1, 0.5, 0] + rng.normal(size=300) > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    b = X[:1]
    exp = ExactShap(model, background=b).explain(X[5:9], link="logit")
    np.testing.assert_allclose(exp.values, model.coef_[0] * (X[5:9] - b), atol=1e-9)
    assert exp.params["output"] == "log-odds of class 1"


def test_symmetry_of_interchangeable_features():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(60, 3))
    X[:, 1] = X[:, 0]  # identical columns
    f = lambda Z: np.sin(Z[:, 0] + Z[:, 1]) + Z[:, 2] ** 2  # noqa: E731 - symmetric in 0, 1
    exp = ExactShap(f, background=X[:25]).explain(X[30:35])
    np.testing.assert_allclose(exp.values[:, 0], exp.values[:, 1], atol=1e-12)


def test_pipeline_with_categorical_and_string_columns_keeps_dtypes():
    rng = np.random.default_rng(3)
    n = 300
    df = pd.DataFrame(
        {
            "income": rng.lognormal(10, 0.4, n),
            "purpose": pd.Categorical(rng.choice(["car", "home", "edu"], n)),
            "region": rng.choice(["north", "south"], n).astype(object),
            "age": rng.integers(18, 80, n),
        }
    )
    y = ((df["purpose"] == "home") ^ (df["income"] > 22000)).astype(int)
    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), ["income", "age"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["purpose", "region"]),
        ]
    )
    model = make_pipeline(pre, LogisticRegression()).fit(df, y)
    exp = check_explainer(
        lambda: ExactShap(model, background=df.iloc[:30], random_state=0), df.iloc[40:45]
    )
    assert isinstance(exp.data, pd.DataFrame)
    assert exp.data.dtypes.equals(df.dtypes)
    assert exp.feature_names == ["income", "purpose", "region", "age"]
    # columns in another order are matched by name and reported in the caller's order
    order = ["age", "region", "income", "purpose"]
    shuffled = df.iloc[40:45][order]
    exp2 = ExactShap(model, background=df.iloc[:30]).explain(shuffled)
    assert exp2.feature_names == order
    assert list(exp2.data.columns) == order
    idx = [exp.feature_names.index(c) for c in order]
    np.testing.assert_allclose(exp2.values, exp.values[:, idx], atol=1e-12)


def test_groups_sum_of_members_for_additive_model():
    rng = np.random.default_rng(4)
    X = pd.DataFrame(rng.normal(size=(80, 4)), columns=["a", "b", "c", "d"])
    coef = np.array([1.0, 2.0, -1.0, 0.5])
    f = lambda Z: np.asarray(Z, dtype=float) @ coef  # noqa: E731
    bg = X.iloc[:20]
    exp = ExactShap(f, background=bg, groups={"ab": ["a", "b"]}).explain(X.iloc[50:53])
    assert exp.feature_names == ["ab", "c", "d"]
    per_feature = coef * (X.iloc[50:53].to_numpy() - bg.to_numpy().mean(axis=0))
    np.testing.assert_allclose(exp.values[:, 0], per_feature[:, :2].sum(axis=1), atol=1e-12)
    np.testing.assert_allclose(exp.values[:, 1:], per_feature[:, 2:], atol=1e-12)


@pytest.mark.parametrize(
    ("groups", "words"),
    [
        ({"g": ["a", "zzz"]}, ["unknown feature", "zzz"]),
        ({"g": ["a", "b"], "h": ["b", "c"]}, ["two groups", "'b'"]),
        ({"g": []}, ["empty"]),
    ],
)
def test_bad_groups_are_refused(groups, words):
    X = pd.DataFrame(np.zeros((5, 3)), columns=["a", "b", "c"])
    with pytest.raises(InvalidParameterError) as info:
        ExactShap(lambda Z: np.zeros(len(Z)), background=X, groups=groups).explain(X)
    for w in words:
        assert w in str(info.value)


def test_refuses_more_than_twenty_players():
    X = np.zeros((3, 21))
    with pytest.raises(InvalidParameterError) as info:
        ExactShap(lambda Z: np.zeros(len(Z)), background=X).explain(X)
    msg = str(info.value)
    assert "21" in msg and "KernelShap" in msg and "groups" in msg


def test_background_with_other_columns_is_refused():
    X = pd.DataFrame(np.zeros((5, 2)), columns=["a", "b"])
    bg = pd.DataFrame(np.zeros((5, 2)), columns=["a", "c"])
    with pytest.raises(InvalidInputError) as info:
        ExactShap(lambda Z: np.zeros(len(Z)), background=bg).explain(X)
    assert "'c'" in str(info.value) and "'b'" in str(info.value)


def test_background_with_nan_is_refused():
    X = np.ones((5, 2))
    bg = X.copy()
    bg[1, 0] = np.nan
    with pytest.raises(InvalidInputError) as info:
        ExactShap(lambda Z: Z.sum(axis=1), background=bg).explain(X)
    assert "background" in str(info.value) and "x0 (1 rows)" in str(info.value)


def test_results_do_not_depend_on_chunk_size(wine_model):
    model, X = wine_model
    big = ExactShap(model, background=X.iloc[:20]).explain(X.iloc[:2], target=1)
    tiny = ExactShap(model, background=X.iloc[:20], chunk_bytes=2000).explain(X.iloc[:2], target=1)
    np.testing.assert_array_equal(big.values, tiny.values)


def test_background_subsampling_is_seeded():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(500, 3))
    f = lambda Z: np.tanh(Z).prod(axis=1)  # noqa: E731
    a = ExactShap(f, background=X, max_background=50, random_state=7).explain(X[:2])
    b = ExactShap(f, background=X, max_background=50, random_state=7).explain(X[:2])
    c = ExactShap(f, background=X, max_background=50, random_state=8).explain(X[:2])
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.allclose(a.values, c.values)
    assert a.params["background_rows"] == 50


class BrokenExactShap(ExactShap):
    """Deliberately wrong: scales the Shapley values, breaking efficiency."""

    def _estimate(self, game, rng, **kwargs):
        phi, base, std, info = super()._estimate(game, rng, **kwargs)
        return phi * 1.01, base, std, info


class SilentBrokenExactShap(BrokenExactShap):
    """The same, with the explainer's own completeness warning switched off."""

    efficient = False


class NondeterministicExactShap(ExactShap):
    def _estimate(self, game, rng, **kwargs):
        phi, base, std, info = super()._estimate(game, rng, **kwargs)
        noise = np.random.default_rng().normal(scale=1e-3, size=phi.shape)
        return phi + noise - noise.mean(axis=0), base, std, info


def test_conformance_suite_accepts_exact_and_rejects_broken_estimators():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(40, 4))
    f = lambda Z: Z[:, 0] * Z[:, 1] + np.exp(Z[:, 2]) - Z[:, 3]  # noqa: E731
    check_explainer(lambda: ExactShap(f, background=X[:15]), X[20:24])
    # the explainer's own completeness check catches the broken estimator ...
    with pytest.warns(UserWarning, match=r"do not add up to prediction - base value"):
        BrokenExactShap(f, background=X[:15]).explain(X[20:24])
    # ... and the conformance suite catches it when that check is off (a silent estimator)
    with pytest.raises(AssertionError, match="efficiency"):
        check_explainer(lambda: SilentBrokenExactShap(f, background=X[:15]), X[20:24])
    with pytest.raises(AssertionError, match="deterministic"):
        check_explainer(lambda: NondeterministicExactShap(f, background=X[:15]), X[20:24])
