"""Multiclass explainable boosting (issue 20, part 3): softmax boosting of per-class scores.

Oracles: the closed form of one unshrunk Newton step per bin (numpy), interpret's
ExplainableBoostingClassifier with the same small settings (one-vs-rest AUC within 0.01),
the softmax of the decision function, and the terms adding up to each class's score.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import whybox as wb
from whybox.glassbox import ExplainableBoostingClassifier

SMALL = dict(outer_bags=2, max_rounds=120, early_stopping_rounds=20, interactions=1, n_jobs=1)


def five_classes(n=400, seed=0):
    """A 5-class problem: the class is the argmax of noisy additive scores plus one pair."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    W = rng.normal(size=(5, 5))
    S = X @ W + 1.5 * np.outer(X[:, 0] * X[:, 1], np.r_[1.0, -1.0, 0, 0, 0])
    y = np.argmax(S + rng.gumbel(size=S.shape), axis=1)
    return pd.DataFrame(X, columns=[f"f{j}" for j in range(5)]), y


@pytest.fixture(scope="module")
def fitted():
    X, y = five_classes()
    return ExplainableBoostingClassifier(**SMALL).fit(X, y), X, y


def test_one_newton_step_per_bin_is_the_closed_form():
    # one unshrunk round, every bin its own leaf, from the log class frequencies: each bin's
    # class score moves by -G/H with G = n_b p_c - n_bc, H = n_b p_c (1 - p_c)
    rng = np.random.default_rng(1)
    x = rng.integers(0, 6, size=900)
    y = (x + rng.integers(0, 3, size=900)) % 4
    exact = dict(outer_bags=1, validation_size=0, learning_rate=1.0, max_rounds=1,
                 smoothing_rounds=0, interactions=0, min_samples_leaf=1, min_hessian=0.0,
                 max_leaves=64, n_jobs=1)  # fmt: skip
    m = ExplainableBoostingClassifier(**exact).fit(x[:, None].astype(float), y)
    prior = np.bincount(y, minlength=4) / len(y)
    lp = np.log(prior) - np.log(prior).mean()
    nb = np.bincount(x, minlength=6)[:, None]
    nbc = np.stack([np.bincount(x[y == c], minlength=6) for c in range(4)], axis=1)
    want = lp + (nbc - nb * prior) / (nb * prior * (1 - prior))
    got = m.decision_function(np.arange(6.0)[:, None])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_probabilities_are_the_softmax_of_the_decision_function(fitted):
    m, X, y = fitted
    f = m.decision_function(X)
    assert f.shape == (len(X), 5)
    p = m.predict_proba(X)
    want = np.exp(f) / np.exp(f).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(p, want, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(m.predict(X), m.classes_[np.argmax(p, axis=1)])
    assert (m.predict(X) == y).mean() > 0.6  # well above the 0.2 of guessing


def test_explanations_carry_the_class_axis(fitted):
    m, X, _ = fitted
    Xe = X.iloc[:7]
    f = m.decision_function(Xe)
    e = m.explain_local(Xe)  # every class by default
    assert e.values.shape == (7, len(m.term_names_), 5)
    assert e.output_names == [str(c) for c in m.classes_]
    np.testing.assert_allclose(e.values.sum(axis=1) + e.base_values, f, atol=1e-12)
    one = m.explain_local(Xe, target=3)
    np.testing.assert_array_equal(one.values, e.values[:, :, 3])
    np.testing.assert_allclose(one.values.sum(axis=1) + one.base_values, f[:, 3], atol=1e-12)
    rows = np.array([0, 4, 2, 1, 3, 0, 4])
    per_row = m.explain_local(Xe, target=rows)
    np.testing.assert_array_equal(per_row.values, e.values[np.arange(7), :, rows])
    via_api = wb.explain(m, Xe, method="ebm", link="logit")
    np.testing.assert_array_equal(via_api.values, e.values)
    # the pair term is there, with a score per class
    assert any(" & " in t for t in m.term_names_)
    assert all(s.shape[-1] == 5 for s in m.term_scores_)


def test_string_labels_and_global_view(fitted):
    _, X, y = fitted
    labels = np.array(["a", "b", "c", "d", "e"])[y]
    m = ExplainableBoostingClassifier(**{**SMALL, "interactions": 0}).fit(X, labels)
    assert list(m.classes_) == list("abcde")
    assert set(m.predict(X)) <= set("abcde")
    e = m.explain_local(X.iloc[:3], target="d")
    assert e.output_names == ["d"]
    g = m.explain_global()
    np.testing.assert_allclose(g.importance().to_numpy(), m.term_importances())


def test_auc_matches_interpret_with_the_same_small_settings():
    interpret = pytest.importorskip("interpret.glassbox")
    from sklearn.metrics import roc_auc_score

    X, y = five_classes(n=1000, seed=3)
    Xt, yt = five_classes(n=1000, seed=4)
    kw = dict(outer_bags=2, interactions=0)
    ours = ExplainableBoostingClassifier(**kw, n_jobs=1).fit(X, y)
    ref = interpret.ExplainableBoostingClassifier(**kw, n_jobs=1).fit(X, y)
    auc = roc_auc_score(yt, ours.predict_proba(Xt), multi_class="ovr")
    auc_ref = roc_auc_score(yt, ref.predict_proba(Xt), multi_class="ovr")
    assert abs(auc - auc_ref) <= 0.01


def test_unit_weights_give_the_unweighted_multiclass_model_bit_for_bit(fitted):
    m, X, y = fitted
    again = ExplainableBoostingClassifier(**SMALL).fit(X, y, sample_weight=np.ones(len(y)))
    np.testing.assert_array_equal(m.intercept_, again.intercept_)
    for a, b in zip(m.term_scores_, again.term_scores_, strict=True):
        np.testing.assert_array_equal(a, b)


def test_results_do_not_depend_on_n_jobs():
    X, y = five_classes(n=200, seed=5)
    a = ExplainableBoostingClassifier(**{**SMALL, "outer_bags": 3, "n_jobs": 1}).fit(X, y)
    b = ExplainableBoostingClassifier(**{**SMALL, "outer_bags": 3, "n_jobs": 2}).fit(X, y)
    np.testing.assert_array_equal(a.decision_function(X), b.decision_function(X))


def test_a_class_with_one_row_is_refused_saying_what_to_do():
    X, y = five_classes(n=100, seed=6)
    y = y.copy()
    y[np.flatnonzero(y == 2)[1:]] = 0  # class 2 keeps a single row
    with pytest.raises(wb.WhyboxError, match=r"single row.*Add rows.*sample_weight=0"):
        ExplainableBoostingClassifier(**SMALL).fit(X, y)
    # dropping that row with a zero weight works
    w = np.where(y == 2, 0.0, 1.0)
    m = ExplainableBoostingClassifier(**SMALL).fit(X, y, sample_weight=w)
    assert len(m.classes_) == 4


def _brute_pair_cut(G, H, C, lam, min_leaf, min_hess=0.0):
    """Best "cut a at i, then b within each side" gain by enumeration (numpy); a leaf needs
    ``min_leaf`` weight and ``min_hess`` hessian in every class."""

    def ok(mask):
        return C[mask].sum() >= min_leaf and H[mask].sum(axis=0).min() >= min_hess

    def score(mask):
        g = G[mask].sum(axis=0)
        h = H[mask].sum(axis=0)
        return float((g * g / (h + lam)).sum())

    na, nb = C.shape
    A, B = np.meshgrid(np.arange(na), np.arange(nb), indexing="ij")
    parent = score(np.ones_like(C, dtype=bool))
    best = 0.0
    for i in range(na - 1):
        left, right = A <= i, A > i
        if not (ok(left) and ok(right)):
            continue
        sides = []
        for side in (left, right):
            opts = [score(side)]
            for j in range(nb - 1):
                lo, hi = side & (B <= j), side & (B > j)
                if ok(lo) and ok(hi):
                    opts.append(score(lo) + score(hi))
            sides.append(max(opts))
        best = max(best, sides[0] + sides[1] - parent)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_pair_cut_search_equals_enumeration(seed):
    # seeds 4, 5: a min_hessian that some classes' leaves miss (interpret checks each class)
    from whybox.glassbox._ebm_multi_pairs import _best_pair_cuts, pair_cut_work

    rng = np.random.default_rng(seed)
    na, nb, k = 5, 6, 3
    C = rng.integers(0, 4, size=(na, nb)).astype(float)
    C[1] = 0.0  # an empty row: its cut repeats the previous one
    C[:, 3 + seed % 3] = 0.0  # an empty column (the last one for seed 2): skipped likewise
    G = rng.normal(size=(na, nb, k)) * (C[..., None] > 0)
    H = rng.uniform(0.1, 1.0, size=(na, nb, k)) * (C[..., None] > 0)
    m = 8
    work = pair_cut_work(m, k)
    min_hess = 0.0 if seed < 4 else 0.6
    HG, HH, HC = np.zeros((m, m, k)), np.zeros((m, m, k)), np.zeros((m, m))
    HG[:na, :nb], HH[:na, :nb], HC[:na, :nb] = G, H, C
    got = _best_pair_cuts(HG, HH, HC, na, nb, 3.0, min_hess, 0.5, *work)
    for tr in (False, True):
        want = _brute_pair_cut(
            G.transpose(1, 0, 2) if tr else G, H.transpose(1, 0, 2) if tr else H,
            C.T if tr else C, 0.5, 3.0, min_hess,
        )  # fmt: skip
        gain, i, jl, jr = got[4:] if tr else got[:4]
        assert gain == pytest.approx(want, rel=1e-12, abs=1e-12)
        # the returned cuts' four leaves (numpy sums) give that gain
        A, Bc = np.meshgrid(np.arange(na), np.arange(nb), indexing="ij")
        x, y = (Bc, A) if tr else (A, Bc)
        leaf = np.where(x <= i, (y > jl) * (jl >= 0), 2 + (y > jr) * (jr >= 0))

        def score(mask):
            return float((G[mask].sum(0) ** 2 / (H[mask].sum(0) + 0.5)).sum())

        parent = score(np.ones((na, nb), dtype=bool))
        leaves = sum(score(leaf == q) for q in range(4) if (leaf == q).any())
        assert leaves - parent == pytest.approx(gain, rel=1e-12, abs=1e-12)


def test_global_view_of_a_multiclass_model(fitted):
    import matplotlib

    matplotlib.use("Agg")
    m, _, _ = fitted
    g = m.explain_global()
    assert "intercept=[" in repr(g)
    frame = g[0].to_frame()
    assert sorted(frame["class_index"].unique()) == list(range(5))
    np.testing.assert_array_equal(frame[frame.class_index == 2]["score"], m.term_scores_[0][:, 2])
    assert g.to_explanation().values.shape == (1, len(m.term_names_))
    with pytest.raises(wb.WhyboxError, match="class_index="):
        g.plot(0)
    g.plot(0, class_index=1)
    g.plot(len(m.bins_), class_index=4)  # a pair


@pytest.mark.parametrize("tr", [False, True])
@pytest.mark.parametrize("cuts", [(2, 1, -1), (1, -1, 3)])
def test_pair_leaf_steps_are_the_newton_steps_of_the_four_cells(tr, cuts):
    # the tree "first feature cut at i, then the second at jl / jr": each leaf's class step
    # is -lr * G / (H + lam) over its cells (numpy sums), added to every cell of the leaf,
    # and rows find their leaf from their two codes
    from whybox.glassbox._ebm_multi_pairs import _leaf, _pair_fill, _pair_leaves_sat

    rng = np.random.default_rng(3)
    na, nb, k, lr, lam = 5, 7, 3, 0.3, 0.5
    HG = rng.normal(size=(na, nb, k))
    HH = rng.uniform(0.1, 1.0, size=(na, nb, k))
    i, jl, jr = cuts  # in the tree's orientation (first, second)
    A, Bc = np.meshgrid(np.arange(na), np.arange(nb), indexing="ij")
    x, y = (Bc, A) if tr else (A, Bc)
    leaf = np.where(x <= i, (y > jl).astype(int) * (jl >= 0), 2 + (y > jr) * (jr >= 0))
    steps = np.stack([-lr * HG[leaf == q].sum(0) / (HH[leaf == q].sum(0) + lam) for q in range(4)])
    sc = np.zeros((na, nb, k))
    V = np.zeros((10, k))
    sizes = (nb, na) if tr else (na, nb)
    _pair_fill(HG, HH, *sizes, tr, i, jl, jr, lam, lr, sc, V)
    np.testing.assert_allclose(sc, steps[leaf], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(V[4:8], np.exp(steps), rtol=1e-12)
    got = np.array([[_leaf(a, b, tr, i, jl, jr) for b in range(nb)] for a in range(na)])
    np.testing.assert_array_equal(got, leaf)
    # the same steps from summed-area tables (numpy cumulative sums), as after a cut search
    sat = np.stack([HG, HH]).cumsum(1).cumsum(2).transpose(0, 3, 1, 2).copy()
    W = np.zeros((10, k))
    _pair_leaves_sat(sat, na, nb, tr, i, jl, jr, lam, lr, W)
    np.testing.assert_allclose(W[:4], steps, rtol=1e-10, atol=1e-14)


def test_pair_scores_replayed_from_the_step_log_give_the_boosted_scores():
    # the pair kernel logs its steps and rebuilds the per-cell scores at the end (its log
    # grows past its first capacity here); the scores must reproduce the training scores it
    # boosted row by row
    from whybox.glassbox._ebm_multi_pairs import boost_pairs_multi

    rng = np.random.default_rng(0)
    n, k = 300, 3
    P = rng.integers(0, 6, size=(n, 3)).astype(np.uint16)
    y = rng.integers(0, k, size=n).astype(np.int64)
    F0 = rng.normal(size=(n, k))
    F = F0.copy()
    pairs = np.array([[0, 1], [0, 2], [1, 2]], dtype=np.int64)
    nbins = np.array([6, 6, 6], dtype=np.int64)
    Pva, yva, Fva = P[:0], y[:0], np.zeros((0, k))
    sc, rounds = boost_pairs_multi(P, y, Pva, yva, F, Fva, pairs, nbins, 0.1, 4.0, 1e-4, 0.0,
                                   60, 0, 1e-5, 3, 7, np.ones(n), np.ones(0))  # fmt: skip
    assert rounds == 60
    rebuilt = F0 + sum(sc[t, P[:, a], P[:, b]] for t, (a, b) in enumerate(pairs))
    np.testing.assert_allclose(rebuilt, F, rtol=0, atol=1e-12)


def test_pair_boosting_ignores_interaction_bins_without_training_rows():
    # the pair kernel searches its cuts on the bins that hold training rows; a bin no training
    # row falls in must change nothing: relabelling the codes with an empty bin inserted (and
    # one appended) gives the same steps, so the same scores on every occupied cell (no
    # smoothing rounds: their random cuts are drawn over all bins). Oracle: the fit on the
    # original codes.
    from whybox.glassbox._ebm_multi_pairs import boost_pairs_multi

    rng = np.random.default_rng(3)
    n, k = 240, 3
    P = rng.integers(0, 5, size=(n, 3)).astype(np.uint16)
    y = rng.integers(0, k, size=n).astype(np.int64)
    F0 = rng.normal(size=(n, k))
    pairs = np.array([[0, 1], [0, 2], [1, 2]], dtype=np.int64)
    Q = P.copy()
    Q[Q >= 2] += 1  # bin 2 of every feature left empty, bin 6 unused
    out = []
    for codes, nb in ((P, 5), (Q, 7)):
        F = F0.copy()
        sc, rounds = boost_pairs_multi(codes, y, codes[:0], y[:0], F, np.zeros((0, k)), pairs,
                                       np.full(3, nb, dtype=np.int64), 0.1, 4.0, 1e-4, 0.0, 25,
                                       0, 1e-5, 0, 11, np.ones(n), np.ones(0))  # fmt: skip
        assert rounds == 25
        out.append((sc, F))
    keep = np.array([0, 1, 3, 4, 5])  # the relabelled codes of bins 0..4
    # the rows' scores step by step: the same to the bit; the per-cell scores are rebuilt from
    # the step log on grids of different sizes (sums in another order: to rounding)
    np.testing.assert_array_equal(out[1][1], out[0][1])
    for t in range(3):
        got = out[1][0][t][np.ix_(keep, keep)]
        np.testing.assert_allclose(got, out[0][0][t][:5, :5], rtol=0, atol=1e-13)
