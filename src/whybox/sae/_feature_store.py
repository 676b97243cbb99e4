"""FeatureData: per-latent feature-page data, in memory or memory-mapped from a folder.

Written by :func:`whybox.sae.features.feature_data`; read one latent at a time by the
dashboard and the reports (see :class:`FeatureData` for the folder layout). No pickle: arrays
are ``.npy`` files opened with ``allow_pickle=False``, everything else JSON.

References
----------
McDougall, C. (2024). SAE-Vis / SAEDashboard: feature-centric dashboards for sparse
autoencoders.
Lin, J. & Bloom, J. (2023). Neuronpedia: an open platform for interpretability research.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from whybox._validation import check_int
from whybox.errors import InvalidInputError, InvalidParameterError

__all__ = ["FeatureData", "is_feature_folder"]

_FORMAT = "whybox.FeatureData"
_VERSION = 1


class FeatureData:
    """Per-latent feature-page data, in memory or memory-mapped from a saved folder.

    On disk (``save(folder)``) a folder holds ``index.json`` (format, counts, settings, notes and
    every array's file, dtype and shape), one ``.npy`` file per array with the latent on
    axis 0, ``vocab.json`` (the string of every token id, when a tokenizer was given) and
    ``explanations.json`` (``{"<  latent>": {"text": ..., "score": ...}}``, when set).
    ``FeatureData.load(folder)`` maps the arrays lazily, so reading one latent's page reads its rows only.

    Arrays (``D = d_sae``, ``W = left + 1 + right``, ``Q = n_quantiles``, ``R =
    examples_per_quantile``; padding: token ``-1``, activation ``0``, sequence ``-1``):

    ============================== ================ =============================================
    ``density``                    (D,) float64     fraction of tokens where the latent fires
    ``n_firing``                   (D,) int64       tokens where it fires
    ``mean_activation``            (D,) float32     mean over firing tokens
    ``max_activation``             (D,) float32
    ``range_exponent``             (D,) int32       range ``[0, 2**e)`` of histogram/intervals
    ``hist_counts``                (D, n_bins)      firing tokens per bin
    ``interval_counts``            (D, Q)           firing tokens per interval
    ``top_values``                 (D, n_top)       top activations, descending
    ``top_seq``, ``top_pos``       (D, n_top)       where (sequence, position)
    ``top_tokens``, ``top_acts``   (D, n_top, W)    window token ids and the latent's activations
    ``interval_*``                 (D, Q, R[, W])   the same for the interval samples
    ``logit_pos_ids/vals``         (D, n_logits)    promoted tokens (if the model has logits)
    ``logit_neg_ids/vals``         (D, n_logits)    suppressed tokens
    ``nearest_ids/cos``            (D, n_nearest)   nearest latents by decoder cosine
    ``cooc_indptr/indices/counts`` CSR              co-firing token counts (diagonal left out)
    ============================== ================ =============================================

    Parameters
    ----------
    meta : mapping
        Counts and settings: ``d_sae``, ``site``, ``n_tokens``, ``n_bins``,
        ``n_quantiles``, ``has_logits``, ... (the ``index.json`` of a saved folder).
    arrays : mapping of str to ndarray
        The arrays above, by name (latent on axis 0).
    vocab : sequence of str, optional
        The string of every token id.
    explanations : mapping, optional
        ``{"<latent>": {"text": ..., "score": ...}}``.
    folder : Path, optional
        The saved folder the arrays are read from lazily (set by ``load``).

    Raises
    ------
    InvalidParameterError
        ``array`` of a name not stored, a latent index outside ``0 .. d_sae - 1``.
    InvalidInputError
        ``load`` of a folder that is not a saved feature store.

    Examples
    --------
    >>> data = wb.sae.demo_sae().feature_data            # made by feature_data()
    >>> data
    FeatureData(1024 latents at 'blocks.2.resid_post', 9976 tokens, logits=yes)
    >>> data.array("density").shape, data.array("top_values").shape   # (D,), (D, n_top)
    ((1024,), (1024, 20))
    >>> bool(np.all(np.diff(data.array("top_values")[0]) <= 0))  # top activations descend
    True
    >>> sorted(data.feature(0))[:4]                      # one latent's page, JSON-able
    ['cooccurring', 'density', 'explanation', 'histogram']

    References
    ----------
    Bricken, T. et al. (2023). Towards Monosemanticity: Decomposing Language Models With
    Dictionary Learning. Transformer Circuits Thread (the contents of a feature page).
    """

    def __init__(
        self,
        meta: Mapping[str, Any],
        arrays: Mapping[str, np.ndarray],
        *,
        vocab: Sequence[str] | None = None,
        explanations: Mapping[str, Any] | None = None,
        folder: Path | None = None,
    ) -> None:
        self.meta = dict(meta)
        self._arrays: dict[str, Any] = dict(arrays)
        self._vocab = None if vocab is None else list(vocab)
        self._explanations = None if explanations is None else dict(explanations)
        self._folder = folder

    # ---------------------------------------------------------------- access ----
    def __len__(self) -> int:
        return int(self.meta["d_sae"])

    def __repr__(self) -> str:
        m = self.meta
        return (
            f"FeatureData({m['d_sae']} latents at {m['site']!r}, {m['n_tokens']} tokens, "
            f"logits={'yes' if m.get('has_logits') else 'no'})"
        )

    @property
    def names(self) -> list[str]:
        """Names of the stored arrays."""
        if self._folder is not None:
            return list(self.meta["arrays"])
        return list(self._arrays)

    def array(self, name: str) -> np.ndarray:
        """One stored array (memory-mapped when loaded from a folder)."""
        if name not in self._arrays:
            if self._folder is None or name not in self.meta.get("arrays", {}):
                raise InvalidParameterError(
                    f"no array named {name!r}; the data holds {', '.join(self.names)}."
                )
            path = self._folder / self.meta["arrays"][name]["file"]
            self._arrays[name] = np.load(path, mmap_mode="r", allow_pickle=False)
        return self._arrays[name]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self.__dict__.get("meta", {}).get("arrays", {}) or name in self.__dict__.get(
            "_arrays", {}
        ):
            return self.array(name)
        raise AttributeError(name)

    @property
    def vocab(self) -> list[str] | None:
        """The string of every token id, or None when no tokenizer was given."""
        if self._vocab is None and self._folder is not None and self.meta.get("has_vocab"):
            self._vocab = json.loads((self._folder / "vocab.json").read_text("utf-8"))
        return self._vocab

    @property
    def explanations(self) -> dict[str, Any]:
        """``{"<latent>": {"text": str, "score": float or None}}`` (autointerp or hand)."""
        if self._explanations is None:
            path = None if self._folder is None else self._folder / "explanations.json"
            self._explanations = (
                json.loads(path.read_text("utf-8")) if path is not None and path.exists() else {}
            )
        return self._explanations

    def set_explanations(self, explanations: Mapping[int, Any]) -> FeatureData:
        """Attach explanations: ``{latent: text}``, ``{latent: (text, score)}`` or
        ``{latent: {"text": ..., "score": ...}}``; saved by :meth:`save`."""
        out = dict(self.explanations)
        for j, value in explanations.items():
            j = self._check_latent(j)
            if isinstance(value, str):
                text, score = value, None
            elif isinstance(value, Mapping):
                text, score = value.get("text"), value.get("score")
            elif isinstance(value, Sequence) and len(value) == 2:
                text, score = value
            else:
                raise InvalidParameterError(
                    f"the explanation of latent {j} must be a str, (text, score) or "
                    f"{{'text': ..., 'score': ...}}, got {type(value).__name__}."
                )
            out[str(j)] = {"text": str(text), "score": None if score is None else float(score)}
        self._explanations = out
        return self

    def _check_latent(self, j: Any) -> int:
        if isinstance(j, bool) or not isinstance(j, (int, np.integer)) or not 0 <= j < len(self):
            raise InvalidParameterError(
                f"latent {j!r} is out of range: the SAE has {len(self)} latents (0 to "
                f"{len(self) - 1})."
            )
        return int(j)

    def _tokens(self, ids: np.ndarray) -> list[str | None] | None:
        vocab = self.vocab
        if vocab is None:
            return None
        return [vocab[int(i)] if 0 <= int(i) < len(vocab) else None for i in ids]

    def _context(self, seq: int, pos: int, value: float, toks: Any, acts: Any) -> dict:
        keep = np.asarray(toks) >= 0
        ids = np.asarray(toks)[keep]
        return {
            "seq": int(seq),
            "pos": int(pos),
            "activation": float(value),
            "center": int(
                self.meta["context_window"][0] - np.sum(~keep[: self.meta["context_window"][0]])
            ),
            "token_ids": [int(i) for i in ids],
            "tokens": self._tokens(ids),
            "activations": [float(a) for a in np.asarray(acts)[keep]],
        }

    # ---------------------------------------------------------------- pages ----
    def feature(self, j: int, *, n_cooccurring: int = 10) -> dict[str, Any]:
        """One latent's page data as a JSON-able dict (token strings as stored: escaping
        them is the renderer's job)."""
        j = self._check_latent(j)
        m = self.meta
        scale = 2.0 ** int(self.array("range_exponent")[j])
        n_bins, n_q = int(m["n_bins"]), int(m["n_quantiles"])
        top = [
            self._context(s, p, v, t, a)
            for s, p, v, t, a in zip(
                self.array("top_seq")[j], self.array("top_pos")[j], self.array("top_values")[j],
                self.array("top_tokens")[j], self.array("top_acts")[j], strict=True,
            )
            if s >= 0
        ]  # fmt: skip
        intervals = []
        counts = self.array("interval_counts")[j]
        for q in range(n_q - 1, -1, -1):
            seq, vals = self.array("interval_seq")[j, q], self.array("interval_values")[j, q]
            order = np.argsort(-np.asarray(vals), kind="stable")
            examples = [
                self._context(seq[r], self.array("interval_pos")[j, q, r], vals[r],
                              self.array("interval_tokens")[j, q, r],
                              self.array("interval_acts")[j, q, r])
                for r in order if seq[r] >= 0
            ]  # fmt: skip
            if int(counts[q]):
                intervals.append({
                    "low": q * scale / n_q, "high": (q + 1) * scale / n_q,
                    "n_firing": int(counts[q]), "examples": examples,
                })  # fmt: skip
        page: dict[str, Any] = {
            "index": j,
            "site": m["site"],
            "density": float(self.array("density")[j]),
            "n_firing": int(self.array("n_firing")[j]),
            "n_tokens": int(m["n_tokens"]),
            "mean_activation": float(self.array("mean_activation")[j]),
            "max_activation": float(self.array("max_activation")[j]),
            "histogram": {
                "edges": [float(e) for e in np.arange(n_bins + 1) * scale / n_bins],
                "counts": [int(c) for c in self.array("hist_counts")[j]],
            },
            "top_contexts": top,
            "intervals": intervals,
            "logits": None,
            "nearest": None,
            "cooccurring": None,
            "explanation": self.explanations.get(str(j)),
        }
        if m.get("has_logits"):
            page["logits"] = {
                side: [
                    {"token_id": int(i), "token": t, "value": float(v)}
                    for i, t, v in zip(ids, self._tokens(ids) or [None] * len(ids), vals,
                                       strict=True)
                ]
                for side, ids, vals in (
                    ("promoted", self.array("logit_pos_ids")[j], self.array("logit_pos_vals")[j]),
                    ("suppressed", self.array("logit_neg_ids")[j], self.array("logit_neg_vals")[j]),
                )
            }  # fmt: skip
        if "nearest_ids" in self.names:
            page["nearest"] = [
                {"index": int(i), "cosine": float(c)}
                for i, c in zip(self.array("nearest_ids")[j], self.array("nearest_cos")[j],
                                strict=True)
            ]  # fmt: skip
        if m.get("has_cooccurrence"):
            a, b = self.array("cooc_indptr")[j : j + 2]
            idx = np.asarray(self.array("cooc_indices")[a:b])
            cnt = np.asarray(self.array("cooc_counts")[a:b])
            order = np.lexsort((idx, -cnt))[:n_cooccurring]
            n_j = max(page["n_firing"], 1)
            page["cooccurring"] = [
                {"index": int(idx[o]), "count": int(cnt[o]), "fraction": float(cnt[o] / n_j)}
                for o in order
            ]
        return page

    def features(
        self, offset: int = 0, limit: int = 50, *, order: str = "index", descending: bool = True
    ) -> dict[str, Any]:
        """A page of latent summaries for a list view, never loading the per-latent
        contexts: ``{"total", "offset", "items": [{index, density, max_activation,
        explanation, top_token}]}``; ``order`` is ``"index"``, ``"density"`` or
        ``"max_activation"``."""
        offset = check_int("offset", offset, minimum=0)
        limit = check_int("limit", limit, minimum=0, maximum=10_000)
        if order not in ("index", "density", "max_activation"):
            raise InvalidParameterError(
                f"order={order!r}: use 'index', 'density' or 'max_activation'."
            )
        if order == "index":
            chosen = np.arange(offset, min(offset + limit, len(self)))
        else:
            key = np.asarray(self.array(order), dtype=np.float64)
            ranked = np.lexsort((np.arange(len(key)), -key if descending else key))
            chosen = ranked[offset : offset + limit]
        items = []
        for j in chosen:
            j = int(j)
            tok = int(self.array("top_tokens")[j, 0, self.meta["context_window"][0]])
            items.append({
                "index": j,
                "density": float(self.array("density")[j]),
                "max_activation": float(self.array("max_activation")[j]),
                "top_token": None if tok < 0 or self.vocab is None else self.vocab[tok],
                "explanation": self.explanations.get(str(j)),
            })  # fmt: skip
        return {"total": len(self), "offset": offset, "items": items}

    def search(self, token: Any = None, *, text: str | None = None, limit: int = 50) -> list[int]:
        """Latents whose top-activating tokens or promoted tokens include ``token`` (a token
        id, or a string matched against the token strings, also with surrounding spaces
        stripped), ranked by how many of their top contexts peak on it then by promotion;
        or whose explanation contains ``text`` (case-insensitive)."""
        limit = check_int("limit", limit, minimum=1)
        if (token is None) == (text is None):
            raise InvalidParameterError("search needs exactly one of token= or text=.")
        if text is not None:
            needle = str(text).casefold()
            hits = [int(j) for j, e in self.explanations.items()
                    if needle in str(e.get("text", "")).casefold()]  # fmt: skip
            return sorted(hits)[:limit]
        if isinstance(token, (int, np.integer)) and not isinstance(token, bool):
            wanted = np.array([int(token)])
        elif isinstance(token, str):
            vocab = self.vocab
            if vocab is None:
                raise InvalidParameterError(
                    "this data has no token strings (no tokenizer was given): search by "
                    "token id instead."
                )
            wanted = np.array([i for i, s in enumerate(vocab)
                               if s == token or s.strip() == token.strip()], dtype=np.int64)  # fmt: skip
        else:
            raise InvalidParameterError(f"token must be an int id or a str, got {token!r}.")
        centre = np.asarray(self.array("top_tokens")[:, :, self.meta["context_window"][0]])
        score = np.isin(centre, wanted).sum(axis=1).astype(np.float64)
        if self.meta.get("has_logits"):
            promoted = np.isin(np.asarray(self.array("logit_pos_ids")), wanted).any(axis=1)
            score = score + 0.5 * promoted
        hits = np.nonzero(score > 0)[0]
        ranked = hits[np.lexsort((hits, -score[hits]))]
        return [int(j) for j in ranked[:limit]]

    def to_frame(self) -> Any:
        """One row per latent: n_firing, density, mean and max activation, the top promoted
        token and the explanation (a pandas DataFrame indexed by latent)."""
        import pandas as pd

        frame = pd.DataFrame({
            name: np.asarray(self.array(name))
            for name in ("n_firing", "density", "mean_activation", "max_activation")
        })  # fmt: skip
        if self.meta.get("has_logits"):
            ids = np.asarray(self.array("logit_pos_ids"))[:, 0]
            frame["top_promoted"] = self._tokens(ids) or ids
        texts = self.explanations
        frame["explanation"] = [texts.get(str(j), {}).get("text") for j in range(len(self))]
        frame.index.name = "latent"
        return frame

    # ---------------------------------------------------------------- files ----
    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the folder (atomically: a finished folder or the previous one, never a
        half-written one). An existing folder is replaced only if it holds FeatureData."""
        folder = Path(folder)
        if (
            folder.exists()
            and not is_feature_folder(folder)
            and (not folder.is_dir() or any(folder.iterdir()))
        ):
            raise InvalidParameterError(
                f"{str(folder)!r} exists and is not a saved FeatureData folder: choose a "
                "new folder (an existing one is only replaced if it holds FeatureData)."
            )
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.parent / f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            table = {}
            for name in self.names:
                arr = np.ascontiguousarray(self.array(name))
                np.save(tmp / f"{name}.npy", arr, allow_pickle=False)
                table[name] = {"file": f"{name}.npy", "dtype": str(arr.dtype),
                               "shape": list(arr.shape)}  # fmt: skip
            meta = dict(self.meta, format=_FORMAT, version=_VERSION, arrays=table,
                        has_vocab=self.vocab is not None)  # fmt: skip
            if self.vocab is not None:
                (tmp / "vocab.json").write_text(json.dumps(self.vocab), "utf-8")
            if self.explanations:
                (tmp / "explanations.json").write_text(json.dumps(self.explanations), "utf-8")
            (tmp / "index.json").write_text(json.dumps(meta, indent=1), "utf-8")
            old = None
            if folder.exists():
                old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
                os.replace(folder, old)
            os.replace(tmp, folder)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> FeatureData:
        """Open a saved folder; arrays are memory-mapped on first use."""
        folder = Path(folder)
        if not is_feature_folder(folder):
            raise InvalidInputError(
                f"{str(folder)!r} is not a FeatureData folder (no index.json of format "
                f"{_FORMAT!r}): write one with feature_data(...).save(folder)."
            )
        meta = json.loads((folder / "index.json").read_text("utf-8"))
        if int(meta.get("version", 0)) > _VERSION:
            raise InvalidInputError(
                f"{str(folder)!r} was written by a newer whybox (format version "
                f"{meta['version']}, this one reads {_VERSION}): upgrade whybox."
            )
        for name, spec in meta["arrays"].items():
            file = folder / str(spec.get("file", ""))
            if file.parent != folder or not file.is_file():
                raise InvalidInputError(f"{str(folder)!r}: array {name!r} file is missing.")
        return cls(meta, {}, folder=folder)


def is_feature_folder(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds saved FeatureData (an ``index.json`` of its format)."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "index.json").read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") == _FORMAT
