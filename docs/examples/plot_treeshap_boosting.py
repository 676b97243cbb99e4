"""
TreeSHAP on XGBoost and LightGBM: exact values, plots and interactions
======================================================================

:class:`whybox.TreeShap` reads the trees of a boosted model and computes its exact Shapley
values: no sampling, no background needed, and a self-check that the values add up to the
model's own raw output (the log-odds, or *margin*, of a boosted classifier). We train an
XGBoost and a LightGBM classifier on :func:`whybox.zoo.credit` (synthetic applicants with a
categorical loan purpose), explain them, draw the usual plots, compare the values with the
libraries' own ``pred_contribs`` and look at SHAP interaction values.
"""

# %%
# Data and two boosted models
# ---------------------------
# Both libraries split the categorical ``loan_purpose`` natively; TreeShap follows their
# categorical splits (and their handling of missing values) exactly.
import lightgbm as lgb
import matplotlib.pyplot as plt
import numpy as np
import xgboost as xgb

import whybox as wb

data = wb.zoo.credit(n=4000, random_state=0)
X_train, y_train = data.X.iloc[:3000], data.y[:3000]
X_test = data.X.iloc[3000:3300]

xgb_model = xgb.XGBClassifier(
    n_estimators=150,
    max_depth=4,
    learning_rate=0.1,
    tree_method="hist",
    enable_categorical=True,
    n_jobs=1,
    random_state=0,
).fit(X_train, y_train)
lgb_model = lgb.LGBMClassifier(
    n_estimators=150, num_leaves=15, learning_rate=0.1, n_jobs=1, random_state=0, verbose=-1
).fit(X_train, y_train)

# %%
# Exact values of the log-odds
# ----------------------------
# ``TreeShap(model).explain(X)`` explains the ensemble's raw output; for a boosted classifier
# that is the log-odds of the positive class, and ``params["output"]`` says so.
exp = wb.TreeShap(xgb_model).explain(X_test)
print(exp)
print("output explained:", exp.params["output"])

# %%
# **Completeness.** Shapley values are efficient: the base value (the expected margin over the
# training data's paths) plus the row's values is the model's margin for that row. We check it
# against XGBoost's own ``output_margin``, a number computed by XGBoost, not by whybox (in
# float32, hence agreement to about 1e-6); ``completeness_gap()`` is the same check against the
# predictions whybox recorded from the parsed trees, in float64.
margin = xgb_model.predict(X_test, output_margin=True)
reconstructed = exp.base_values + exp.values.sum(axis=1)
print("max |base + sum(values) - XGBoost margin|:", f"{np.abs(reconstructed - margin).max():.1e}")
print("largest completeness gap:", f"{np.abs(exp.completeness_gap()).max():.1e}")

# %%
# XGBoost computes TreeSHAP itself (``pred_contribs=True``, in float32); whybox agrees with
# it to float32 rounding. The last column of XGBoost's matrix is the bias (the base value).
booster = xgb_model.get_booster()
dmat = xgb.DMatrix(X_test, enable_categorical=True)
contribs = booster.predict(dmat, pred_contribs=True)
print("max |whybox - XGBoost pred_contribs|:", f"{np.abs(exp.values - contribs[:, :-1]).max():.1e}")

# %%
# The global picture
# ------------------
# Mean absolute value per feature: how far, on average, each feature moves the log-odds.
exp.plot.bar()
plt.tight_layout()

# %%
# The beeswarm shows every row: position is the value, colour the feature's value (red high,
# blue low). Late payments and debt-to-income push risk up when high; income pulls it down.
exp.plot.beeswarm()
plt.tight_layout()

# %%
# Dependence plot
# ---------------
# One feature's value on the x axis, its SHAP value on the y axis, coloured by a second
# feature. Vertical spread at one x is the effect of the other features on this one's
# contribution. The data were simulated with one interaction, debt-to-income times credit
# utilisation: colouring by utilisation shows the slope of debt-to-income change with it.
exp.plot.scatter("debt_to_income", color="credit_utilization")
plt.tight_layout()

# %%
# One applicant
# -------------
# The waterfall goes from the base value (the average log-odds) to this applicant's
# log-odds, one feature at a time, largest contributions first.
exp.plot.waterfall(0)
plt.tight_layout()

# %%
# SHAP interaction values
# -----------------------
# ``explain_interactions`` returns an ``(n, p, p)`` array: the diagonal holds each feature's
# main effect and the off-diagonal pairs split the rest (Lundberg et al. 2020). Each row of
# the matrix sums to the feature's SHAP value, which we check.
inter = wb.TreeShap(xgb_model).explain_interactions(X_test.iloc[:100])
print("interaction values:", inter.values.shape)
print(
    "rows of the matrix sum to the SHAP values:",
    np.allclose(inter.values.sum(axis=2), exp.values[:100], atol=1e-5),
)

strength = np.abs(inter.values).mean(axis=0)
np.fill_diagonal(strength, 0.0)  # keep the pairs; the diagonal is the main effects
names = exp.feature_names
fig, ax = plt.subplots(figsize=(6.5, 5.5))
im = ax.imshow(strength, cmap="Reds")
ax.set_xticks(range(len(names)), labels=names, rotation=60, ha="right")
ax.set_yticks(range(len(names)), labels=names)
fig.colorbar(im, ax=ax, label="mean |interaction value| (log-odds)")
ax.set_title("Pairwise SHAP interactions, XGBoost")
top = np.unravel_index(np.argmax(strength), strength.shape)
main = np.abs(np.diagonal(inter.values, axis1=1, axis2=2)).mean(axis=0)
print("strongest pair:", names[top[0]], "x", names[top[1]])
print(f"largest mean |pair| / largest mean |main effect|: {strength.max() / main.max():.2f}")

# %%
# Interaction values describe the *model*, not the data. The simulated truth has a single
# interaction, debt-to-income x credit utilisation; the model spreads small interactions
# over many pairs (depth-4 trees create them everywhere), each a small fraction of the main
# effects. Read such a map as "this model is close to additive", not as a discovery about
# the applicants.
fig.tight_layout()

# %%
# LightGBM, and two models side by side
# -------------------------------------
# The same explainer reads LightGBM's trees; its values match LightGBM's ``pred_contrib``
# (computed in float64, so the agreement is much tighter than with XGBoost's float32).
exp_lgb = wb.TreeShap(lgb_model).explain(X_test)
contrib_lgb = lgb_model.predict(X_test, pred_contrib=True)
print(
    "max |whybox - LightGBM pred_contrib|:",
    f"{np.abs(exp_lgb.values - contrib_lgb[:, :-1]).max():.1e}",
)

# %%
# Two models trained on the same data can rank features differently; comparing their mean
# absolute SHAP values is a quick check of what each one relies on.
imp_x = exp.mean_abs()
imp_l = exp_lgb.mean_abs()
order = np.argsort(imp_x.to_numpy())
fig, ax = plt.subplots(figsize=(7, 4))
y = np.arange(len(order))
ax.barh(y + 0.2, imp_x.to_numpy()[order], height=0.4, label="XGBoost")
ax.barh(y - 0.2, imp_l.reindex(imp_x.index).to_numpy()[order], height=0.4, label="LightGBM")
ax.set_yticks(y, labels=imp_x.index[order])
ax.set_xlabel("mean |SHAP value| (log-odds)")
ax.legend()
fig.tight_layout()

# %%
# Interventional values
# ---------------------
# Without a background TreeShap is *path-dependent*: an absent feature follows the training
# data's split proportions. With ``background=`` rows it computes the *interventional* values
# (an absent feature takes the background rows' values), still exactly, in time linear in
# the background. The two games differ when features are dependent; on these applicants the
# values stay close to the diagonal. The base value becomes the mean margin over the
# background rows.
background = X_train.sample(100, random_state=0)
exp_int = wb.TreeShap(xgb_model, background=background).explain(X_test)
print("interventional completeness gap:", f"{np.abs(exp_int.completeness_gap()).max():.1e}")
fig, ax = plt.subplots(figsize=(5, 5))
ax.scatter(exp.values.ravel(), exp_int.values.ravel(), s=4, alpha=0.5)
lim = np.abs(exp.values).max()
ax.plot([-lim, lim], [-lim, lim], color="grey", linewidth=0.8)
ax.set_xlabel("path-dependent value")
ax.set_ylabel("interventional value (100 background rows)")
fig.tight_layout()
