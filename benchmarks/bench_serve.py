"""The dashboard (``whybox serve``): index build time and page latencies, over HTTP.

Task: a folder of 1,000 saved explanations (900 tabular, 200 rows x 20 features; 100 text
explanations of 50 ragged rows) and an SAE folder whose FeatureData has 16,384 latents
(random contents in the saved layout, 8 top contexts and 4 x 2 interval samples of 7 tokens
per latent, written by ``tests.serve._helpers.synthetic_feature_data``).

Measured with ``whybox serve FOLDER --poll 0.1`` running in its own process on 127.0.0.1,
started on the empty folder, requests over one keep-alive connection (``http.client``; a
server in a thread of the measuring process pays ~40 ms of GIL hand-over per request):

- index build: the folder is written while the server runs, then the first
  ``GET /api/index?limit=1000`` finds every file new (the cold scan: each explanation's
  ``meta.json`` and ``.npy`` headers, the FeatureData ``index.json``); the next one rescans
  with a warm cache (the watcher's cost); the cold scan in process is reported too;
- feature page: ``GET /api/feature?j=...`` for 300 random latents (each one cold in the
  memory map the first time), median and 95th percentile;
- the latent list ordered by density (``GET /api/features?order=density&limit=50``), a
  token search, one explanation page (summary + rows + one row).

Targets (issue 19): index under 5 s, a feature page under 100 ms. No peer serves the same
folder (SAEDashboard and Neuronpedia render precomputed pages; interpret's dashboard serves
in-memory objects), so this benchmark reports whybox's figures against the targets.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine

N_TABULAR, N_TEXT, D_SAE = 900, 100, 16_384


def build_folder(root: Path) -> None:
    from tests.serve._helpers import synthetic_feature_data

    from whybox.explanation import Explanation

    rng = np.random.default_rng(0)
    names = [f"feature_{j}" for j in range(20)]
    for i in range(N_TABULAR):
        v = rng.normal(size=(200, 20))
        Explanation(v, 0.0, data=rng.normal(size=(200, 20)), feature_names=names,
                    predictions=v.sum(1), method="kernel_shap").save(
            root / f"tab/{i // 100}/exp_{i}.whybox") if (root / f"tab/{i // 100}").mkdir(
            parents=True, exist_ok=True) is None else None  # fmt: skip
    (root / "text").mkdir()
    for i in range(N_TEXT):
        lens = rng.integers(5, 40, 50)
        Explanation([rng.normal(size=k) for k in lens], np.zeros(50),
                    feature_names=[[f" w{t}" for t in range(k)] for k in lens],
                    method="token_shap").save(root / f"text/t_{i}.whybox")  # fmt: skip
    sae = root / "sae"
    sae.mkdir()
    (sae / "cfg.json").write_text('{"d_in": 64, "d_sae": 16384, "architecture": "topk"}')
    (sae / "sae_weights.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    synthetic_feature_data(D_SAE, vocab_size=2048, explained=2000).save(sae / "features")


def _ms(ts: list[float]) -> tuple[float, float]:
    a = np.array(ts) * 1000
    return float(np.median(a)), float(np.percentile(a, 95))


class _Served:
    """``whybox serve FOLDER`` in a subprocess on a free port, and one keep-alive connection."""

    def __init__(self, root: Path, poll: float) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        exe = Path(sys.executable).with_name("whybox")
        self.proc = subprocess.Popen(
            [str(exe), "serve", str(root), "--port", str(self.port), "--poll", str(poll)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                self.get("/api/index", limit=1)
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.proc.kill()
                    raise RuntimeError("whybox serve did not start") from None
                time.sleep(0.1)

    def get(self, route: str, **params: Any) -> tuple[float, Any]:
        for attempt in (0, 1):  # uvicorn closes a connection idle for 5 s: reconnect once
            try:
                t0 = time.perf_counter()
                self.conn.request("GET", f"{route}?{urlencode(params)}")
                r = self.conn.getresponse()
                body = r.read()
                dt = time.perf_counter() - t0
                break
            except (http.client.RemoteDisconnected, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt:
                    raise
        if r.status != 200:
            raise RuntimeError(f"{route} {params}: {r.status} {body[:200]!r}")
        return dt, json.loads(body)

    def close(self) -> None:
        self.conn.close()
        self.proc.terminate()
        self.proc.wait(10)


def run() -> dict[str, Any]:
    from whybox.serve.index import FolderIndex

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "folder"
        root.mkdir()
        server = _Served(root, poll=0.1)  # started on the empty folder: the watcher finds all
        try:
            t0 = time.perf_counter()
            build_folder(root)
            t_write = time.perf_counter() - t0
            time.sleep(0.3)
            t_cold, first = server.get("/api/index", limit=1000)
            time.sleep(0.3)
            t_warm, _ = server.get("/api/index", limit=1000)
            rng = np.random.default_rng(1)
            feat = "sae/features"
            lat = [server.get("/api/feature", path=feat, j=int(j))[0]
                   for j in rng.integers(0, D_SAE, 300)]  # fmt: skip
            lists = [server.get("/api/features", path=feat, order="density", offset=o)[0]
                     for o in range(0, 500, 50)]  # fmt: skip
            searches = [server.get("/api/features/search", path=feat, token=t)[0]
                        for t in [" tok5", " tok77", " tok1999"]]  # fmt: skip
            pages = []
            for i in range(20):
                p = f"tab/{i % 9}/exp_{i % 9 * 100 + i}.whybox"
                pages.append(server.get("/api/explanation", path=p)[0]
                             + server.get("/api/explanation/rows", path=p, sort="prediction")[0]
                             + server.get("/api/explanation/row", path=p, i=3)[0])  # fmt: skip
        finally:
            server.close()
        t0 = time.perf_counter()
        FolderIndex(root).scan()
        t_scan = time.perf_counter() - t0
    return {
        "machine": machine(),
        "entries": first["total"],
        "write_s": t_write,
        "index_http_s": t_cold,
        "rescan_http_s": t_warm,
        "scan_s": t_scan,
        "feature_ms": _ms(lat),
        "list_ms": _ms(lists),
        "search_ms": _ms(searches),
        "explanation_ms": _ms(pages),
    }


def markdown(res: dict[str, Any]) -> str:
    """The results as a markdown block."""
    f, li, s, e = res["feature_ms"], res["list_ms"], res["search_ms"], res["explanation_ms"]
    ok_index = "yes" if res["index_http_s"] < 5 else "**no**"
    ok_feat = "yes" if f[0] < 100 else "**no**"
    return "\n".join([
        "### Dashboard (`whybox serve`): index build and page latency over HTTP",
        "",
        f"Machine: {res['machine']}. Folder: {N_TABULAR} tabular + {N_TEXT} text explanations "
        f"and an SAE with {D_SAE} latents of FeatureData ({res['entries']} index entries); "
        "`whybox serve` (uvicorn) in its own process on 127.0.0.1, requests over one keep-alive "
        "connection (http.client).",
        "",
        "| measure | time | target | met |",
        "|---|---|---|---|",
        f"| index build: first GET /api/index after the files appear (cold scan) | "
        f"{res['index_http_s']:.2f} s | < 5 s | {ok_index} |",
        f"| same, in process (FolderIndex(folder).scan()) | {res['scan_s']:.2f} s | | |",
        f"| GET /api/index with a warm cache (the watcher's rescan) | "
        f"{res['rescan_http_s'] * 1000:.0f} ms | | |",
        f"| feature page GET /api/feature (300 random latents) | median {f[0]:.1f} ms, "
        f"p95 {f[1]:.1f} ms | < 100 ms | {ok_feat} |",
        f"| latent list by density, 50 per page | median {li[0]:.1f} ms, p95 {li[1]:.1f} ms "
        "| | |",
        f"| token search over {D_SAE} latents | median {s[0]:.1f} ms | | |",
        f"| explanation page (summary + sorted rows + one row) | median {e[0]:.1f} ms, "
        f"p95 {e[1]:.1f} ms | | |",
    ])  # fmt: skip


if __name__ == "__main__":
    print(markdown(run()))
