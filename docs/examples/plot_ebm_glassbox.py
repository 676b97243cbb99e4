"""
A glass-box model: explainable boosting on credit data
======================================================

An explainable boosting machine (EBM) is a generalised additive model with a few pairwise
interactions, learnt by cyclic gradient boosting (Lou et al. 2013; Nori et al. 2019): the
log-odds is an intercept plus one shape function per feature plus a few pair terms. The model
*is* its explanation, so nothing needs to be estimated after the fact. We fit
:class:`whybox.ExplainableBoostingClassifier` on :func:`whybox.zoo.credit`, whose true
log-odds is known (a sum of one-feature terms plus a single interaction, debt-to-income times
credit utilisation), and check what the EBM recovered.
"""

# %%
# Fit
# ---
# ``interactions=5`` keeps the five pairs ranked highest by FAST (Lou et al. 2013);
# ``outer_bags=8`` trains eight bagged models whose spread gives each shape function its
# error bars (interpret's default is 14; fewer keep this example fast).
import lightgbm as lgb
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_auc_score

import whybox as wb

data = wb.zoo.credit(n=4000, random_state=0)
X_train, y_train = data.X.iloc[:3000], data.y[:3000]
X_test, y_test = data.X.iloc[3000:], data.y[3000:]

ebm = wb.ExplainableBoostingClassifier(interactions=5, outer_bags=8, random_state=0)
ebm.fit(X_train, y_train)
print("terms:", ebm.term_names_)

# %%
# The five pairs FAST chose do **not** include the true one. FAST ranks pairs by how much a
# small pair model lowers the training loss after the main terms; the simulated interaction
# is weak next to the main effects, and 3000 yes/no outcomes do not single it out. We come
# back to it below. The glass box costs no accuracy against a black-box gradient-boosted
# model (LightGBM) on the same data:
print("true pair chosen:", "debt_to_income & credit_utilization" in ebm.term_names_)
gbm = lgb.LGBMClassifier(n_estimators=200, learning_rate=0.05, n_jobs=1, verbose=-1, random_state=0)
gbm.fit(X_train, y_train)
print(f"test AUC  EBM {roc_auc_score(y_test, ebm.predict_proba(X_test)[:, 1]):.3f}")
print(f"test AUC  GBM {roc_auc_score(y_test, gbm.predict_proba(X_test)[:, 1]):.3f}")

# %%
# Term importances
# ----------------
# ``explain_global()`` returns every term: its shape function, bagging error bars and bin
# weights. A term's importance is its mean absolute contribution to the log-odds over the
# training rows; ``to_explanation()`` turns them into an :class:`~whybox.Explanation`, so
# whybox's own bar plot draws them.
glob = ebm.explain_global()
print(glob)
glob.to_explanation().plot.bar(max_display=14)
plt.tight_layout()

# %%
# Shape functions
# ---------------
# Each main term is a step function over the feature's bins, with a band of one standard
# deviation across the bags. Because the data are simulated, the true term is known: for a
# feature outside the interaction, its centred true term is its exact Shapley value
# (:func:`whybox.zoo.credit_true_shap`), drawn as grey dots. The EBM recovers the shapes
# where there are applicants. In the tails the band widens, the steps get noisy, and the
# shape can be wrong: above 60 the few older applicants do not show the true rise of risk
# with age. Read a shape function together with its band and its bin weights.
truth = wb.zoo.credit_true_shap(X_train.iloc[:600], background=X_train)
names = list(X_train.columns)
fig, axes = plt.subplots(2, 2, figsize=(11, 7))
for ax, feature in zip(
    axes.ravel(), ["income", "age", "late_payments", "months_employed"], strict=True
):
    glob.plot(feature, ax=ax)
    j = names.index(feature)
    ax.scatter(X_train[feature].iloc[:600], truth[:, j], s=6, color="grey", label="true term")
    ax.legend(fontsize=8)
fig.tight_layout()

# %%
# A nominal feature gets one bar per category:
glob.plot("loan_purpose")
plt.tight_layout()

# %%
# Pair terms
# ----------
# A pair term is a surface over the two features' (coarser) bins; the EBM fits it on the
# residual of the main terms, so it holds only what the two features do *together*. The
# pairs FAST chose are all small next to the main terms (compare with the bar chart above):
# this model is nearly additive.
imp = glob.importance()
imp[[name for name in imp.index if " & " in name]].round(3)

# %%
# Someone who knows the domain can name the pairs instead: ``interactions=`` takes a list of
# feature pairs. We fit the pair that the simulation really has, on more applicants (15000:
# a weak interaction needs more data than a main effect), and compare the learnt surface
# with the true one from :func:`whybox.zoo.credit_true_logit`. Both are evaluated on the same
# grid of values and doubly centred (main effects removed), so they share a colour scale.
# The third panel is the term as the model stores it, one score per cell of the two
# features' bins (``explain_global().plot(pair)``).
pair = "debt_to_income & credit_utilization"
big = wb.zoo.credit(n=15000, random_state=1)
ebm_pair = wb.ExplainableBoostingClassifier(
    interactions=[("debt_to_income", "credit_utilization")], outer_bags=4, random_state=0
).fit(big.X, big.y)

dti = np.linspace(*big.X["debt_to_income"].quantile([0.05, 0.95]), 20)
util = np.linspace(*big.X["credit_utilization"].quantile([0.05, 0.95]), 20)
rows = big.X.iloc[[0] * dti.size * util.size].reset_index(drop=True)
rows["debt_to_income"] = np.repeat(dti, util.size)
rows["credit_utilization"] = np.tile(util, dti.size)


def doubly_centred(z):
    z = z.reshape(dti.size, util.size)
    return z - z.mean(0) - z.mean(1, keepdims=True) + z.mean()


local_grid = ebm_pair.explain_local(rows)
learnt = doubly_centred(local_grid.values[:, local_grid.feature_names.index(pair)])
true = doubly_centred(wb.zoo.credit_true_logit(rows))
print(
    f"correlation of learnt and true surfaces: {np.corrcoef(learnt.ravel(), true.ravel())[0, 1]:.2f}"
)

fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
lim = np.abs(true).max()
for ax, z, title in zip(
    axes, [learnt, true], ["learnt pair term", "true interaction"], strict=False
):
    mesh = ax.pcolormesh(dti, util, z.T, shading="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_xlabel("debt_to_income")
    ax.set_ylabel("credit_utilization")
    ax.set_title(title)
fig.colorbar(mesh, ax=axes[1], label="log-odds")
ebm_pair.explain_global().plot(pair, ax=axes[2])
axes[2].set_title("stored term (bin indices)")
axes[2].set_ylabel("credit_utilization")
fig.tight_layout()

# %%
# A local explanation, exactly
# ----------------------------
# ``explain_local`` gives each row's term contributions as an :class:`~whybox.Explanation`
# of the log-odds. They are the model's own terms, so they add up to its decision function
# exactly (the completeness gap is rounding), and any whybox plot reads them.
local = ebm.explain_local(X_test.iloc[:50])
print(local.params["output"])
gap = local.base_values + local.values.sum(axis=1) - ebm.decision_function(X_test.iloc[:50])
print(f"max |intercept + sum(terms) - decision_function|: {np.abs(gap).max():.1e}")
local.plot.waterfall(0)
plt.tight_layout()

# %%
# ``wb.explain`` recognises the EBM and returns the same terms (``method="auto"`` picks
# them, and says so):
same = wb.explain(ebm, X_test.iloc[:50], link="logit")
print(same.params.get("method_selection"))
print("same values:", np.allclose(same.values, local.values))

# %%
# A regressor
# -----------
# :class:`whybox.ExplainableBoostingRegressor` is the same model with an identity link: its
# terms add up to the prediction. On the diabetes data, the body-mass-index term:
X_d, y_d = wb.zoo.diabetes()
ebm_r = wb.ExplainableBoostingRegressor(interactions=3, outer_bags=8, random_state=0)
ebm_r.fit(X_d, y_d)
glob_r = ebm_r.explain_global()
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
glob_r.plot("bmi", ax=axes[0])
imp_r = glob_r.importance().sort_values()
axes[1].barh(imp_r.index, imp_r.to_numpy())
axes[1].set_xlabel("mean |contribution| to the prediction")
fig.tight_layout()
