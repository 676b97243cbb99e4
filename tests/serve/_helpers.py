"""Shared by the dashboard's tests and its benchmark: folders to serve and a live server.

- :func:`hostile_folder` writes one file of each kind the dashboard shows (tabular, text,
  image and patching explanations, a report, a logit-lens table, an SAE with FeatureData),
  with a hostile string as a feature name, a token, a file name, a lens token and a feature
  explanation;
- :func:`synthetic_feature_data` builds FeatureData of any width with numpy alone (random,
  in the saved layout), for paging and timing;
- :class:`LiveServer` runs the app with uvicorn in a thread on a free port of 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HOSTILE = "<img src=x onerror=alert(1)>"


def synthetic_feature_data(
    d_sae: int, *, vocab_size: int = 512, n_top: int = 8, seed: int = 0, explained: int = 20
) -> Any:
    """FeatureData with ``d_sae`` latents, random contents in the saved layout."""
    from whybox.sae.features import FeatureData

    rng = np.random.default_rng(seed)
    left, right, n_q, per_q, n_bins, n_log, n_near = 4, 2, 4, 2, 16, 5, 5
    W = left + 1 + right
    D = d_sae
    top_values = -np.sort(-rng.gamma(2.0, 1.0, (D, n_top)).astype(np.float32), axis=1)
    arrays = {
        "density": rng.uniform(0, 0.05, D),
        "n_firing": rng.integers(1, 1000, D).astype(np.int64),
        "mean_activation": rng.uniform(0.5, 2, D).astype(np.float32),
        "max_activation": top_values[:, 0].copy(),
        "range_exponent": np.ceil(np.log2(top_values[:, 0] + 1e-6)).astype(np.int32),
        "hist_counts": rng.integers(0, 50, (D, n_bins)).astype(np.int64),
        "interval_counts": rng.integers(0, 30, (D, n_q)).astype(np.int64),
        "top_values": top_values,
        "top_seq": rng.integers(0, 100, (D, n_top)).astype(np.int64),
        "top_pos": rng.integers(0, 64, (D, n_top)).astype(np.int64),
        "top_tokens": rng.integers(0, vocab_size, (D, n_top, W)).astype(np.int32),
        "top_acts": rng.uniform(0, 1, (D, n_top, W)).astype(np.float32),
        "interval_values": rng.uniform(0, 2, (D, n_q, per_q)).astype(np.float32),
        "interval_seq": rng.integers(0, 100, (D, n_q, per_q)).astype(np.int64),
        "interval_pos": rng.integers(0, 64, (D, n_q, per_q)).astype(np.int64),
        "interval_tokens": rng.integers(0, vocab_size, (D, n_q, per_q, W)).astype(np.int32),
        "interval_acts": rng.uniform(0, 1, (D, n_q, per_q, W)).astype(np.float32),
        "logit_pos_ids": rng.integers(0, vocab_size, (D, n_log)).astype(np.int64),
        "logit_pos_vals": rng.uniform(0, 1, (D, n_log)).astype(np.float32),
        "logit_neg_ids": rng.integers(0, vocab_size, (D, n_log)).astype(np.int64),
        "logit_neg_vals": -rng.uniform(0, 1, (D, n_log)).astype(np.float32),
        "nearest_ids": rng.integers(0, D, (D, n_near)).astype(np.int64),
        "nearest_cos": rng.uniform(0, 1, (D, n_near)).astype(np.float32),
    }
    meta = {
        "d_sae": D, "d_in": 64, "site": "blocks.1.resid_post", "architecture": "topk",
        "model": "synthetic", "n_tokens": 100_000, "n_sequences": 100, "context_size": 64,
        "per_text": False, "ignore_tokens": [], "context_window": [left, right], "n_top": n_top,
        "n_quantiles": n_q, "examples_per_quantile": per_q, "n_bins": n_bins,
        "has_logits": True, "has_cooccurrence": False, "cooccurrence_pruned": False,
        "notes": [],
    }  # fmt: skip
    vocab = [f" tok{i}" for i in range(vocab_size)]
    vocab[7] = HOSTILE
    fd = FeatureData(meta, arrays, vocab=vocab)
    fd.set_explanations({j: (f"pattern number {j}", 0.5) for j in range(min(explained, D))})
    fd.set_explanations({0: (HOSTILE, 0.9)})
    return fd


def hostile_folder(root: Path, *, feature_data: Any = None) -> Path:
    """Write one file of each kind into ``root`` (created), hostile strings included."""
    from whybox.explanation import Explanation

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    n = 30
    X = pd.DataFrame({
        "age": rng.integers(20, 70, n), "income": rng.normal(50, 10, n), HOSTILE: rng.normal(size=n),
    })  # fmt: skip
    v = rng.normal(size=(n, 3))
    Explanation(v, 0.5, data=X, predictions=0.5 + v.sum(1), method="kernel_shap").save(
        root / "tabular.whybox"
    )
    Explanation(v + rng.normal(scale=0.2, size=v.shape), 0.5, data=X, method="tree_shap").save(
        root / "tabular_other.whybox"
    )
    tokens = [["The", " cat", " sat"], [HOSTILE, " dog", "\n", " ran"]]
    Explanation(
        [np.array([0.1, -0.2, 0.3]), np.array([0.5, -0.1, 0.0, 0.2])],
        [0.0, 0.0],
        feature_names=tokens,
        method="token_shap",
    ).save(root / f"{HOSTILE}.whybox")
    segments = np.repeat(np.repeat(np.arange(9).reshape(3, 3), 4, 0), 4, 1)
    Explanation(
        rng.normal(size=(2, 3, 12, 12)), [0.0, 0.0], data=rng.random((2, 3, 12, 12)),
        method="integrated_gradients",
        meta={"segments": np.stack([segments, segments.T]), "row_keys": ["segments"]},
    ).save(root / "images" / "image.whybox") if (root / "images").mkdir() is None else None  # fmt: skip
    names = [f"L{la}@pos{p}" for la in range(3) for p in range(4)]
    Explanation(
        rng.normal(size=(1, 12)), [0.1], feature_names=names, method="activation_patching",
        meta={"grid_shape": [3, 4], "grid_axes": ["layer", "position"],
              "grid_index": [[0, 1, 2], [0, 1, 2, 3]]},
    ).save(root / "patching.whybox")  # fmt: skip
    (root / "report.html").write_text(
        "<!doctype html><html><head><title>r</title></head><body><h1 id=r>A report</h1>"
        "</body></html>",
        "utf-8",
    )
    pd.DataFrame({
        "entry": [0, 0, 1, 1], "label": ["embed", "embed", "L0", "L0"], "batch": [0] * 4,
        "position": [0, 1, 0, 1], "input_token": ["a", "b", "a", "b"],
        "top_1": ["x", HOSTILE, "z", "w"], "top_1_prob": [0.1, 0.2, 0.3, 0.9],
    }).to_csv(root / "lens.csv", index=False)  # fmt: skip
    sae = root / "sae"
    sae.mkdir()
    (sae / "cfg.json").write_text(
        json.dumps({"d_in": 64, "d_sae": 32, "architecture": "topk", "k": 4,
                    "hook_name": "blocks.1.resid_post"}), "utf-8",
    )  # fmt: skip
    (sae / "sae_weights.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    fd = feature_data if feature_data is not None else synthetic_feature_data(32)
    fd.save(sae / "features")
    return root


def tree_snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and mtime (symlinks not followed)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


class LiveServer:
    """The app served by uvicorn in a daemon thread on a free port of 127.0.0.1."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the dashboard server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
