"""
Scaling out with Dask: the same values on a cluster
===================================================

Every tabular explainer takes ``backend="dask", client=...`` (or a Dask DataFrame as ``X``):
rows are explained partition by partition on the workers. Each row's random draws are seeded
by ``random_state`` and the row's content, never by the worker or partition that explains it,
so the values equal an in-memory run. Here a local cluster (threads, no network) stands in for
a real one.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from dask.distributed import Client, LocalCluster
from sklearn.ensemble import HistGradientBoostingClassifier

import whybox as wb

data = wb.zoo.credit(n=2000, random_state=0)
model = HistGradientBoostingClassifier(max_iter=50, random_state=0).fit(data.X, data.y)
X = data.X.iloc[:40]
background = data.X.sample(50, random_state=0)  # rows that stand for the data

local = wb.KernelShap(model, background=background, random_state=0).explain(X, budget=256)

# %%
cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None)
client = Client(cluster)
explainer = wb.KernelShap(
    model, background=background, random_state=0, backend="dask", client=client
)
on_dask = explainer.explain(X, budget=256)
print("max |dask - local|:", float(np.abs(on_dask.values - local.values).max()))
client.close()
cluster.close()

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
axes[0].scatter(local.values.ravel(), on_dask.values.ravel(), s=6)
axes[0].set_xlabel("in memory")
axes[0].set_ylabel("on the Dask cluster")
axes[0].set_title("KernelSHAP values, 40 rows x 9 features")
plt.sca(axes[1])
order = np.argsort(np.abs(on_dask.values).mean(0))
axes[1].barh(np.array(on_dask.feature_names)[order], np.abs(on_dask.values).mean(0)[order])
axes[1].set_title("mean |value| (Dask run)")
fig.tight_layout()
