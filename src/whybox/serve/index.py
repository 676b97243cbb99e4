"""The folder index: what the dashboard can show, found by walking the served folder.

:class:`FolderIndex` walks the folder (hidden names skipped, symlinks leaving it ignored,
depth and entry count bounded) and classifies what it finds, reading only small headers:

============== ========================================================================
kind           what it is, and what the walk reads
============== ========================================================================
explanation    ``*.whybox`` (``Explanation.save``): ``meta.json`` and the ``.npy`` headers
report         ``*.html`` / ``*.htm`` (``Report.save``, ``internals_report``): nothing
sae            a folder with ``cfg.json`` and ``sae_weights.safetensors`` (SAELens layout,
               ``SAE.save``): ``cfg.json``
features       a ``FeatureData`` folder (``index.json`` of format ``whybox.FeatureData``):
               ``index.json``; explanations counted from ``explanations.json``
table          ``*.csv`` with a header row: a logit-lens table (``LogitLens.to_frame()``,
               columns ``label``, ``position``, ``top_1`` ...) or a grid
               (``patching_grid(exp)``: first column the row labels, the rest numbers)
============== ========================================================================

Entries are cached by (path, size, mtime), so a rescan reads only new or changed files;
:meth:`FolderIndex.refresh` rescans at most every ``poll_interval`` seconds (a polling
watcher: new, changed and removed files show on the next request after that). Nothing is
written anywhere.
"""

from __future__ import annotations

import csv
import io
import json
import os
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ._paths import inside

__all__ = ["MAX_DEPTH", "MAX_ENTRIES", "FolderIndex", "classify"]

#: folders deeper than this below the served folder are not walked
MAX_DEPTH = 12
#: at most this many entries are indexed (a warning entry says when more were found)
MAX_ENTRIES = 200_000
_REPORT_SUFFIXES = (".html", ".htm")
_LENS_COLUMNS = {"label", "position", "top_1"}


def _npy_shape(zf: zipfile.ZipFile, name: str) -> tuple[int, ...] | None:
    try:
        with zf.open(name) as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, _ = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, _, _ = np.lib.format.read_array_header_2_0(fh)
            return tuple(int(s) for s in shape)
    except (KeyError, ValueError, OSError):
        return None


def explanation_kind(meta: dict[str, Any], feature_shape: tuple[int, ...] | None) -> str:
    """``"grid"`` (patching), ``"text"`` (ragged tokens), ``"image"``, ``"tabular"`` or
    ``"array"`` from a saved Explanation's metadata and feature shape."""
    inner = meta.get("meta") or {}
    if isinstance(inner, dict) and "grid_shape" in inner:
        return "grid"
    if meta.get("ragged"):
        return "text"
    if feature_shape is not None and len(feature_shape) in (2, 3):
        return "image"
    if feature_shape is not None and len(feature_shape) == 1:
        return "tabular"
    return "array"


def _explanation_entry(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("meta.json"))
        if not isinstance(meta, dict) or meta.get("format") != "whybox.explanation":
            raise ValueError("not a whybox explanation")
        base = _npy_shape(zf, "base_values.npy") or (0,)
        n_outputs = base[1] if len(base) == 2 else 1
        if meta.get("ragged"):
            feature_shape = None
            lengths = _npy_shape(zf, "values_lengths.npy")
            n_features = None
            n_rows = lengths[0] if lengths else base[0]
        else:
            shape = _npy_shape(zf, "values.npy") or (0, 0)
            end = len(shape) - (1 if len(base) == 2 else 0)
            feature_shape = tuple(shape[1:end])
            n_features = int(np.prod(feature_shape)) if feature_shape else 0
            n_rows = shape[0]
    return {
        "kind": "explanation",
        "view": explanation_kind(meta, feature_shape),
        "method": str(meta.get("method", "")),
        "n_rows": int(n_rows),
        "n_features": n_features,
        "feature_shape": None if feature_shape is None else list(feature_shape),
        "n_outputs": int(n_outputs),
        "output_names": meta.get("output_names"),
    }


def _sae_entry(folder: Path) -> dict[str, Any]:
    cfg = json.loads((folder / "cfg.json").read_text("utf-8"))
    if not isinstance(cfg, dict):
        raise ValueError("cfg.json is not an object")
    keep = ("d_in", "d_sae", "architecture", "hook_name", "k", "model_name", "dtype")
    return {"kind": "sae", "cfg": {k: cfg.get(k) for k in keep if k in cfg}, "features": []}


def _features_entry(folder: Path) -> dict[str, Any]:
    meta = json.loads((folder / "index.json").read_text("utf-8"))
    if not isinstance(meta, dict) or meta.get("format") != "whybox.FeatureData":
        raise ValueError("not a FeatureData folder")
    n_explained = 0
    exp_file = folder / "explanations.json"
    if exp_file.is_file():
        try:
            n_explained = len(json.loads(exp_file.read_text("utf-8")))
        except (OSError, ValueError, TypeError):
            n_explained = 0
    return {
        "kind": "features",
        "d_sae": int(meta.get("d_sae", 0)),
        "site": meta.get("site"),
        "model": meta.get("model"),
        "architecture": meta.get("architecture"),
        "n_tokens": int(meta.get("n_tokens", 0)),
        "has_logits": bool(meta.get("has_logits")),
        "n_explained": n_explained,
    }


def _table_entry(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8", newline="") as fh:
        header = next(csv.reader(io.StringIO(fh.readline())), [])
    if len(header) < 2:
        raise ValueError("no header row")
    view = "lens" if _LENS_COLUMNS <= set(header) else "grid"
    return {"kind": "table", "view": view, "n_columns": len(header)}


def classify(path: Path, is_dir: bool) -> dict[str, Any] | None:
    """The index entry of ``path`` (without its path fields), or None when it is nothing the
    dashboard shows; an unreadable file of a known kind gets ``"error"``."""
    try:
        if is_dir:
            if (path / "index.json").is_file():
                return _features_entry(path)
            if (path / "cfg.json").is_file() and (path / "sae_weights.safetensors").is_file():
                return _sae_entry(path)
            return None
        suffix = path.suffix.lower()
        if suffix == ".whybox":
            return _explanation_entry(path)
        if suffix in _REPORT_SUFFIXES:
            return {"kind": "report"}
        if suffix == ".csv":
            return _table_entry(path)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, StopIteration) as exc:
        kind = {".whybox": "explanation", ".csv": "table"}.get(path.suffix.lower(), "sae")
        return {"kind": kind, "error": f"unreadable: {type(exc).__name__}: {exc}"[:300]}
    return None


class FolderIndex:
    """The entries of one served folder, rescanned by polling.

    Parameters
    ----------
    root : path
        The served folder.
    poll_interval : float, default 2.0
        Least seconds between two rescans triggered by :meth:`refresh`.
    """

    def __init__(self, root: str | os.PathLike[str], *, poll_interval: float = 2.0) -> None:
        self.root = Path(root).resolve(strict=True)
        self.poll_interval = float(poll_interval)
        self._cache: dict[str, tuple[tuple[int, int], dict[str, Any] | None]] = {}
        self._entries: list[dict[str, Any]] = []
        self._scanned_at = -float("inf")
        self._lock = threading.Lock()
        self.truncated = False
        self.scan_seconds = 0.0
        self.generation = 0

    # -------------------------------------------------------------- walking --
    def _walk(self) -> list[tuple[str, Path, bool, os.stat_result]]:
        found: list[tuple[str, Path, bool, os.stat_result]] = []
        stack: list[tuple[Path, str, int]] = [(self.root, "", 0)]
        seen_dirs: set[Path] = {self.root}
        while stack:
            folder, prefix, depth = stack.pop()
            try:
                items = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            for item in items:
                if item.name.startswith("."):
                    continue
                rel = f"{prefix}{item.name}"
                try:
                    real = Path(item.path).resolve() if item.is_symlink() else Path(item.path)
                    if item.is_symlink() and not inside(self.root, real):
                        continue
                    st = os.stat(real)
                except OSError:
                    continue
                is_dir = item.is_dir()
                found.append((rel, real, is_dir, st))
                if len(found) >= MAX_ENTRIES:
                    self.truncated = True
                    return found
                if is_dir and depth + 1 < MAX_DEPTH and not (real / "index.json").is_file():
                    key = real.resolve()
                    if key not in seen_dirs:
                        seen_dirs.add(key)
                        stack.append((real, rel + "/", depth + 1))
        return found

    def scan(self) -> list[dict[str, Any]]:
        """Walk the folder now and return the entries (also kept for :meth:`entries`)."""
        t0 = time.perf_counter()
        self.truncated = False
        walked = self._walk()
        entries: list[dict[str, Any]] = []
        cache: dict[str, tuple[tuple[int, int], dict[str, Any] | None]] = {}
        inner: set[str] = set()
        for rel, real, is_dir, st in walked:
            if any(rel.startswith(p) for p in inner):
                continue  # files inside an SAE or feature folder belong to it
            key = (st.st_size if not is_dir else 0, st.st_mtime_ns)
            hit = self._cache.get(rel)
            if hit is not None and hit[0] == key:
                info = hit[1]
            else:
                if is_dir:  # a folder's kind depends on its files: key on their times too
                    key = (_marker_time(real), st.st_mtime_ns)
                    hit = self._cache.get(rel)
                    info = hit[1] if hit is not None and hit[0] == key else classify(real, True)
                else:
                    info = classify(real, False)
            cache[rel] = (key, info)
            if info is None:
                continue
            if is_dir and info.get("kind") == "features":
                inner.add(rel + "/")
            entry = dict(info, path=rel, name=rel.rsplit("/", 1)[-1], mtime=st.st_mtime)
            if not is_dir:
                entry["size"] = int(st.st_size)
            entries.append(entry)
        _link_features(entries)
        with self._lock:
            self._cache = cache
            if [(e["path"], e["mtime"]) for e in entries] != [
                (e["path"], e["mtime"]) for e in self._entries
            ]:
                self.generation += 1
            self._entries = entries
            self._scanned_at = time.monotonic()
        self.scan_seconds = time.perf_counter() - t0
        return entries

    def refresh(self, *, force: bool = False) -> list[dict[str, Any]]:
        """The entries, rescanning first when ``poll_interval`` seconds have passed."""
        if force or time.monotonic() - self._scanned_at >= self.poll_interval:
            return self.scan()
        return self.entries()

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._entries)

    def find(self, rel: str) -> dict[str, Any] | None:
        """The entry whose path is ``rel`` (after a refresh), or None."""
        for e in self.refresh():
            if e["path"] == rel:
                return e
        return None


def _marker_time(folder: Path) -> int:
    """Latest mtime of the files that make a folder an SAE or FeatureData folder."""
    best = 0
    for name in ("index.json", "cfg.json", "sae_weights.safetensors", "explanations.json"):
        try:
            best = max(best, os.stat(folder / name).st_mtime_ns)
        except OSError:
            pass
    return best


def _link_features(entries: list[dict[str, Any]]) -> None:
    """Attach to each SAE the FeatureData folders inside it, or beside it for its site."""
    features = [e for e in entries if e["kind"] == "features" and "error" not in e]
    for sae in entries:
        if sae["kind"] != "sae" or "error" in sae:
            continue
        parent = sae["path"].rsplit("/", 1)[0] if "/" in sae["path"] else ""
        hook, width = sae["cfg"].get("hook_name"), sae["cfg"].get("d_sae")
        sae["features"] = []  # a fresh list: the cached info is shared between scans
        for f in features:
            f_parent = f["path"].rsplit("/", 1)[0] if "/" in f["path"] else ""
            beside = f_parent == parent and f["site"] == hook and f["d_sae"] == width
            if f["path"].startswith(sae["path"] + "/") or beside:
                sae["features"].append(f["path"])
