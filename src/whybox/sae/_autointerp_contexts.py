"""Where autointerp's contexts come from (see :mod:`whybox.sae.autointerp`): per latent, the
train (top-activating) windows, held-out activating windows and non-activating windows, from
FeatureData, any (tokens, activations) arrays, or an MLP neuron through ``run_with_cache``.

References
----------
Paulo, G., Mallen, A., Juang, C. & Belrose, N. (2024). Automatically interpreting millions of
features in large language models. arXiv:2410.13928 (delphi: train on top contexts, test on
sampled activating and random non-activating contexts).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from whybox._validation import check_int, check_random_state
from whybox.errors import InvalidInputError, InvalidParameterError

__all__ = ["Context", "FeatureContexts", "as_contexts", "neuron_contexts", "select_latents"]


# --------------------------------------------------------------------------- contexts


@dataclass(frozen=True)
class Context:
    """A window of tokens and one latent's activation on each.

    Attributes
    ----------
    tokens : tuple of str (L,)
    activations : ndarray (L,) or None
        None where unknown (a FeatureData window of another latent: only its centre is
        known to be silent).
    label : int
        1 for an activating context, 0 for a non-activating one.
    """

    tokens: tuple[str, ...]
    activations: np.ndarray | None
    label: int

    @property
    def text(self) -> str:
        """The tokens joined (their own spaces kept)."""
        return "".join(self.tokens)


def _window(row: Sequence[Any], pos: int, left: int, right: int) -> slice:
    return slice(max(pos - left, 0), min(pos + right + 1, len(row)))


class FeatureContexts:
    """Train / test / non-activating contexts per latent (see the module notes).

    Build with :meth:`from_arrays`, :meth:`from_feature_data` or :func:`neuron_contexts`;
    :meth:`latent` returns ``{"train", "test", "negative"}`` lists of :class:`Context`.
    """

    def __init__(self, n_latents: int, getter: Any, background: Counter, source: str,
                 feature_data: Any = None) -> None:  # fmt: skip
        self.n_latents = int(n_latents)
        self._get = getter
        self._cache: dict[int, dict[str, list[Context]]] = {}
        self.background = background
        self.source = source
        self.feature_data = feature_data

    def __repr__(self) -> str:
        return f"FeatureContexts({self.n_latents} latents from {self.source})"

    def check_latent(self, j: Any) -> int:
        if isinstance(j, bool) or not isinstance(j, (int, np.integer)):
            raise InvalidParameterError(f"latents must be ints, got {j!r}.")
        if not 0 <= int(j) < self.n_latents:
            raise InvalidParameterError(
                f"latent {int(j)} is out of range: the data has {self.n_latents} latents "
                f"(0 to {self.n_latents - 1})."
            )
        return int(j)

    def latent(self, j: int) -> dict[str, list[Context]]:
        j = self.check_latent(j)
        if j not in self._cache:
            self._cache[j] = self._get(j)
        return self._cache[j]

    # ------------------------------------------------------------------ builders ----
    @classmethod
    def from_arrays(
        cls, tokens: Any, activations: Any, *, vocab: Sequence[str] | None = None,
        n_examples: int = 10, n_test: int = 20, n_negative: int = 20,
        window: tuple[int, int] = (8, 4), random_state: Any = 0,
    ) -> FeatureContexts:  # fmt: skip
        """Contexts from token rows and activations (exact activations everywhere).

        Parameters
        ----------
        tokens : (n_seq, T) token ids (with ``vocab``) or list of lists of str
        activations : array (n_seq, T, n_latents) or (n_seq, T) for one latent / neuron
        n_examples : int
            Top-activating windows (non-overlapping) kept to explain from.
        n_test : int
            Held-out activating windows drawn uniformly among the other firing tokens.
        n_negative : int
            Windows drawn uniformly among those where the latent never fires.
        window : (left, right)
            Tokens kept before and after the centre token.
        random_state : int
            Seeds the draws (latent ``j`` uses its own stream: order-independent).
        """
        acts = np.asarray(activations)  # kept in its dtype (no float64 copy of the whole)
        if acts.dtype.kind not in "fiub":
            raise InvalidInputError(
                f"activations must be numbers, got dtype {acts.dtype}; pass a float array."
            )
        if acts.ndim == 2:
            acts = acts[:, :, None]
        rows = _token_rows(tokens, vocab)
        if acts.ndim != 3 or acts.shape[0] != len(rows) or acts.shape[0] == 0:
            raise InvalidInputError(
                f"activations must have shape (n_seq, T, n_latents) or (n_seq, T) matching "
                f"the {len(rows)} token rows, got {acts.shape}."
            )
        if any(len(r) != acts.shape[1] for r in rows):
            raise InvalidInputError(
                f"every token row must hold T = {acts.shape[1]} tokens, one per activation."
            )
        if not np.all(np.isfinite(acts)):
            raise InvalidInputError("activations hold NaN or inf: pass finite values.")
        n_examples, n_test, n_negative = (check_int(name, v, minimum=1) for name, v in (
            ("n_examples", n_examples), ("n_test", n_test), ("n_negative", n_negative)))  # fmt: skip
        left, right = _check_window(window)
        seed = int(check_random_state(random_state).integers(2**31))
        T = acts.shape[1]

        def ctx(flat: int, a2: np.ndarray, label: int) -> Context:
            s, p = divmod(int(flat), T)
            w = _window(rows[s], p, left, right)
            return Context(tuple(rows[s][w]), a2[s, w].astype(np.float64), label)

        def getter(j: int) -> dict[str, list[Context]]:
            a2 = acts[:, :, j]
            flat = a2.reshape(-1)
            firing = np.flatnonzero(flat > 0)
            if len(firing) == 0:
                raise InvalidInputError(
                    f"latent {j} never fires (activation > 0) on these tokens: there are no "
                    "contexts to explain it from; pass more tokens or another latent."
                )
            order = firing[np.lexsort((firing, -flat[firing]))]
            taken: list[int] = []
            for f in order:  # non-overlapping top windows
                s, p = divmod(int(f), T)
                if all(s != t // T or abs(p - t % T) > left + right for t in taken):
                    taken.append(int(f))
                if len(taken) == n_examples:
                    break
            rng = np.random.default_rng([seed, j])
            rest = np.setdiff1d(firing, taken)
            test = rng.choice(rest, min(n_test, len(rest)), replace=False) if len(rest) else []
            # windows where the latent is silent throughout
            silent = np.ones_like(a2, dtype=bool)
            for d in range(-right, left + 1):
                on = a2 > 0
                shifted = np.zeros_like(on)
                if d >= 0:
                    shifted[:, d:] = on[:, : T - d] if d else on
                else:
                    shifted[:, :d] = on[:, -d:]
                silent &= ~shifted
            quiet = np.flatnonzero(silent.reshape(-1))
            neg = rng.choice(quiet, min(n_negative, len(quiet)), replace=False)
            return {
                "train": [ctx(f, a2, 1) for f in taken],
                "test": [ctx(f, a2, 1) for f in np.sort(test)],
                "negative": [ctx(f, a2, 0) for f in np.sort(neg)],
            }

        background = Counter(t for r in rows for t in r)
        return cls(acts.shape[2], getter, background, "arrays")

    @classmethod
    def from_feature_data(
        cls, fd: Any, *, n_examples: int = 10, n_negative: int = 20, random_state: Any = 0
    ) -> FeatureContexts:
        """Contexts from :class:`~whybox.sae.features.FeatureData`: the first ``n_examples``
        top contexts to explain from; the other top contexts and the interval samples as
        held-out activating ones; as non-activating ones, the top windows of the other
        latents that fire least often on a token together with this one (by the co-occurrence
        counts: never, where there are enough; without them, random other latents), whose
        activations under this latent are not stored (``activations`` None: they enter
        detection and the embedding scorer, not simulation or fuzzing)."""
        n_examples = check_int("n_examples", n_examples, minimum=1)
        n_negative = check_int("n_negative", n_negative, minimum=1)
        seed = int(check_random_state(random_state).integers(2**31))
        vocab = fd.vocab
        D = len(fd)
        cooc = bool(fd.meta.get("has_cooccurrence"))

        def strings(ids: np.ndarray) -> tuple[str, ...]:
            keep = ids[ids >= 0]
            if vocab is None:
                return tuple(f"<{int(i)}>" for i in keep)
            return tuple(vocab[int(i)] if int(i) < len(vocab) else f"<{int(i)}>" for i in keep)

        def windows(seq: Any, pos: Any, toks: Any, acts: Any, seen: set) -> list:
            out = []
            for s, p, t, a in zip(seq, pos, toks, acts, strict=True):
                if s >= 0 and (int(s), int(p)) not in seen:
                    seen.add((int(s), int(p)))
                    t = np.asarray(t)
                    out.append(Context(strings(t), np.asarray(a, dtype=np.float64)[t >= 0], 1))
            return out

        def getter(j: int) -> dict[str, list[Context]]:
            seen: set = set()
            top = windows(fd.array("top_seq")[j], fd.array("top_pos")[j],
                          fd.array("top_tokens")[j], fd.array("top_acts")[j], seen)  # fmt: skip
            if not top:
                raise InvalidInputError(
                    f"latent {j} has no top-activating contexts (it never fired on the data "
                    "feature_data saw): choose a latent with n_firing > 0."
                )
            width = int(fd.array("interval_tokens").shape[-1])
            inter = windows(np.asarray(fd.array("interval_seq")[j]).reshape(-1),
                            np.asarray(fd.array("interval_pos")[j]).reshape(-1),
                            np.asarray(fd.array("interval_tokens")[j]).reshape(-1, width),
                            np.asarray(fd.array("interval_acts")[j]).reshape(-1, width), seen)  # fmt: skip
            others = np.array([k for k in range(D) if k != j and fd.array("top_seq")[k, 0] >= 0],
                              dtype=np.int64)  # fmt: skip
            rng = np.random.default_rng([seed, j])
            count = np.zeros(D)
            if cooc:  # the least co-firing latents first (never, where there are enough)
                a, b = fd.array("cooc_indptr")[j : j + 2]
                count[np.asarray(fd.array("cooc_indices")[a:b])] = fd.array("cooc_counts")[a:b]
            order = np.lexsort((rng.random(len(others)), count[others]))
            pick = others[order[:n_negative]]
            neg = [Context(strings(np.asarray(fd.array("top_tokens")[k, 0])), None, 0)
                   for k in np.sort(pick)]  # fmt: skip
            return {"train": top[:n_examples], "test": top[n_examples:] + inter, "negative": neg}

        tok = np.asarray(fd.array("top_tokens")).reshape(-1)
        background = Counter(strings(tok))
        return cls(D, getter, background, "feature data", feature_data=fd)


def _check_window(window: Any) -> tuple[int, int]:
    if (not isinstance(window, Sequence) or len(window) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in window)):  # fmt: skip
        raise InvalidParameterError(f"window must be (left, right), two ints >= 0, got {window!r}.")
    return int(window[0]), int(window[1])


def _token_rows(tokens: Any, vocab: Sequence[str] | None) -> list[np.ndarray]:
    if (
        isinstance(tokens, Sequence)
        and tokens
        and all(
            isinstance(r, Sequence)
            and not isinstance(r, str)
            and all(isinstance(t, str) for t in r)
            for r in tokens
        )
    ):
        return [np.array(list(r), dtype=object) for r in tokens]
    ids = np.asarray(tokens)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise InvalidInputError(
            "tokens must be (n_seq, T) token ids (with vocab=) or a list of lists of token "
            f"strings, got {type(tokens).__name__}."
        )
    if vocab is None:
        return [np.array([f"<{int(i)}>" for i in r], dtype=object) for r in ids]
    if ids.size and (ids.min() < 0 or ids.max() >= len(vocab)):
        raise InvalidInputError(f"token ids must lie in [0, {len(vocab)}) for this vocab.")
    v = np.array(list(vocab), dtype=object)
    return [v[r] for r in ids]


def neuron_contexts(
    model: Any, inputs: Any, site: str, *, tokenizer: Any = None, **kwargs: Any
) -> FeatureContexts:
    """Contexts of every neuron at ``site`` (e.g. ``"blocks.1.mlp.post"``, the MLP's hidden
    units) from ``run_with_cache``: latent ``j`` is neuron ``j``. Neurons can be negative;
    their positive part is what "activating" means here (as for ReLU/GELU units).

    Parameters
    ----------
    model : torch.nn.Module
    inputs : LongTensor (n_seq, T) of token ids
    site : str
        A hook name :func:`~whybox.internals.cache.run_with_cache` understands.
    tokenizer : optional
        Gives the token strings (else ``<id>``).
    **kwargs
        Passed to :meth:`FeatureContexts.from_arrays`.
    """
    from whybox.internals.cache import run_with_cache

    _, cache = run_with_cache(model, inputs, names=[site])
    acts = cache[site].float().numpy()
    if acts.ndim != 3:
        raise InvalidParameterError(
            f"the site {site!r} gives activations of shape {tuple(acts.shape)}; pass a "
            "(batch, pos, d) site such as 'blocks.0.mlp.post'."
        )
    ids = np.asarray(inputs.cpu().numpy() if hasattr(inputs, "cpu") else inputs)
    vocab = None
    if tokenizer is not None:
        uniq = np.unique(ids)
        strings = tokenizer.batch_decode([[int(i)] for i in uniq])
        vocab = [""] * (int(uniq.max()) + 1)
        for i, s in zip(uniq, strings, strict=True):
            vocab[int(i)] = str(s)
    return FeatureContexts.from_arrays(ids, np.maximum(acts, 0.0), vocab=vocab, **kwargs)


def as_contexts(data: Any, n_examples: int, random_state: Any) -> FeatureContexts:
    if isinstance(data, FeatureContexts):
        return data
    from whybox.sae.features import FeatureData, is_feature_folder

    if isinstance(data, (str, os.PathLike)) and is_feature_folder(data):
        data = FeatureData.load(data)
    if isinstance(data, FeatureData):
        return FeatureContexts.from_feature_data(data, n_examples=n_examples,
                                                 random_state=random_state)  # fmt: skip
    if isinstance(data, tuple) and len(data) == 2:
        return FeatureContexts.from_arrays(*data, n_examples=n_examples, random_state=random_state)
    raise InvalidInputError(
        f"cannot read contexts from {type(data).__name__}: pass a FeatureData (or its saved "
        "folder), FeatureContexts, or a (tokens, activations) pair."
    )


def select_latents(ctx: FeatureContexts, latents: Any) -> list[int]:
    if latents is None:
        return list(range(ctx.n_latents))
    if isinstance(latents, (int, np.integer)) and not isinstance(latents, bool):
        latents = [latents]
    out = [ctx.check_latent(j) for j in latents]
    if not out:
        raise InvalidInputError("no latents given: pass at least one latent index.")
    return out
