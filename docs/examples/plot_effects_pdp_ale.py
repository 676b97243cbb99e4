"""
Effects and importance: PDP, ICE, ALE and permutation importance
================================================================

Global views of a model trained on scikit-learn's diabetes data (442 patients, ten baseline
measurements, disease progression after one year): how the prediction moves with one feature
(:func:`whybox.partial_dependence` with ICE curves, :func:`whybox.ale`), and how much the
model needs each feature (:func:`whybox.permutation_importance`). The serum measurements
``s1``-``s4`` are strongly correlated, which is exactly where partial dependence and
accumulated local effects part ways.
"""

# %%
# Data and model
# --------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.model_selection import train_test_split

import whybox as wb

X, y = wb.zoo.diabetes()
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
model = GradientBoostingRegressor(
    n_estimators=150, learning_rate=0.05, max_depth=3, min_samples_leaf=20, random_state=0
)
model.fit(X_train, y_train)
print(f"test R^2: {model.score(X_test, y_test):.2f}")  # diabetes progression is noisy

# %%
# The serum measurements are far from independent: total cholesterol ``s1`` and LDL ``s2``
# have a correlation of 0.9.
X[["s1", "s2", "s3", "s4", "s5"]].corr().round(2)

# %%
# Partial dependence and ICE
# --------------------------
# ``kind="both"`` returns each row's ICE curve (the prediction as the feature sweeps its grid,
# everything else in the row kept) and their average, the partial dependence. For a model
# TreeShap can read, the curves are computed exactly from the trees in one pass per row
# (``method="tree"``), not by calling the model on every grid point.
fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), sharey=True)
for ax, feature in zip(axes, ["bmi", "s5", "bp"], strict=True):
    pd_ = wb.partial_dependence(model, X_train, feature, kind="both")
    pd_.plot(ax=ax)
print("computed by:", pd_.method, "| output:", pd_.output)
fig.tight_layout()

# %%
# Parallel ICE curves mean the feature acts additively; curves that cross or fan out show an
# interaction with other features. ``centered=True`` pins every curve at the first grid point,
# which makes the differences in shape easier to see.
pd_c = wb.partial_dependence(model, X_train, "bmi", kind="both", centered=True)
ax = pd_c.plot()
ax.set_title("centred ICE curves of bmi")
plt.tight_layout()

# %%
# Where partial dependence extrapolates
# -------------------------------------
# The partial dependence of ``s1`` sets every row's ``s1`` to each grid value while keeping its
# ``s2``: most of the ``(s1, s2)`` pairs it averages over never occur in the data. The two-way
# partial dependence below shows the model's surface on the whole grid; the dots are the real
# patients, on a narrow diagonal band. Everything away from the band is the model
# extrapolating (here it predicts the highest progression for low LDL at *any* total
# cholesterol, a corner with no patients), and partial dependence averages it in.
pd_pair = wb.partial_dependence(model, X_train, ("s1", "s2"), grid_resolution=15)
ax = pd_pair.plot()
ax.scatter(X_train["s1"], X_train["s2"], s=6, color="k", alpha=0.6, label="patients")
ax.legend(loc="upper left")
plt.tight_layout()

# %%
# Accumulated local effects
# -------------------------
# ALE only moves a feature *within* small quantile bins, so it evaluates the model near real
# rows, and accumulates the average local change (Apley & Zhu 2020). The bootstrap band
# (``n_bootstrap=``, seeded) shows how much the curve depends on the sample.
a = wb.ale(model, X_train, "bmi", bins=10, n_bootstrap=50, random_state=0)
ax = a.plot()
plt.tight_layout()


# %%
# PD against ALE
# --------------
# Both are drawn centred to mean zero over the data, so that they share an axis. Where they
# agree, the feature's effect does not depend on extrapolation. Where they disagree, PD is
# averaging predictions at combinations of values the model never saw: prefer ALE's shape.
# On this model they agree closely for ``s5`` and the serum measurements; the largest gap
# is ``bmi``, whose PD is steeper than its ALE at the top of its range.
def centred_pd(feature):
    p = wb.partial_dependence(model, X_train, feature)
    grid = np.asarray(p.grid, dtype=float)
    return grid, p.average - np.mean(np.interp(X_train[feature], grid, p.average))


fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
for ax, feature in zip(axes, ["bmi", "s5", "s2"], strict=True):
    a = wb.ale(model, X_train, feature, bins=10)
    a.plot(ax=ax)
    grid, pd_centred = centred_pd(feature)
    ax.plot(grid, pd_centred, color="#ff0051", linewidth=2, label="PD (centred)")
    gap = np.abs(pd_centred - np.interp(grid, np.asarray(a.grid, dtype=float), a.effect))
    ax.set_title(f"{feature}: max |PD - ALE| = {gap.max():.0f}, ALE range {np.ptp(a.effect):.0f}")
    ax.legend(fontsize=8)
fig.tight_layout()

# %%
# Permutation importance
# ----------------------
# How much the test-set :math:`R^2` drops when a feature's column is shuffled, repeated with
# seeded permutations; the bars carry the repeats' confidence interval. It measures what
# the *model* needs from a feature on this data, not what matters in the world.
imp = wb.permutation_importance(model, X_test, y_test, scoring="r2", n_repeats=20, random_state=0)
ax = imp.plot(max_display=10)
ax.set_title(f"baseline R^2 = {imp.baseline_score:.2f}")
plt.tight_layout()

# %%
# With correlated features, shuffling one leaves its partner to carry the information, and
# the importance is shared out unpredictably between them (Hooker et al. 2021). Permuting the
# correlated serum measurements *together* (``groups=``) asks the better question: how much
# does the model need the lipid panel as a whole? On this model, hardly at all: both numbers
# below are within the repeats' noise of zero (a negative importance means shuffling helped
# by chance), and the model's skill comes from ``s5`` and ``bmi``.
groups = {"lipids (s1-s4)": ["s1", "s2", "s3", "s4"], "s5": ["s5"], "bmi": ["bmi"], "bp": ["bp"]}
imp_g = wb.permutation_importance(
    model, X_test, y_test, scoring="r2", n_repeats=20, groups=groups, random_state=0
)
imp_g.to_frame().round(3)

# %%
singles = imp.to_frame().set_index("feature")["mean"]
print(f"sum of s1..s4 permuted one at a time: {singles[['s1', 's2', 's3', 's4']].sum():.3f}")
print(
    f"s1..s4 permuted together:             {imp_g.to_frame().set_index('feature')['mean'].iloc[0]:.3f}"
)
ax = imp_g.plot()
plt.tight_layout()
