"""
Model-agnostic Shapley values: exact, kernel, permutation and LIME against the budget
=====================================================================================

When the model is a black box (no trees, no gradients), Shapley values are computed from
model calls on coalitions of features: a removed feature takes the values of background rows
(the interventional game of :class:`whybox.TabularGame`). With ten features the
:math:`2^{10} = 1024` coalitions can all be evaluated, so :class:`whybox.ExactShap` gives
the ground truth, and we can measure how far :class:`whybox.KernelShap` and
:class:`whybox.PermutationShap` are from it for a given budget, whether their standard
errors (``exp.std``) tell the truth about that error, and what :class:`whybox.Lime` returns
instead.
"""

# %%
# A black-box model
# -----------------
# A small neural network on scikit-learn's diabetes data: ten features, no trees for TreeSHAP
# to read, and we do not use its gradients. The background is 30 training rows; every
# coalition value averages the model over them.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.compose import TransformedTargetRegressor
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import whybox as wb

X, y = wb.zoo.diabetes()
net = MLPRegressor(
    hidden_layer_sizes=(32,), solver="lbfgs", alpha=3.0, max_iter=3000, random_state=0
)
model = TransformedTargetRegressor(
    make_pipeline(StandardScaler(), net), transformer=StandardScaler()
)
model.fit(X.iloc[:350], y[:350])
background = X.iloc[:350].sample(30, random_state=0)
rows = X.iloc[350:360]  # ten held-out patients to explain
print(f"held-out R^2: {model.score(X.iloc[350:], y[350:]):.2f}")

# %%
# The exact values
# ----------------
# ``ExactShap`` evaluates all 1024 coalitions, each on the 30 background rows: 30 720 model
# rows per explained row. The values add up to the prediction minus the mean prediction over
# the background (efficiency), to rounding.
exact = wb.ExactShap(model, background=background).explain(rows)
print("coalitions per row:", exact.n_evals)
print(f"largest completeness gap: {np.abs(exact.completeness_gap()).max():.1e}")
exact.plot.bar()
plt.tight_layout()

# %%
# Error against the budget
# ------------------------
# ``budget`` is the number of coalitions evaluated per row (times the background rows in
# model calls). For each budget we run KernelSHAP and permutation sampling, measure the
# root-mean-square error against the exact values over all rows and features, and average
# the standard errors the estimators report. Four seeds per budget show the spread.
budgets = [40, 80, 160, 320, 640]
seeds = range(4)
results = {}
for name, cls in [("KernelShap", wb.KernelShap), ("PermutationShap", wb.PermutationShap)]:
    rmse, reported, covered = [], [], []
    for budget in budgets:
        errs, stds, cover = [], [], []
        for seed in seeds:
            est = cls(model, background=background, random_state=seed).explain(rows, budget=budget)
            diff = est.values - exact.values
            errs.append(np.sqrt(np.mean(diff**2)))
            stds.append(np.sqrt(np.mean(est.std**2)))
            cover.append(np.mean(np.abs(diff) <= 1.96 * est.std))
        rmse.append(errs)
        reported.append(np.mean(stds))
        covered.append(np.mean(cover))
    results[name] = (np.array(rmse), np.array(reported), np.array(covered))

fig, ax = plt.subplots(figsize=(7, 4.5))
for (name, (rmse, reported, _)), colour in zip(results.items(), ["C0", "C1"], strict=True):
    ax.errorbar(
        budgets,
        rmse.mean(1),
        yerr=rmse.std(1),
        color=colour,
        marker="o",
        capsize=3,
        label=f"{name}: actual RMSE (mean +- sd over 4 seeds)",
    )
    ax.plot(budgets, reported, color=colour, linestyle="--", label=f"{name}: reported std")
first = results["PermutationShap"][0].mean(1)[0]
ax.plot(
    budgets,
    first * np.sqrt(budgets[0] / np.array(budgets)),
    color="grey",
    linewidth=0.8,
    label="1 / sqrt(budget)",
)
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xlabel("budget (coalitions per row)")
ax.set_ylabel("error in units of the prediction")
ax.set_title(f"10 rows x 10 features; exact needs {2**10} coalitions")
ax.legend(fontsize=7)
fig.tight_layout()

# %%
# Both errors fall roughly like :math:`1/\sqrt{\text{budget}}`, the Monte Carlo rate, and
# KernelSHAP (paired, leverage-score sampling with exact efficiency) is the more accurate per
# coalition on this model. Its error collapses as the budget nears :math:`2^{10}`: the
# coalition sizes with few coalitions are then enumerated exactly instead of sampled. The
# dashed lines are what each estimator *says* its error is; they track the actual error, so
# ``exp.std`` can be used to choose a budget or to stop early (``explain(X,
# tolerance=...)``). The fraction of values within 1.96 reported standard errors of the
# exact value should be near 95 %: it is close from a few hundred coalitions on, and lower at
# the smallest budgets, where the standard errors are themselves estimated from few samples.
table = {"budget": budgets}
for name, (rmse, _, covered) in results.items():
    table[f"{name} RMSE"] = rmse.mean(1).round(3)
    table[f"{name} coverage"] = covered.round(2)
print("mean |exact value|:", round(float(np.abs(exact.values).mean()), 2))
pd.DataFrame(table)

# %%
# One row, with error bars
# ------------------------
# At a small budget, the standard errors say which values can be trusted. Here 128
# coalitions per row: bars are the estimates with +-1.96 reported standard errors, dots the
# exact values.
est = wb.KernelShap(model, background=background, random_state=0).explain(rows, budget=128)
i = 0
order = np.argsort(np.abs(exact.values[i]))
names = np.array(exact.feature_names)[order]
fig, ax = plt.subplots(figsize=(6.5, 4))
ax.barh(
    names,
    est.values[i, order],
    xerr=1.96 * est.std[i, order],
    color="#008bfb",
    capsize=3,
    label="KernelShap, budget 128",
)
ax.scatter(exact.values[i, order], names, color="k", zorder=3, label="exact")
ax.axvline(0, color="grey", linewidth=0.6)
ax.set_xlabel("Shapley value (disease progression)")
ax.legend(fontsize=8)
fig.tight_layout()

# %%
# LIME answers a different question
# ---------------------------------
# LIME fits a weighted linear surrogate on a binary representation of each row (is feature
# *j* in the same quartile as the row's?). Its weights are slopes of that surrogate, not
# contributions: they do not add up to the prediction, and more samples make them converge to
# the surrogate's weights, not to the Shapley values. Compared with the exact values, the
# signs and the ranking of the big features mostly agree, the magnitudes do not.
lime = wb.Lime(model, background=X.iloc[:350], feature_selection="none", random_state=0)
lime_exp = lime.explain(rows, budget=2000)
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
axes[0].scatter(exact.values.ravel(), lime_exp.values.ravel(), s=10)
axes[0].axhline(0, color="grey", linewidth=0.6)
axes[0].axvline(0, color="grey", linewidth=0.6)
axes[0].set_xlabel("exact Shapley value")
axes[0].set_ylabel("LIME weight")
axes[0].set_title("10 rows x 10 features")
sums = lime_exp.base_values + lime_exp.values.sum(axis=1)
axes[1].scatter(exact.predictions, sums, s=14)
axes[1].plot(axes[1].get_xlim(), axes[1].get_xlim(), color="grey", linewidth=0.8)
axes[1].set_xlabel("model prediction")
axes[1].set_ylabel("LIME intercept + sum of weights")
axes[1].set_title("no completeness")
fig.tight_layout()
same_sign = np.mean(np.sign(lime_exp.values) == np.sign(exact.values))
print(f"sign agreement with the exact values: {same_sign:.2f}")
print(f"median surrogate fidelity (weighted R^2): {np.median(lime_exp.meta['fidelity']):.2f}")

# %%
# What to pick
# ------------
# * **Trees or linear models**: none of these. :class:`whybox.TreeShap` and
#   :class:`whybox.LinearShap` are exact and much faster.
# * **Up to about 16 features** (or ``groups=`` that bring the players down to that):
#   ``ExactShap``. Its cost is :math:`2^p` coalitions, known in advance, and it has no error.
#   Here ``ExactShap`` used 1024 coalitions per row; KernelSHAP's error at a quarter of
#   that was already a small fraction of the values' scale (table above).
# * **More features**: ``KernelShap`` with a budget, reading ``exp.std``; raise the budget
#   (or pass ``tolerance=``) until the standard errors are small next to the values you
#   report. ``PermutationShap`` is the alternative when you need efficiency to hold exactly
#   for every sample size and an unbiased estimate; it needed more coalitions here for the
#   same error.
# * **LIME** when you want a sparse local rule, not contributions; check its fidelity.
#
# How whybox's estimators compare with shap's on speed and error is measured in the
# benchmarks: ``bench_exact`` and ``bench_kernel`` on the results page of these docs.
