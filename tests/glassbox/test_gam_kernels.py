"""The EBM's numba kernels against brute-force numpy enumerations, and against interpret.

* FAST pair strengths = the best 2x2-cut gain found by enumerating every cut with boolean
  masks;
* the pair tree = the best of all "one cut on a, then one (or no) cut on b per side" trees,
  both orientations, enumerated;
* the greedy multi-leaf tree on one feature reaches the gain of the best two-cut partition
  when max_leaves=3 allows it;
* interpret's EBM with the same small settings reaches the same test AUC (within 0.01).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from whybox.glassbox._ebm_boost import (
    SQUARED,
    _best_pair_cut,
    _fit_tree,
    _pair_cut_work,
    boost_pairs,
)
from whybox.glassbox._ebm_fast import fast_pair_gains, rank_pairs


def _score(g, h, lam=0.0):
    return g * g / (h + lam)


def _brute_fast(a, b, g, h, na, nb, min_leaf, lam):
    best = 0.0
    total = _score(g.sum(), h.sum(), lam)
    for i in range(na - 1):
        for j in range(nb - 1):
            quads = [
                (a <= i) & (b <= j),
                (a <= i) & (b > j),
                (a > i) & (b <= j),
                (a > i) & (b > j),
            ]
            if min(q.sum() for q in quads) < min_leaf:
                continue
            gain = sum(_score(g[q].sum(), h[q].sum(), lam) for q in quads) - total
            best = max(best, gain)
    return best


def test_fast_gains_equal_brute_force():
    rng = np.random.default_rng(0)
    n = 300
    nbins = np.array([6, 5, 8])
    P = np.asfortranarray(np.column_stack([rng.integers(0, k, n) for k in nbins]).astype(np.uint16))
    g = rng.normal(size=n) + (P[:, 0] > 2) * (P[:, 2] < 4)
    h = rng.uniform(0.1, 0.3, n)
    pairs = np.array(list(itertools.combinations(range(3), 2)), dtype=np.int64)
    for min_leaf in (5, 45):  # the larger one rules out many cuts
        got = fast_pair_gains(P, g, h, pairs, nbins, float(min_leaf), 0.0, 0.5)
        want = [
            _brute_fast(
                P[:, fa].astype(int),
                P[:, fb].astype(int),
                g,
                h,
                nbins[fa],
                nbins[fb],
                min_leaf,
                0.5,
            )
            for fa, fb in pairs
        ]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        assert got.min() > 0


def test_rank_pairs_takes_best_mean_rank_with_ties_in_pair_order():
    pairs = np.array([[0, 1], [0, 2], [1, 2], [1, 3]])
    gains = [np.array([1.0, 5.0, 3.0, 0.0]), np.array([4.0, 2.0, 3.0, 0.0])]
    # ranks: bag 0 -> [2, 0, 1, 3], bag 1 -> [0, 2, 1, 3]; means [1, 1, 1, 3]
    np.testing.assert_array_equal(rank_pairs(gains, pairs, 2), [[0, 1], [0, 2]])
    np.testing.assert_array_equal(rank_pairs(gains, pairs, 9), pairs[[0, 1, 2, 3]])


def _brute_pair_tree(GG, HH, CC, min_leaf, lam):
    """Best gain over all trees: cut the first feature, then each side by the other (or not)."""
    total = _score(GG.sum(), HH.sum(), lam)
    best = 0.0
    na, nb = GG.shape
    for i in range(na - 1):
        sides = []
        ok = True
        for rows in (slice(0, i + 1), slice(i + 1, na)):
            g, h, c = GG[rows].sum(0), HH[rows].sum(0), CC[rows].sum(0)
            if c.sum() < min_leaf:
                ok = False
                break
            side = _score(g.sum(), h.sum(), lam)
            for j in range(nb - 1):
                cl, cr = c[: j + 1].sum(), c[j + 1 :].sum()
                if cl >= min_leaf and cr >= min_leaf:
                    v = _score(g[: j + 1].sum(), h[: j + 1].sum(), lam) + _score(
                        g[j + 1 :].sum(), h[j + 1 :].sum(), lam
                    )
                    side = max(side, v)
            sides.append(side)
        if ok:
            best = max(best, sides[0] + sides[1] - total)
    return best


@pytest.mark.parametrize("shape", [(7, 6), (33, 54)])  # cut by cut; all cuts at once
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_pair_tree_search_equals_enumeration(seed, shape):
    rng = np.random.default_rng(seed)
    na, nb = shape
    C = rng.integers(0, 4, (na, nb)).astype(float)
    G = rng.normal(size=(na, nb)) * C
    H = rng.uniform(0.5, 1.0, (na, nb)) * C
    m = max(na, nb)
    hist = np.zeros((m, m, 3))
    hist[:na, :nb] = np.stack([G, H, C], axis=-1)
    work = _pair_cut_work(m)
    leaves = np.zeros(8)
    ga, *_ = _best_pair_cut(hist, na, nb, False, 3.0, 0.0, 0.1, *work, leaves)
    gb, *_ = _best_pair_cut(hist, nb, na, True, 3.0, 0.0, 0.1, *work, leaves)
    np.testing.assert_allclose(ga, _brute_pair_tree(G, H, C, 3, 0.1), rtol=1e-12)
    np.testing.assert_allclose(gb, _brute_pair_tree(G.T, H.T, C.T, 3, 0.1), rtol=1e-12)


def _best_tree_fit(a, b, y, na, nb, min_leaf):
    """Fitted values of the least-squares pair tree, by enumerating every tree."""
    best_sse, best_fit = np.inf, None
    for first, second, n1, n2 in ((a, b, na, nb), (b, a, nb, na)):
        for i in range(n1 - 1):
            fit = np.empty_like(y)
            sse = 0.0
            ok = True
            for side in (first <= i, first > i):
                if side.sum() < min_leaf:
                    ok = False
                    break
                options = [(side,)]
                for j in range(n2 - 1):
                    lo, hi = side & (second <= j), side & (second > j)
                    if lo.sum() >= min_leaf and hi.sum() >= min_leaf:
                        options.append((lo, hi))
                err = [sum(((y[m] - y[m].mean()) ** 2).sum() for m in leaves) for leaves in options]
                for m in options[int(np.argmin(err))]:
                    fit[m] = y[m].mean()
                sse += min(err)
            if ok and sse < best_sse - 1e-9:
                best_sse, best_fit = sse, fit
    return best_fit


@pytest.mark.parametrize("seed", range(6))
def test_one_pair_step_fits_the_best_tree_in_either_orientation(seed):
    rng = np.random.default_rng(seed)
    n, na, nb = 240, 4, 5
    P = np.asfortranarray(np.column_stack([rng.integers(0, na, n), rng.integers(0, nb, n)]))
    P = P.astype(np.uint16)
    y = rng.normal(size=n) + 2.0 * (P[:, seed % 2] > 1) * (P[:, 1 - seed % 2] > 2)
    F = np.zeros(n)
    empty = np.zeros((0, 2), dtype=np.uint16)
    boost_pairs(
        P, y, empty, np.zeros(0), F, np.zeros(0), np.array([[0, 1]]), np.array([na, nb]),
        SQUARED, 1.0, 10.0, 0.0, 0.0, 1, 0, 0.0, 0, 1,
    )  # fmt: skip
    want = _best_tree_fit(P[:, 0].astype(int), P[:, 1].astype(int), y, na, nb, 10)
    np.testing.assert_allclose(F, want, atol=1e-10)


def test_three_leaf_tree_finds_the_best_two_cut_partition_when_greedy_agrees():
    # a step up then down: the best single cut is followed by the best cut of one side
    G = np.array([0.0, 4.0, 4.0, -6.0, -6.0, 3.0, 3.0, 0.0])
    H = np.array([0.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 0.0])
    C = np.array([0.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 0.0])
    order = np.arange(1, 7)
    delta = np.zeros(8)
    seg = [np.zeros(4, dtype=np.int64) for _ in range(3)] + [np.zeros(4)]
    state = np.array([1], dtype=np.uint64)
    _fit_tree(G, H, C, order, 6, 3, 1.0, 0.0, 0.0, 1.0, False, state, delta, *seg)
    # leaves {1,2}, {3,4}, {5,6}: Newton steps -G/H
    np.testing.assert_allclose(delta, [0.0, -2.0, -2.0, 3.0, 3.0, -1.5, -1.5, 0.0])


def test_test_auc_matches_interpret_with_the_same_small_settings():
    interpret = pytest.importorskip("interpret.glassbox")
    from sklearn.datasets import load_breast_cancer
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    from whybox.glassbox import ExplainableBoostingClassifier

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0)
    kw = dict(outer_bags=2, interactions=0)
    ours = ExplainableBoostingClassifier(**kw, n_jobs=1).fit(X_tr, y_tr)
    ref = interpret.ExplainableBoostingClassifier(**kw, n_jobs=1).fit(X_tr, y_tr)
    auc = roc_auc_score(y_te, ours.predict_proba(X_te)[:, 1])
    auc_ref = roc_auc_score(y_te, ref.predict_proba(X_te)[:, 1])
    assert abs(auc - auc_ref) <= 0.01
    # the same terms, and shape functions that agree in sign where both are clearly non-zero
    assert ours.term_names_ == list(ref.term_names_)
    j = list(X.columns).index("worst concave points")
    a, b = ours.term_scores_[j][1:-1], np.asarray(ref.term_scores_[j])[1:-1]
    strong = (np.abs(a) > 0.3) & (np.abs(b) > 0.3)
    assert strong.sum() > 10 and (np.sign(a[strong]) == np.sign(b[strong])).all()
