"""
Credit scoring: SHAP values, reason codes and recourse
======================================================

A gradient-boosted credit model is trained on :func:`whybox.zoo.credit`, synthetic applicants
whose true log-odds of default is known in closed form. We explain its log-odds exactly with
TreeSHAP, compare the values with the ground truth, turn them into adverse-action reason codes
and search the changes that would flip one applicant's decision.
"""

# %%
# Data and model
# --------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

import whybox as wb

data = wb.zoo.credit(n=3000, random_state=0)
model = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(data.X, data.y)
data.X.head()

# %%
# An exact explanation of the log-odds
# ------------------------------------
# ``method="auto"`` picks TreeSHAP for a boosted classifier's log-odds, and says why.
X = data.X.iloc[:200]
exp = wb.explain(model, X, link="logit")
print(exp.params["output"], "|", exp.params["method_selection"])
print("largest completeness gap:", np.abs(exp.completeness_gap()).max())

# %%
# The global picture: mean absolute value per feature, and every row at once.
exp.plot.bar()
plt.tight_layout()

# %%
exp.plot.beeswarm()
plt.tight_layout()

# %%
# One applicant, from the average log-odds to theirs:
exp.plot.waterfall(0)
plt.tight_layout()

# %%
# Reason codes
# ------------
# The four features that pushed the first denied applicants' risk up the most, in words.
proba = model.predict_proba(X)[:, 1]
denied = np.flatnonzero(proba > 0.5)[:3]
print(wb.reason_codes(exp, rows=list(denied), k=4))

# %%
# Recourse: what would have to change
# -----------------------------------
# Loan purpose cannot change and age only increases; the search stays within the training
# ranges and reports "no counterfactual found" rather than hanging.
cf = wb.Counterfactuals(
    model,
    data.X,
    immutable=["loan_purpose"],
    monotone={"age": "increase"},
    desired=0,
    time_budget=2.0,
    random_state=0,
)
res = cf.explain(X.iloc[[denied[0]]], n=3)
print(res.status)
res.table()
