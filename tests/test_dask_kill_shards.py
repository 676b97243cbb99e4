"""A Dask worker killed (SIGKILL) while TreeShap writes shards (``out=``): every partition's
shard is written once, whole (temporary name + rename), and the values equal the serial
ones bit for bit. The cluster and helpers are those of tests/test_dask_kill.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import whybox as wb
from whybox.trees.treeshap import TreeShap

from .test_dask_kill import N_PARTS, ROWS, _dask_frame, _frame, _run_and_kill, client, model

pytest.importorskip("distributed")

__all__ = ["client", "model"]  # fixtures


@pytest.mark.timeout(180)
def test_killed_worker_loses_no_shard(client, model, tmp_path):
    X = pd.concat([_frame(i) for i in range(N_PARTS)])
    serial = TreeShap(model).explain(X)
    folder = tmp_path / "shards"
    _run_and_kill(client, lambda: TreeShap(model, client=client).explain(_dask_frame(), out=folder))
    loaded = wb.load(folder)
    assert loaded.rows == [ROWS] * N_PARTS
    assert np.array_equal(loaded.values.compute(), serial.values)
    assert np.array_equal(loaded.predictions.compute(), serial.predictions)
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
