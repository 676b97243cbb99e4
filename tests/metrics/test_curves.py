"""Deletion / insertion curves: Quantus's PixelFlipping, closed forms, any Game, errors."""

from __future__ import annotations

import numpy as np
import pytest

import whybox as wb
from tests.oracles import import_without_torchvision
from whybox import metrics
from whybox.errors import InvalidInputError, InvalidParameterError

from .conftest import W


def test_deletion_matches_quantus_pixel_flipping(torch_case):
    quantus = import_without_torchvision("quantus")
    model, X, A = torch_case
    y = np.ones(len(X), dtype=int)
    ref = quantus.PixelFlipping(perturb_baseline=0.0, normalise=False, disable_warnings=True)(
        model=model,
        x_batch=X[:, None, :],
        y_batch=y,
        a_batch=A[:, None, :],
        device="cpu",
        softmax=False,
    )
    ref = np.asarray(ref)  # (n, p): the output after each removal, most relevant first
    curve = metrics.deletion(A, model, X, background=wb.Baseline(0.0), target=1, by="value")
    assert curve.values.shape == (8, 7)
    np.testing.assert_allclose(curve.values[:, 1:], ref, rtol=1e-5, atol=1e-6)
    # Quantus's AUC (utils.calculate_auc: np.trapz over the removal steps, dx=1) cannot run
    # here (np.trapz is gone in numpy 2.4), so it is recomputed from Quantus's own curve; ours
    # is over [0, 1] from the unperturbed point: the same trapezoids plus the first, over p
    q_auc = np.trapezoid(ref, dx=1.0, axis=1)
    first = (curve.values[:, 0] + curve.values[:, 1]) / 2
    np.testing.assert_allclose(curve.auc, (q_auc + first) / 6, rtol=1e-5, atol=1e-6)


def test_linear_model_curves_closed_form(linear_case):
    model, rows, bg, exp, _ = linear_case
    w, mu = model.coef_, bg.to_numpy().mean(axis=0)
    x = rows.to_numpy()
    phi = w * (x - mu)  # the exact interventional Shapley values, by hand
    f = x @ w + model.intercept_
    # by="prediction": the features that moved f(x) away from the base first
    order = np.argsort(-phi * np.sign(phi.sum(axis=1))[:, None], axis=1, kind="stable")
    removed = np.cumsum(np.take_along_axis(phi, order, axis=1), axis=1)
    expect_del = np.column_stack([f, f[:, None] - removed])
    dele = metrics.deletion(exp, model, rows, background=bg)
    np.testing.assert_allclose(dele.fractions, np.arange(7) / 6)
    np.testing.assert_allclose(dele.values, expect_del, atol=1e-10)
    base = f - phi.sum(axis=1)
    expect_ins = np.column_stack([base, base[:, None] + removed])
    ins = metrics.insertion(exp, model, rows, background=bg)
    np.testing.assert_allclose(ins.values, expect_ins, atol=1e-10)
    np.testing.assert_allclose(ins.full, f, atol=1e-10)
    np.testing.assert_allclose(ins.empty, base, atol=1e-10)
    # trapezoid AUC over [0, 1] and the normalised curve, by hand
    np.testing.assert_allclose(dele.auc, np.trapezoid(expect_del, dx=1 / 6, axis=1), atol=1e-10)
    norm = (expect_del - base[:, None]) / (f - base)[:, None]
    np.testing.assert_allclose(dele.normalized_values, norm, atol=1e-10)
    np.testing.assert_allclose(dele.normalized_auc, np.trapezoid(norm, dx=1 / 6, axis=1))
    # pooled over rows: the deviations from the base, oriented, over the sum of |f - base|
    pooled = ((expect_del - base[:, None]) * np.sign(f - base)[:, None]).sum(0) / np.abs(
        f - base
    ).sum()
    np.testing.assert_allclose(dele.pooled_normalized_values, pooled, atol=1e-12)
    assert dele.pooled_normalized_auc == pytest.approx(np.trapezoid(pooled, dx=1 / 6))
    # by signed value, and by magnitude
    o_val = np.argsort(-phi, axis=1, kind="stable")
    rem_val = np.cumsum(np.take_along_axis(phi, o_val, axis=1), axis=1)
    d_val = metrics.deletion(exp, model, rows, background=bg, by="value")
    np.testing.assert_allclose(d_val.values[:, 1:], f[:, None] - rem_val, atol=1e-10)
    o_abs = np.argsort(-np.abs(phi), axis=1, kind="stable")
    rem_abs = np.cumsum(np.take_along_axis(phi, o_abs, axis=1), axis=1)
    d_abs = metrics.deletion(exp, model, rows, background=bg, by="abs")
    np.testing.assert_allclose(d_abs.values[:, 1:], f[:, None] - rem_abs, atol=1e-10)


def test_exact_shapley_ranks_above_random(linear_case):
    model, rows, bg, exp, rnd = linear_case
    good_d = metrics.deletion(exp, model, rows, background=bg).normalized_auc
    bad_d = metrics.deletion(rnd, model, rows, background=bg).normalized_auc
    good_i = metrics.insertion(exp, model, rows, background=bg).normalized_auc
    bad_i = metrics.insertion(rnd, model, rows, background=bg).normalized_auc
    assert good_d.mean() < bad_d.mean() - 0.2
    assert good_i.mean() > bad_i.mean() + 0.2
    assert good_d.max() < 0.5 < good_i.min()  # better than a random ranking on every row
    # the optimal ranking of an additive game is optimal on every row
    assert np.all(good_d <= bad_d + 1e-12) and np.all(good_i >= bad_i - 1e-12)


class _SquareGame:
    """v(S) = (sum_{j in S} c_j)^2: not additive, values known by hand."""

    def __init__(self, c):
        self.c = np.asarray(c, float)
        self.n_players = len(c)
        self.player_names = [f"p{j}" for j in range(len(c))]

    def value(self, S):
        return (np.asarray(S, float) @ self.c) ** 2


def test_core_on_any_game_and_steps():
    g = _SquareGame([1.0, 2.0, 3.0, 4.0])
    order = np.array([3, 1, 0, 2])
    d = metrics.deletion_curve(g, order)
    np.testing.assert_allclose(d.values[0], [100, 36, 16, 9, 0])
    i = metrics.insertion_curve(g, order)
    np.testing.assert_allclose(i.values[0], [0, 16, 36, 49, 100])
    two = metrics.deletion_curve([g, g], np.stack([order, order[::-1]]), n_steps=2)
    np.testing.assert_allclose(two.fractions, [0, 0.5, 1])
    np.testing.assert_allclose(two.values, [[100, 16, 0], [100, 36, 0]])
    assert not d.higher_is_better and i.higher_is_better


def test_flat_rows_have_no_normalised_curve():
    g = _SquareGame([1.0, -1.0])  # v(full) = v(empty) = 0
    c = metrics.deletion_curve(g, np.array([0, 1]))
    assert np.isnan(c.normalized_auc[0]) and np.isfinite(c.auc[0])


def test_batch_independent_and_dataframe_kept(linear_case):
    model, rows, bg, exp, _ = linear_case
    whole = metrics.deletion(exp, model, rows, background=bg)
    part = metrics.deletion(exp[3:5], model, rows.iloc[3:5], background=bg)
    # LinearRegression.predict goes through BLAS on batches of 30 rows vs 2: equal to rounding
    # (bit-equal only where the BLAS kernel rounds a row the same in any batch)
    np.testing.assert_allclose(whole.values[3:5], part.values, rtol=1e-12, atol=1e-12)


def test_plot_draws_the_mean_curve(linear_case):
    import matplotlib

    matplotlib.use("Agg")
    model, rows, bg, exp, _ = linear_case
    c = metrics.deletion(exp, model, rows, background=bg)
    ax = c.plot()
    summary = ax.get_lines()[-1].get_ydata()
    np.testing.assert_allclose(summary, c.pooled_normalized_values)
    assert len(ax.get_lines()) == 31
    raw = c.plot(normalized=False, rows=[0, 1])
    np.testing.assert_allclose(raw.get_lines()[-1].get_ydata(), c.values[:2].mean(axis=0))


def test_errors(linear_case):
    model, rows, bg, exp, _ = linear_case
    g = _SquareGame([1.0, 2.0, 3.0])
    with pytest.raises(InvalidParameterError, match=r"permutation of 0\.\.2"):
        metrics.deletion_curve(g, np.array([0, 0, 1]))
    with pytest.raises(InvalidParameterError, match=r"integer array of shape \(3,\)"):
        metrics.deletion_curve(g, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(InvalidParameterError, match="2 rankings for 1 games"):
        metrics.deletion_curve([g], np.array([[0, 1, 2], [2, 1, 0]]))
    with pytest.raises(InvalidParameterError, match="n_steps must be at least 1"):
        metrics.deletion_curve(g, np.array([0, 1, 2]), n_steps=0)
    with pytest.raises(InvalidInputError, match="X has 29 rows but the explanation has 30"):
        metrics.deletion(exp, model, rows.iloc[1:], background=bg)
    with pytest.raises(InvalidParameterError, match=r"do not reproduce exp\.predictions"):
        metrics.deletion(exp, lambda Z: np.zeros(len(Z)), rows, background=bg)
    with pytest.raises(
        InvalidParameterError, match=r"by='rank' is not supported\. Expected one of: 'prediction'"
    ):
        metrics.deletion(exp, model, rows, background=bg, by="rank")
    with pytest.raises(InvalidInputError, match="6 attributions per row but X has 5"):
        metrics.deletion(
            exp.values, lambda Z: Z.sum(axis=1), rows.iloc[:, :5].to_numpy(), background=0.0
        )
    nan = exp.values.copy()
    nan[0, 0] = np.nan
    with pytest.raises(InvalidInputError, match="NaN or infinite attributions in 1 row"):
        metrics.deletion(nan, model, rows, background=bg)


def test_multi_output_needs_target():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = np.digitize(X[:, 0], [-0.5, 0.5])
    model = LogisticRegression().fit(X, y)
    exp = wb.ExactShap(model, background=X[:20]).explain(X[:4])
    # an explanation of every class is scored for each row's predicted class
    pred = metrics.deletion(exp, model, X[:4], background=X[:20])
    proba = model.predict_proba(X[:4])
    np.testing.assert_allclose(pred.values[:, 0], proba.max(axis=1))
    with pytest.raises(InvalidParameterError, match="explains 3 outputs"):
        metrics.deletion(exp[:, :, [0, 1, 2]]._replace(params={}), model, X[:4], background=X[:20])
    c = metrics.deletion(exp, model, X[:4], background=X[:20], target=2)
    np.testing.assert_allclose(c.values[:, 0], model.predict_proba(X[:4])[:, 2])
    assert W.shape == (6,)


def test_core_on_an_image_game():
    from whybox.games.image import ImageGame, ImageMasker

    rng = np.random.default_rng(0)
    image, weights = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    segments = np.repeat(np.repeat(np.arange(4).reshape(2, 2), 2, axis=0), 2, axis=1)
    game = ImageGame(
        lambda ims: np.asarray(ims).reshape(len(ims), -1) @ weights.ravel(),
        image,
        ImageMasker(segments=segments, fill="baseline", value=0.0, channels="none"),
    )
    order = np.array([2, 0, 3, 1])
    # a linear model on a zero baseline: each removed segment takes away its own w * x
    share = np.array([(weights * image)[segments == j].sum() for j in range(4)])
    expect = share.sum() - np.cumsum(np.r_[0.0, share[order]])
    np.testing.assert_allclose(metrics.deletion_curve(game, order).values[0], expect)
    np.testing.assert_allclose(
        metrics.insertion_curve(game, order).values[0], np.cumsum(np.r_[0.0, share[order]])
    )


def test_broken_rankings_fail_the_checks(linear_case):
    """The closed-form and good-vs-random checks above are not vacuous: a curve built from the
    reversed ranking (least important first) fails both."""
    model, rows, bg, exp, _ = linear_case
    good = metrics.deletion(exp, model, rows, background=bg)
    s_games = [
        wb.TabularGame(wb.wrap_model(model), rows.iloc[[i]], wb.Independent(bg)) for i in range(30)
    ]
    phi = exp.values
    order = np.argsort(-phi * np.sign(phi.sum(axis=1))[:, None], axis=1, kind="stable")
    broken = metrics.deletion_curve(s_games, order[:, ::-1])
    assert not np.allclose(broken.values, good.values)
    assert broken.normalized_auc.mean() > 0.5 > good.normalized_auc.mean()
    np.testing.assert_allclose(metrics.deletion_curve(s_games, order).values, good.values)


def test_image_explanations_through_an_image_masker():
    from whybox.games.image import ImageMasker

    rng = np.random.default_rng(1)
    images = rng.normal(size=(3, 3, 4, 4))  # channels first
    weights = rng.normal(size=(3, 4, 4))

    def model(ims):
        return np.asarray(ims).reshape(len(ims), -1) @ weights.ravel()

    pixel_values = weights[None] * images  # exact Shapley values against a black baseline
    exp = wb.Explanation(pixel_values, np.zeros(3), data=images, predictions=model(images))
    seg = np.repeat(np.repeat(np.arange(4).reshape(2, 2), 2, axis=0), 2, axis=1)
    masker = ImageMasker(segments=seg, fill="baseline", value=0.0, channels="first")
    curve = metrics.deletion(exp, model, images, background=masker)
    share = np.stack([[pixel_values[i][:, seg == j].sum() for j in range(4)] for i in range(3)])
    order = np.argsort(-share * np.sign(share.sum(1))[:, None], axis=1, kind="stable")
    removed = np.cumsum(np.take_along_axis(share, order, axis=1), axis=1)
    f = model(images)
    np.testing.assert_allclose(curve.values, np.column_stack([f, f[:, None] - removed]), atol=1e-12)
    np.testing.assert_allclose(
        curve.pooled_normalized_auc,
        np.trapezoid(
            (np.column_stack([f, f[:, None] - removed]) * np.sign(f)[:, None]).sum(0)
            / np.abs(f).sum(),
            dx=0.25,
        ),
    )
    # one value per segment is accepted as it is; faithfulness correlation is exact
    seg_exp = wb.Explanation(share, np.zeros(3), data=images, predictions=f)
    np.testing.assert_allclose(
        metrics.deletion(seg_exp, model, images, background=masker).values, curve.values
    )
    fc = metrics.faithfulness_correlation(exp, model, images, background=masker, subset_size=2)
    np.testing.assert_allclose(fc, 1.0, atol=1e-12)
    with pytest.raises(InvalidInputError, match=r"attributions of shape \(5,\)"):
        metrics.deletion(np.zeros((3, 5)), model, images, background=masker)
    with pytest.raises(InvalidParameterError, match=r"do not reproduce exp\.predictions"):
        metrics.deletion(exp, lambda ims: -model(ims), images, background=masker)


def test_images_with_different_numbers_of_segments():
    from whybox.games.image import ImageMasker

    rng = np.random.default_rng(2)
    images = rng.normal(size=(2, 4, 4))
    weights = rng.normal(size=(4, 4))

    def model(ims):
        return np.asarray(ims).reshape(len(ims), -1) @ weights.ravel()

    four = np.repeat(np.repeat(np.arange(4).reshape(2, 2), 2, axis=0), 2, axis=1)
    two = np.repeat(np.arange(2), 8).reshape(4, 4)  # top half, bottom half
    masker = ImageMasker(segments=np.stack([four, two]), fill="baseline", channels="none")
    values = weights[None] * images
    with pytest.raises(InvalidParameterError, match="pass n_steps="):
        metrics.deletion(values, model, images, background=masker, by="value")
    curve = metrics.deletion(values, model, images, background=masker, by="value", n_steps=4)
    np.testing.assert_allclose(curve.fractions, [0, 0.25, 0.5, 0.75, 1])
    share = np.array([values[1][two == j].sum() for j in range(2)])
    first = np.argmax(share)
    f = model(images[1:])[0]
    at = [f, f - share[first], 0.0]  # after 0, 1 and 2 of the 2 segments
    expect = [at[0], (at[0] + at[1]) / 2, at[1], (at[1] + at[2]) / 2, at[2]]  # linear between
    np.testing.assert_allclose(curve.values[1], expect, atol=1e-12)
    assert curve.meta["n_players"] == [4, 2]
