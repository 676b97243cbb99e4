"""The property suite (whybox.testing) over every Shapley estimator, and its power to fail."""

from __future__ import annotations

import difflib
import warnings

import numpy as np
import pandas as pd
import pytest

from whybox.errors import InvalidParameterError, ModelCallError
from whybox.explainer import Explainer
from whybox.explanation import Explanation
from whybox.games.kernel import kernel_shapley
from whybox.games.shapley import exact_shapley, permutation_shapley
from whybox.testing import (
    ALL_CHECKS,
    NAN_SENTINEL,
    MobiusGame,
    additive_game,
    check_explainer,
    check_shapley_estimator,
    nan_sentinel_model,
    pairwise_game,
    random_game,
    unanimity_game,
)


def exact(game, seed):
    phi, _, _ = exact_shapley(game)
    return phi, None


def permutation(game, seed):
    phi, std, _, _ = permutation_shapley(game, np.random.default_rng(seed), budget=400)
    return phi, std


def kernel(game, seed):
    phi, std, _, _ = kernel_shapley(game, np.random.default_rng(seed), budget=120)
    return phi, std


def kernel_control_variate(game, seed):
    # n = 10, budget 600: sizes 1-3 and 7-9 enumerated, a cubic control variate, 4-6 sampled
    phi, std, _, info = kernel_shapley(game, np.random.default_rng(seed), budget=600)
    assert info["control_variate_order"] == 3
    return phi, std


def test_closed_forms_of_the_games():
    n = 5
    # by hand: v({0, 1}) for a pairwise game
    g = pairwise_game([1.0, 2.0, 0, 0, 0], np.triu(np.full((n, n), 0.5), 1))
    assert g.value(np.array([[1, 1, 0, 0, 0]], dtype=bool))[0, 0] == 3.5
    # each player is in 4 pairs of worth 0.5, half of each: a + 4 * 0.25
    np.testing.assert_allclose(g.shapley()[:, 0], [1 + 1.0, 2 + 1.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(unanimity_game(n, (1, 4), 3.0).shapley()[:, 0], [0, 1.5, 0, 0, 1.5])
    np.testing.assert_allclose(additive_game([1.0, -2.0]).shapley()[:, 0], [1.0, -2.0])
    r = random_game(6, random_state=0, dummy=(5,), symmetric=(0, 1))
    phi, _, _ = exact_shapley(r)  # independent check of the closed form by enumeration
    np.testing.assert_allclose(phi, r.shapley(), atol=1e-12)
    assert abs(phi[5, 0]) < 1e-12 and abs(phi[0, 0] - phi[1, 0]) < 1e-12


@pytest.mark.parametrize(
    ("estimator", "is_exact", "n"),
    [
        (exact, True, 8),
        (permutation, False, 8),
        (kernel, False, 8),
        (kernel_control_variate, False, 10),
    ],
)
def test_every_estimator_passes_the_suite(estimator, is_exact, n):
    report = check_shapley_estimator(estimator, exact=is_exact, n_players=n, n_seeds=60)
    if not is_exact:
        assert 0.90 <= report["coverage"] <= 0.99


def test_sampled_estimators_are_exactly_linear_for_a_fixed_seed():
    # the same coalitions are drawn whatever the game, and both estimators are linear in v
    for n, est in ((8, permutation), (8, kernel), (10, kernel_control_variate)):
        u = pairwise_game(np.arange(n, dtype=float), np.triu(np.ones((n, n)), 1))
        v = random_game(n, random_state=3)
        pc, _ = est(u.scaled(2.0) + v, 5)
        pu, _ = est(u, 5)
        pv, _ = est(v, 5)
        np.testing.assert_allclose(pc, 2 * pu + pv, atol=1e-9)


def test_permutation_dummy_is_exactly_zero_and_pairs_are_exact():
    # antithetic pairs resolve pairwise interactions exactly: zero variance, exact values
    n = 7
    g = pairwise_game(np.linspace(-1, 1, n), np.triu(np.full((n, n), 0.3), 1))
    phi, std = permutation(g, 0)
    np.testing.assert_allclose(phi, g.shapley(), atol=1e-12)
    np.testing.assert_allclose(std, 0, atol=1e-12)


class Biased:
    def __call__(self, game, seed):
        phi, std = permutation(game, seed)
        return phi + 0.05, std


def miscalibrated(game, seed):
    phi, std = kernel(game, seed)
    return phi, std * 0.3


def overcautious(game, seed):
    # only the standard errors are wrong (three times too wide): only calibration can see it
    phi, std = kernel(game, seed)
    return phi, std * 3.0


def inefficient_exact(game, seed):
    phi, _ = exact(game, seed)
    return phi * 1.001, None


def nonlinear_exact(game, seed):
    phi, _ = exact(game, seed)
    return np.tanh(phi), None


def ignores_dummy(game, seed):
    phi, std = kernel(game, seed)
    phi = phi.copy()
    phi[-1] += 1.0
    phi[0] -= 1.0
    return phi, std


@pytest.mark.parametrize(
    ("broken", "is_exact", "match"),
    [
        (Biased(), False, "accuracy"),
        (miscalibrated, False, "calibrated|accuracy|dummy|symmetry"),
        (overcautious, False, "not calibrated"),
        (inefficient_exact, True, "accuracy|efficiency"),
        (nonlinear_exact, True, "accuracy"),
        (ignores_dummy, False, "accuracy|dummy"),
    ],
)
def test_broken_estimators_fail_the_suite(broken, is_exact, match):
    with pytest.raises(AssertionError, match=match):
        check_shapley_estimator(broken, exact=is_exact, n_seeds=60)


def test_mobius_game_counts_and_adds():
    g = MobiusGame(3, {(0,): 1.0, (0, 2): 2.0}) + MobiusGame(3, {(1,): 3.0})
    v = g.value(np.array([[1, 1, 1], [1, 0, 1], [0, 1, 0]], dtype=bool))[:, 0]
    np.testing.assert_allclose(v, [6.0, 3.0, 3.0])


# ------------------------------------------------------------- check_explainer's checks
# A small exact explainer of a linear torch "classifier" (its output is the margin of class
# 1), written here so that the checker's verdicts rest on a known-correct reference: exact
# interventional SHAP of a linear margin is w_j (x_j - mean of the background's x_j). Each
# broken subclass breaks one rule of the contract; each must fail the check of that rule.
torch = pytest.importorskip("torch")


class ToyNet(torch.nn.Module):
    def __init__(self, names):
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(len(names), 1).double()
        self.register_buffer("seen", torch.zeros(1, dtype=torch.float64))
        self.feature_names_in_ = list(names)

    def forward(self, x):
        return self.lin(x)


class ToyShap(Explainer):
    method = "toy"
    keep_background_rows = None  # an int: use only that many rows
    warn_summary = False
    default_background = False
    positional = False
    ignore_target = False
    per_row_as_class_1 = False
    accept_any_keyword = False
    check_finite = True
    restore_mode = "always"  # "always", "on success", "never"
    bump_buffer = False
    inflate = 1.0
    warn_gap = False
    silent_about_training = False
    any_target_length = False
    no_meta_targets = False

    def __init__(self, model, background=None):
        self.model, self.background = model, background

    def _aligned(self, X):
        if self.positional:
            return np.array(X, dtype=float, order="C")
        return X[self.model.feature_names_in_].to_numpy(dtype=float)

    def explain(self, X, *, target=None, **kwargs):
        if kwargs and not self.accept_any_keyword:
            word = next(iter(kwargs))
            close = difflib.get_close_matches(word, ["target"])
            raise InvalidParameterError(
                f"unknown keyword {word!r}" + (f"; did you mean {close[0]!r}?" if close else ".")
            )
        bg = self.background
        if bg is None:
            if not self.default_background:
                raise InvalidParameterError("ToyShap needs background= rows.")
            bg = X
        if self.keep_background_rows is not None:
            bg = bg.iloc[: self.keep_background_rows]
            if self.warn_summary:
                warnings.warn(
                    f"max_background={len(bg)}: the background was summarised", stacklevel=2
                )
        Xn, Bn = self._aligned(X), self._aligned(bg)
        was = self.model.training
        if was and not self.silent_about_training:
            warnings.warn("the model is in training mode; explained in eval mode", stacklevel=2)
        self.model.eval()
        try:
            with torch.no_grad():
                pred = self.model(torch.from_numpy(Xn))[:, 0].numpy()
                bout = self.model(torch.from_numpy(Bn))[:, 0].numpy()
                if self.bump_buffer:
                    self.model.seen += 1
        finally:
            if self.restore_mode == "always":
                self.model.train(was)
        if self.restore_mode == "on success":
            self.model.train(was)
        if self.check_finite and not (np.isfinite(pred).all() and np.isfinite(bout).all()):
            raise ModelCallError(f"the model returned NaN for rows {np.where(~np.isfinite(pred))}")
        w = self.model.lin.weight.detach().numpy()[0]
        phi = (Xn - Bn.mean(axis=0)) * w * self.inflate
        base = np.full(len(Xn), bout.mean())
        if self.warn_gap:
            gap = np.abs(phi.sum(1) - pred + base).max()
            warnings.warn(f"completeness gap {gap:.2g}", stacklevel=2)
        names = list(X.columns) if self.positional else self.model.feature_names_in_
        order = [names.index(c) for c in X.columns]
        phi = phi[:, order]
        per_row = np.ndim(target) == 1 and not isinstance(target, (list, str))
        meta = {}
        if per_row and len(target) != len(Xn) and not self.any_target_length:
            raise InvalidParameterError(f"{len(target)} targets for {len(Xn)} rows.")
        if per_row and not self.per_row_as_class_1:
            labels = [int(t) for t in np.resize(np.asarray(target), len(Xn))]
            sign = np.array([1.0 if t == 1 else -1.0 for t in labels])
            output_names, params_target = ["per-example target"], [str(t) for t in labels]
            if not self.no_meta_targets:
                meta = {"targets": params_target, "row_keys": ["targets"]}
        else:
            t = 1 if (target is None or self.ignore_target or per_row) else int(target)
            sign = np.full(len(Xn), 1.0 if t == 1 else -1.0)
            output_names, params_target = [str(t)], str(t)
        return Explanation(
            phi * sign[:, None],
            base * sign,
            data=X,
            feature_names=[str(c) for c in X.columns],
            output_names=output_names,
            predictions=pred * sign,
            method="toy",
            params={
                "output": "margin",
                "target": params_target,
                "background_rows": len(bg),
            },
            meta=meta,
        )


def _broken(**attrs):
    return type("Broken", (ToyShap,), attrs)


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(0)
    names = ["a", "b c", "d"]
    X = pd.DataFrame(rng.normal(size=(50, 3)), columns=names)
    model = ToyNet(names)
    model.train()  # the checker must see the mode restored, not merely set
    return model, X


def _run_toy(cls, toy, **options):
    model, X = toy
    kwargs = {
        "checks": "all",
        "model": model,
        "row_targets": np.array([0, 1, 1, 0, 1]),
        "background": X.iloc[:40],
        "efficiency_atol": 1e-9,
        **options,
    }

    def make(background=X.iloc[10:30], model=model):
        return cls(model, background)

    return check_explainer(make, X.iloc[40:45], **kwargs)


def test_the_reference_explainer_passes_every_check(toy):
    exp = _run_toy(ToyShap, toy)
    # the reference is right: exact SHAP of a linear model against a closed form
    model, X = toy
    w = model.lin.weight.detach().numpy()[0]
    expected = (X.iloc[40:45].to_numpy() - X.iloc[10:30].to_numpy().mean(0)) * w
    np.testing.assert_allclose(exp.values, expected, atol=1e-12)
    # a summary that says so passes the background check
    _run_toy(_broken(keep_background_rows=20, warn_summary=True), toy)
    # a completeness gap that is reported with its figure passes
    _run_toy(_broken(inflate=1.5, warn_gap=True), toy)


@pytest.mark.parametrize(
    ("attrs", "check", "match"),
    [
        ({"ignore_target": True}, "binary_target", "negated|same output_names|neither"),
        ({"per_row_as_class_1": True}, "row_targets", "per-example target|differ"),
        ({"no_meta_targets": True}, "row_targets", "meta\\['targets'\\]"),
        ({"any_target_length": True}, "row_targets", "4 per-row targets for 5 rows were accepted"),
        ({"positional": True}, "column_order", "by position|change"),
        ({"accept_any_keyword": True}, "keywords", "accepted without an error"),
        ({"keep_background_rows": 20}, "background_whole", "background_rows.*20"),
        ({"default_background": True}, "background_required", "without a background"),
        ({"check_finite": False}, "nan_output", "did not raise ModelCallError"),
        ({"restore_mode": "never"}, "model_unchanged", "training|changed"),
        ({"restore_mode": "on success"}, "model_unchanged", "after the model raised"),
        ({"bump_buffer": True}, "model_unchanged", "buffer seen changed"),
        ({"silent_about_training": True}, "model_unchanged", "did not warn"),
        ({"inflate": 1.5}, "completeness", "efficiency fails"),
    ],
)
def test_each_check_fails_on_an_explainer_that_breaks_its_rule(toy, attrs, check, match):
    broken = _broken(**attrs)
    with pytest.raises(AssertionError, match=match) as info:
        _run_toy(broken, toy, checks=[check])
    assert str(info.value).startswith(f"{check}:")
    # the checks of the other rules pass it (those comparing with scalar targets excepted)
    related = {"binary_target": {"row_targets"}, "completeness": set()}.get(check, set())
    others = [c for c in ALL_CHECKS if c != check and c not in related]
    toy[0].train()
    _run_toy(broken, toy, checks=others)
    toy[0].train()


def test_collect_failures_lists_every_failed_check(toy):
    broken = _broken(ignore_target=True, accept_any_keyword=True)
    with pytest.raises(AssertionError) as info:
        _run_toy(broken, toy, collect_failures=True)
    lines = str(info.value).splitlines()
    assert [line.split(":")[0] for line in lines] == ["binary_target", "row_targets", "keywords"]


def test_the_checks_report_an_exception_inside_them_as_a_failure(toy):
    class Crashes(ToyShap):
        def explain(self, X, *, target=None, **kwargs):
            if np.ndim(target) == 1:
                raise TypeError("per-row targets not supported")
            return super().explain(X, target=target, **kwargs)

    with pytest.raises(AssertionError, match="row_targets: raised TypeError: per-row targets"):
        _run_toy(Crashes, toy, checks=["row_targets"])


def test_nan_sentinel_model_restores_every_kind_of_model(toy):
    from sklearn.linear_model import LogisticRegression

    model, X = toy
    X1 = X.copy()
    X1.iloc[0, 0] = NAN_SENTINEL
    lr = LogisticRegression().fit(X, (X["a"] > 0).astype(int))
    with nan_sentinel_model(lr) as m:
        assert m is lr
        p = m.predict_proba(X1)
        assert np.isnan(p[0]).all() and np.isfinite(p[1:]).all()
    assert "predict_proba" not in vars(lr) and np.isfinite(lr.predict_proba(X1)).all()
    with nan_sentinel_model(lambda Z: np.asarray(Z)[:, 0]) as f:
        out = f(X1.to_numpy())
        assert np.isnan(out[0]) and np.isfinite(out[1:]).all()
    with nan_sentinel_model(model) as m:
        out = m(torch.from_numpy(X1.to_numpy()))
        assert torch.isnan(out[0]).all() and torch.isfinite(out[1:]).all()
    assert not model._forward_hooks


def test_unknown_check_names_are_refused(toy):
    with pytest.raises(InvalidParameterError, match="unknown check"):
        _run_toy(ToyShap, toy, checks=["colum_order"])
