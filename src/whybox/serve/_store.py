"""Read-only access to the files of the served folder, with small caches.

Explanations (:func:`whybox.load`, no pickle), FeatureData folders (memory-mapped ``.npy``
opened with ``allow_pickle=False``; every array file must lie inside the served folder after
symlinks are followed) and CSV tables are opened on first use and kept in least-recently-used
caches keyed by (path, size, mtime), so a file changed on disk is read again. Nothing is
written.
"""

from __future__ import annotations

import csv
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from whybox.errors import InvalidInputError

from ._paths import PathRefused, inside, resolve

__all__ = ["MAX_TABLE_BYTES", "Store", "read_table"]

#: CSV tables larger than this are not read
MAX_TABLE_BYTES = 64 * 1024 * 1024


class _LRU:
    def __init__(self, size: int) -> None:
        self.size = size
        self._d: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                return self._d[key]
        value = make()
        with self._lock:
            self._d[key] = value
            while len(self._d) > self.size:
                self._d.popitem(last=False)
        return value


def _stamp(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


class Store:
    """Opens files of the served folder ``root`` (resolved) by relative path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._explanations = _LRU(16)
        self._features = _LRU(8)
        self._tables = _LRU(8)

    def path(self, rel: str, *, folder: bool = False) -> Path:
        real = resolve(self.root, rel)
        if folder != real.is_dir():
            raise PathRefused(404, f"{'a folder' if folder else 'a file'} was expected here.")
        return real

    def explanation(self, rel: str) -> Any:
        from whybox.explanation import load

        real = self.path(rel)
        if real.suffix.lower() != ".whybox":
            raise PathRefused(404, "not a saved explanation (.whybox file).")
        try:
            return self._explanations.get((real, _stamp(real)), lambda: load(real))
        except InvalidInputError as exc:
            raise PathRefused(422, str(exc)) from None

    def features(self, rel: str) -> Any:
        from whybox.sae.features import FeatureData, is_feature_folder

        real = self.path(rel, folder=True)
        index = real / "index.json"
        if not is_feature_folder(real):
            raise PathRefused(404, "not a FeatureData folder (no index.json of that format).")

        def make() -> Any:
            meta = json.loads(index.read_text("utf-8"))
            arrays = meta.get("arrays")
            if not isinstance(arrays, dict):
                raise PathRefused(422, "damaged FeatureData folder: index.json has no arrays.")
            for spec in arrays.values():
                file = (real / str(spec.get("file", ""))).resolve()
                if not inside(real, file) or file.parent != real or not file.is_file():
                    raise PathRefused(422, "FeatureData array files must lie in its folder.")
            for extra in ("vocab.json", "explanations.json"):
                f = real / extra
                if f.exists() and not inside(real, f.resolve()):
                    raise PathRefused(422, f"{extra} must lie in the FeatureData folder.")
            try:
                return FeatureData.load(real)
            except InvalidInputError as exc:
                raise PathRefused(422, str(exc)) from None

        stamp = (_stamp(index), _marker(real / "explanations.json"))
        return self._features.get((real, stamp), make)

    def sae_cfg(self, rel: str) -> dict[str, Any]:
        real = self.path(rel, folder=True)
        cfg = real / "cfg.json"
        if not cfg.is_file() or not inside(self.root, cfg.resolve()):
            raise PathRefused(404, "not an SAE folder (no cfg.json).")
        try:
            data = json.loads(cfg.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise PathRefused(422, f"cfg.json is unreadable: {exc}") from None
        if not isinstance(data, dict):
            raise PathRefused(422, "cfg.json is not a JSON object.")
        weights = real / "sae_weights.safetensors"
        data = {k: v for k, v in data.items() if isinstance(v, (str, int, float, bool, type(None)))}
        return {"cfg": data, "weights_bytes": weights.stat().st_size if weights.is_file() else None}

    def table(self, rel: str) -> tuple[list[str], list[list[str]]]:
        real = self.path(rel)
        if real.suffix.lower() != ".csv":
            raise PathRefused(404, "not a CSV table.")
        if real.stat().st_size > MAX_TABLE_BYTES:
            raise PathRefused(413, f"tables over {MAX_TABLE_BYTES} bytes are not read.")
        return self._tables.get((real, _stamp(real)), lambda: read_table(real))

    def report(self, rel: str) -> Path:
        real = self.path(rel)
        if real.suffix.lower() not in (".html", ".htm"):
            raise PathRefused(404, "not an HTML report.")
        return real


def _marker(path: Path) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def read_table(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file, as strings."""
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        rows = [r for r in reader if r]
    return header, rows


def _float(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        return float("nan")


def table_heatmap(header: list[str], rows: list[list[str]], value: str | None) -> dict[str, Any]:
    """A heatmap of a table: for a logit-lens table (``label``, ``position``) the ``value``
    column (default ``target_prob`` or ``top_1_prob``) as entries x positions with the top
    token of each cell; for a grid table (first column the row labels), the numbers."""
    if {"label", "position"} <= set(header):
        col = value or next((c for c in ("target_prob", "top_1_prob") if c in header), None)
        if col not in header:
            raise PathRefused(400, f"value must be a column of the table: {header}.")
        li, pi, vi = header.index("label"), header.index("position"), header.index(col)
        ti = header.index("top_1") if "top_1" in header else None
        bi = header.index("batch") if "batch" in header else None
        labels: list[str] = []
        positions: list[str] = []
        cells: dict[tuple[str, str], tuple[float, str | None]] = {}
        for r in rows:
            if bi is not None and r[bi] not in ("0", "0.0"):
                continue  # the first batch row only
            lab, pos = r[li], r[pi]
            if lab not in labels:
                labels.append(lab)
            if pos not in positions:
                positions.append(pos)
            cells[(lab, pos)] = (_float(r[vi]), None if ti is None else r[ti])
        vals = [[cells.get((a, b), (float("nan"), None))[0] for b in positions] for a in labels]
        text = [[cells.get((a, b), (0.0, None))[1] for b in positions] for a in labels]
        return {"view": "lens", "value": col, "row_labels": labels, "column_labels": positions,
                "values": vals, "text": text}  # fmt: skip
    return {
        "view": "grid",
        "value": header[0],
        "row_labels": [r[0] for r in rows],
        "column_labels": header[1:],
        "values": [[_float(x) for x in r[1:]] for r in rows],
        "text": None,
    }
