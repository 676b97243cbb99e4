"""Peak memory of TreeShap on 1M rows x 40 features (issue 4: under 2x the output array).

A fresh process loads a saved XGBoost model (100 trees, depth 6) and a 1M x 40 float64 X,
then explains all rows; a sampling thread reads the resident set size every 2 ms. The peak
increase over the resident size before the call is compared with the size of the output
array (values: 1M x 40 x 8 bytes = 320 MB).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, os, sys, threading, time
import numpy as np
import xgboost as xgb
import whybox as wb

page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * page

booster = xgb.Booster()
booster.load_model(sys.argv[1])
n = int(sys.argv[2])
X = np.random.default_rng(0).normal(size=(n, 40))
explainer = wb.TreeShap(booster)
explainer.explain(X[:100])  # compile / load the kernels before measuring
peak = [0]
stop = [False]
def watch():
    while not stop[0]:
        peak[0] = max(peak[0], rss())
        time.sleep(0.002)
before = rss()
t = threading.Thread(target=watch, daemon=True)
t.start()
t0 = time.perf_counter()
exp = explainer.explain(X)
elapsed = time.perf_counter() - t0
stop[0] = True
t.join()
peak[0] = max(peak[0], rss())
out = exp.values.nbytes
print(json.dumps({"rows": n, "output_bytes": out, "peak_increase_bytes": peak[0] - before,
                  "ratio_to_output": (peak[0] - before) / out, "seconds": elapsed}))
"""


def run(n: int = 1_000_000) -> dict[str, object]:
    import numpy as np
    import xgboost as xgb

    rng = np.random.default_rng(1)
    X = rng.normal(size=(5000, 40))
    y = (X[:, 0] * X[:, 1] + X[:, 2] > 0).astype(int)
    model = xgb.XGBClassifier(n_estimators=100, max_depth=6, random_state=0).fit(X, y)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.json"
        model.get_booster().save_model(str(path))
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), str(n)],
            capture_output=True,
            text=True,
            check=True,
        )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["task"] = f"TreeShap memory, XGBoost 100 trees depth 6, {n} rows x 40 features"
    return res


if __name__ == "__main__":
    print(run())
