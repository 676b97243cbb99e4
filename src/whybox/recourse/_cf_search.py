"""Search internals of :mod:`whybox.recourse.counterfactuals`: pure array code.

Rows are encoded as float vectors ``z`` of length ``p``: numeric features hold their values,
categorical features the index of their category. A :class:`Space` holds everything the
search needs about one query (its encoding ``x0``, the per-feature scales and the constraints
for this query), and :meth:`Space.project` maps any batch of rows onto the feasible set, so
every candidate is feasible before the model ever sees it. The model is seen only through an
:class:`Oracle`, ``Z (m, p) -> margin (m,)``: a candidate is valid when its margin is at or
above zero (strictly above for argmax decisions).

References
----------
Laugel, T., Lesot, M.-J., Marsala, C., Renard, X. and Detyniecki, M. (2018). Comparison-based
inverse classification for interpretability in machine learning (growing spheres). IPMU.

Mothilal, R. K., Sharma, A. and Tan, C. (2020). Explaining machine learning classifiers
through diverse counterfactual explanations (DiCE). FAT* 2020.

Wachter, S., Mittelstadt, B. and Russell, C. (2017). Counterfactual explanations without
opening the black box: automated decisions and the GDPR. Harvard Journal of Law & Technology
31(2).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import MissingDependencyError

__all__ = ["Oracle", "Pool", "Space", "gradient_starts", "run_gradient", "run_search"]


@dataclass
class Space:
    """The feasible set around one query, in the encoded space.

    Attributes
    ----------
    x0 : ndarray of shape (p,)
        The encoded query.
    is_cat, is_int : ndarray of bool, shape (p,)
        Categorical features (values are category indices) and integer-valued numeric ones.
    scale : ndarray of shape (p,)
        Unit of distance of each numeric feature (1 for categorical ones).
    lo, hi : ndarray of shape (p,)
        Values a numeric feature may be changed to; a feature with ``lo > hi`` cannot change.
        The query's own value is always feasible (keeping a feature is always possible).
    allowed : dict of int to ndarray of bool
        For each categorical feature, the category indices it may be changed to (the query's
        category is always allowed as the value it keeps).
    """

    x0: np.ndarray
    is_cat: np.ndarray
    is_int: np.ndarray
    scale: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    allowed: dict[int, np.ndarray]
    num: np.ndarray = field(init=False)
    cat: np.ndarray = field(init=False)
    mutable: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.num = np.flatnonzero(~self.is_cat)
        self.cat = np.flatnonzero(self.is_cat)
        mut = np.zeros(len(self.x0), dtype=bool)
        for j in self.num:
            mut[j] = self.lo[j] < self.hi[j] or (
                self.lo[j] == self.hi[j] and self.lo[j] != self.x0[j]
            )
        for j in self.cat:
            others = self.allowed[j].copy()
            others[int(self.x0[j])] = False
            mut[j] = bool(others.any())
        self.mutable = mut

    @property
    def p(self) -> int:
        return len(self.x0)

    def project(self, Z: np.ndarray) -> np.ndarray:
        """Map rows (m, p) onto the feasible set: clip, round, revert what may not change."""
        Z = np.array(Z, dtype=float, copy=True)
        if Z.ndim == 1:
            Z = Z[None, :]
        num = self.num
        if len(num):
            V = Z[:, num]
            x = self.x0[num]
            lo, hi = self.lo[num], self.hi[num]
            keep = (V == x) | ~np.isfinite(V)
            C = np.clip(V, lo, hi)
            ints = self.is_int[num]
            if ints.any():
                C[:, ints] = np.clip(np.round(C[:, ints]), lo[ints], hi[ints])
            frozen = lo > hi
            Z[:, num] = np.where(keep | frozen, x, C)
        for j in self.cat:
            codes = Z[:, j]
            ok = np.isfinite(codes) & (codes >= 0) & (codes < len(self.allowed[j]))
            ci = np.where(ok, codes, 0).astype(np.intp)
            ok &= self.allowed[j][ci]
            Z[:, j] = np.where(ok, ci, self.x0[j])
        return Z

    def feasible(self, Z: np.ndarray) -> np.ndarray:
        """Rows (m,) that satisfy every constraint (a final check, independent of project)."""
        ok = np.ones(len(Z), dtype=bool)
        for j in self.num:
            v, x = Z[:, j], self.x0[j]
            inside = (v >= self.lo[j]) & (v <= self.hi[j])
            if self.is_int[j]:
                inside &= v == np.round(v)
            ok &= (v == x) | inside
        for j in self.cat:
            c = Z[:, j].astype(np.intp)
            ok &= (c == int(self.x0[j])) | self.allowed[j][np.clip(c, 0, len(self.allowed[j]) - 1)]
        return ok

    def distance(self, Z: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
        """Scaled L1 distance (m,) of rows to ``ref`` (default the query); mismatch counts 1."""
        ref = self.x0 if ref is None else ref
        d = np.abs(Z[:, self.num] - ref[self.num]) / self.scale[self.num]
        return d.sum(axis=1) + (Z[:, self.cat] != ref[self.cat]).sum(axis=1)

    def pairwise(self, Z: np.ndarray) -> np.ndarray:
        """Scaled L1 distances (m, m) between rows."""
        A = Z[:, self.num] / self.scale[self.num]
        D = np.abs(A[:, None, :] - A[None, :, :]).sum(axis=2)
        if len(self.cat):
            C = Z[:, self.cat]
            D = D + (C[:, None, :] != C[None, :, :]).sum(axis=2)
        return D

    def changed(self, Z: np.ndarray) -> np.ndarray:
        """Which features (m, p) differ from the query."""
        return Z != self.x0[None, :]


class Oracle:
    """Batched model evaluation with a deadline: ``Z (m, p) -> margin (m,)``.

    ``evaluate`` returns the margins and the judged model outputs; a row is valid when its
    margin is ``>= 0`` (``> 0`` when ``strict``). No batch is started that the slowest batch
    so far says would end after the deadline: such rows get the margin ``-inf`` (not valid)
    without calling the model.
    """

    def __init__(
        self,
        evaluate: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
        deadline: float,
        strict: bool,
    ) -> None:
        self._evaluate = evaluate
        self.deadline = deadline
        self.strict = strict
        self.n_calls = 0
        self.n_rows = 0
        self.slowest = 0.0

    def expired(self) -> bool:
        """True when the slowest batch so far would not finish before the deadline."""
        return time.perf_counter() + self.slowest >= self.deadline

    def valid(self, margin: np.ndarray) -> np.ndarray:
        return margin > 0 if self.strict else margin >= 0

    def __call__(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(Z) == 0 or self.expired():  # past the deadline: nothing is evaluated
            return np.full(len(Z), -np.inf), np.full(len(Z), np.nan)
        self.n_calls += 1
        self.n_rows += len(Z)
        t = time.perf_counter()
        out = self._evaluate(Z)
        self.slowest = max(self.slowest, time.perf_counter() - t)
        return out


class Pool:
    """Valid candidates found so far (deduplicated rows with their margins and outputs)."""

    def __init__(self, p: int) -> None:
        self.Z = np.empty((0, p))
        self.margin = np.empty(0)
        self.value = np.empty(0)

    def __len__(self) -> int:
        return len(self.Z)

    def add(self, Z: np.ndarray, margin: np.ndarray, value: np.ndarray) -> None:
        if len(Z) == 0:
            return
        Z = np.vstack([self.Z, Z])
        margin = np.concatenate([self.margin, margin])
        value = np.concatenate([self.value, value])
        _, first = np.unique(Z, axis=0, return_index=True)
        first = np.sort(first)
        self.Z, self.margin, self.value = Z[first], margin[first], value[first]

    def replace(self, Z: np.ndarray, margin: np.ndarray, value: np.ndarray) -> None:
        self.Z = np.empty((0, Z.shape[1]))
        self.margin, self.value = np.empty(0), np.empty(0)
        self.add(Z, margin, value)


# ------------------------------------------------------------------------ search phases
_LINE_T = np.linspace(0.125, 1.0, 8)


def _line_search(space: Space, oracle: Oracle, pool: Pool, S: np.ndarray) -> None:
    """Walk from the query toward each seed; keep the first valid point on each line."""
    if len(S) == 0 or oracle.expired():
        return
    x0 = space.x0
    T = _LINE_T[:, None, None]
    L = x0 + T * (S[None, :, :] - x0)  # (t, seeds, p)
    if len(space.cat):  # categories switch at the midpoint of the line
        L[:, :, space.cat] = np.where(T[:, :, 0:1] >= 0.5, S[None, :, space.cat], x0[space.cat])
    L = space.project(L.reshape(-1, space.p)).reshape(len(_LINE_T), len(S), space.p)
    margin, value = oracle(L.reshape(-1, space.p))
    ok = oracle.valid(margin).reshape(len(_LINE_T), len(S))
    margin, value = margin.reshape(ok.shape), value.reshape(ok.shape)
    for s in np.flatnonzero(ok.any(axis=0)):
        t = int(np.argmax(ok[:, s]))
        pool.add(L[t, s][None, :], margin[t, s : s + 1], value[t, s : s + 1])


_SWEEP = np.array([1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 3 / 8, 1 / 2, 5 / 8, 3 / 4, 7 / 8, 1.0])


def _feature_sweep(space: Space, oracle: Oracle, pool: Pool) -> None:
    """Change one feature at a time (toward each end of its range, or to each category).

    The first valid point of each sweep joins the pool: sparsity-1 counterfactuals, found in
    one batch, whenever they exist.
    """
    if oracle.expired():
        return
    rows, keys = [], []
    for j in np.flatnonzero(space.mutable):
        if space.is_cat[j]:
            for c in np.flatnonzero(space.allowed[j]):
                if c != space.x0[j]:
                    z = space.x0.copy()
                    z[j] = c
                    rows.append(z)
                    keys.append((j, c))
            continue
        for end, sign in ((space.hi[j], 1), (space.lo[j], -1)):
            if (end - space.x0[j]) * sign <= 0:
                continue
            for a in _SWEEP:
                z = space.x0.copy()
                z[j] = space.x0[j] + a * (end - space.x0[j])
                rows.append(z)
                keys.append((j, sign))
    if not rows:
        return
    Z = space.project(np.array(rows))
    margin, value = oracle(Z)
    ok = oracle.valid(margin)
    seen: set[tuple[int, int]] = set()
    for r in np.flatnonzero(ok):
        if keys[r] not in seen:
            seen.add(keys[r])
            pool.add(Z[r : r + 1], margin[r : r + 1], value[r : r + 1])


def _growing_spheres(
    space: Space, oracle: Oracle, pool: Pool, rng: np.random.Generator, needed: int
) -> bool:
    """Sample sparse moves in growing shells around the query until enough are valid.

    Returns True when the whole feasible box was sampled without finding enough.
    """
    mut = np.flatnonzero(space.mutable)
    if len(mut) == 0:
        return True
    num_mut = np.intersect1d(mut, space.num)
    width = np.zeros(space.p)
    width[num_mut] = (space.hi[num_mut] - space.lo[num_mut]) / space.scale[num_mut]
    r_max = float(np.sqrt((width**2).sum()) + len(np.intersect1d(mut, space.cat)))
    r_prev, r, n_full = 0.0, 0.25, 0
    batch = 256
    while not oracle.expired():
        full = r_prev >= r_max
        n_full += full
        if n_full > 4:
            return True
        Z = np.repeat(space.x0[None, :], batch, axis=0)
        k = rng.integers(1, len(mut) + 1, size=batch)
        order = np.argsort(rng.random((batch, len(mut))), axis=1)
        chosen = np.zeros((batch, space.p), dtype=bool)
        rows = np.arange(batch)[:, None]
        chosen[rows, mut[order]] = np.arange(len(mut))[None, :] < k[:, None]
        if len(num_mut):
            if full:  # uniform over the feasible box
                U = rng.uniform(space.lo[num_mut], space.hi[num_mut], size=(batch, len(num_mut)))
            else:
                d = rng.standard_normal((batch, len(num_mut))) * chosen[:, num_mut]
                norm = np.sqrt((d**2).sum(axis=1, keepdims=True))
                d = np.divide(d, norm, out=np.zeros_like(d), where=norm > 0)
                radius = rng.uniform(r_prev, r, size=(batch, 1))
                U = space.x0[num_mut] + d * radius * space.scale[num_mut]
            Z[:, num_mut] = np.where(chosen[:, num_mut], U, space.x0[num_mut])
        for j in np.intersect1d(mut, space.cat):
            options = np.flatnonzero(space.allowed[j])
            pick = options[rng.integers(0, len(options), size=batch)]
            Z[:, j] = np.where(chosen[:, j], pick, space.x0[j])
        Z = space.project(Z)
        margin, value = oracle(Z)
        ok = oracle.valid(margin)
        pool.add(Z[ok], margin[ok], value[ok])
        if len(pool) >= needed:
            return False
        r_prev, r = r, r * 1.6
    return False


def _sparsify(space: Space, oracle: Oracle, Z: np.ndarray, margin: np.ndarray, value):
    """Revert features to the query's values while each row stays valid (DiCE's post-hoc step).

    One batch tries every single revert; a second batch tries, per row, reverting the
    features in decreasing order of the margin their single revert left (prefixes of that
    order), and the longest valid prefix is kept. Repeated until nothing more can revert.
    """
    Z, margin, value = Z.copy(), margin.copy(), value.copy()
    active = np.ones(len(Z), dtype=bool)
    while active.any() and not oracle.expired():
        ch = space.changed(Z) & active[:, None]
        ii, jj = np.nonzero(ch)
        if len(ii) == 0:
            break
        trial = Z[ii].copy()
        trial[np.arange(len(ii)), jj] = space.x0[jj]
        m1, _ = oracle(trial)
        ok1 = oracle.valid(m1)
        rows, prefixes = [], []
        for i in np.flatnonzero(active):
            sel = np.flatnonzero((ii == i) & ok1)
            if len(sel) == 0:
                active[i] = False
                continue
            order = jj[sel[np.argsort(-m1[sel], kind="stable")]]
            for r in range(1, len(order) + 1):
                z = Z[i].copy()
                z[order[:r]] = space.x0[order[:r]]
                rows.append(i)
                prefixes.append(z)
        if not rows:
            break
        P = np.array(prefixes)
        rows_a = np.array(rows)
        m2, v2 = oracle(P)
        ok2 = oracle.valid(m2)
        for i in np.unique(rows_a):
            sel = np.flatnonzero((rows_a == i) & ok2)
            if len(sel) == 0:
                active[i] = False
                continue
            best = sel[-1]  # the longest valid prefix
            Z[i], margin[i], value[i] = P[best], m2[best], v2[best]
    return Z, margin, value


_SHRINK = np.array([0.0625, 0.25, 0.5, 0.75, 0.875, 0.9375, 0.96875])


def _shrink(space: Space, oracle: Oracle, Z, margin, value, rounds: int = 4):
    """Move changed numeric features part of the way back to the query while valid."""
    Z, margin, value = Z.copy(), margin.copy(), value.copy()
    for _ in range(rounds):
        if oracle.expired():
            break
        ch = space.changed(Z)
        ch[:, space.cat] = False
        ii, jj = np.nonzero(ch)
        if len(ii) == 0:
            break
        ii, jj = np.repeat(ii, len(_SHRINK)), np.repeat(jj, len(_SHRINK))
        a = np.tile(_SHRINK, len(ii) // len(_SHRINK))
        trial = Z[ii].copy()
        k = np.arange(len(ii))
        trial[k, jj] = space.x0[jj] + a * (Z[ii, jj] - space.x0[jj])
        trial = space.project(trial)
        moved = (trial != Z[ii]).any(axis=1)
        trial, ii = trial[moved], ii[moved]
        if len(ii) == 0:
            break
        m, v = oracle(trial)
        ok = oracle.valid(m)
        d = space.distance(trial)
        improved = False
        for i in np.unique(ii[ok]):
            sel = np.flatnonzero(ok & (ii == i))
            best = sel[np.argmin(d[sel])]
            Z[i], margin[i], value[i] = trial[best], m[best], v[best]
            improved = True
        if not improved:
            break
    return Z, margin, value


def _refine(space: Space, oracle: Oracle, pool: Pool, keep: int) -> None:
    """Sparsify and shrink ``keep`` candidates of the pool (in place).

    The nearest candidate of each distinct set of changed features goes first (nearest
    sets first), then the nearest of the rest, so that refinement, which can merge
    candidates, keeps alternatives that change different features.
    """
    if len(pool) == 0:
        return
    d = space.distance(pool.Z)
    by_distance = np.argsort(d, kind="stable")
    support = space.changed(pool.Z)[by_distance]
    _, first = np.unique(support, axis=0, return_index=True)
    leaders = by_distance[np.sort(first)]
    rest = np.setdiff1d(by_distance, leaders, assume_unique=True)
    rest = rest[np.argsort(d[rest], kind="stable")]
    order = np.concatenate([leaders, rest])[:keep]
    Z, m, v = pool.Z[order], pool.margin[order], pool.value[order]
    Z, m, v = _sparsify(space, oracle, Z, m, v)
    Z, m, v = _shrink(space, oracle, Z, m, v)
    pool.replace(Z, m, v)


def _genetic(space: Space, oracle: Oracle, pool: Pool, rng, generations: int) -> None:
    """A few generations of crossover (between candidates, and with the query) and mutation.

    Offspring are projected, evaluated in one batch per generation, and the valid ones
    refined; they join the pool so that the diverse selection has more to choose from.
    """
    for _ in range(generations):
        if oracle.expired() or len(pool) == 0:
            return
        P = pool.Z
        n_off = max(32, 4 * len(P))
        a = P[rng.integers(0, len(P), n_off)]
        b = P[rng.integers(0, len(P), n_off)]
        mix = rng.random((n_off, space.p)) < 0.5
        child = np.where(mix, a, b)
        # mutation: nudge some mutable numeric features by a fraction of their scale
        mutate = (rng.random((n_off, space.p)) < 1.0 / max(space.p, 1)) & space.mutable
        mutate[:, space.cat] = False
        step = rng.standard_normal((n_off, space.p)) * space.scale * 0.5
        child = np.where(mutate, child + step, child)
        child = space.project(child)
        m, v = oracle(child)
        ok = oracle.valid(m)
        if not ok.any():
            continue
        Zc, mc, vc = _sparsify(space, oracle, child[ok], m[ok], v[ok])
        pool.add(Zc, mc, vc)


def select_diverse(space: Space, Z: np.ndarray, n: int) -> np.ndarray:
    """Indices of ``n`` rows chosen greedily to maximise a quality-weighted DPP determinant.

    The kernel is ``K_ij = q_i q_j / (1 + d_ij)`` with ``d`` the scaled L1 distance between
    candidates (DiCE's diversity kernel) and quality ``q_i = exp(-prox_i / mean prox)``, so
    the first pick is the nearest candidate and later picks trade nearness for difference.
    """
    m = len(Z)
    if m <= n:
        return np.argsort(space.distance(Z), kind="stable")
    prox = space.distance(Z)
    q = np.exp(-prox / max(float(prox.mean()), 1e-12))
    K = q[:, None] * q[None, :] / (1.0 + space.pairwise(Z))
    chosen = [int(np.argmin(prox))]
    for _ in range(n - 1):
        best, best_val = -1, -np.inf
        for i in range(m):
            if i in chosen:
                continue
            idx = [*chosen, i]
            sign, logdet = np.linalg.slogdet(K[np.ix_(idx, idx)])
            val = logdet if sign > 0 else -np.inf
            if val > best_val:
                best, best_val = i, val
        if best < 0:
            break
        chosen.append(best)
    return np.array(chosen)


@dataclass
class SearchOutcome:
    Z: np.ndarray
    margin: np.ndarray
    value: np.ndarray
    exhausted: bool


def run_search(
    space: Space,
    oracle: Oracle,
    seeds: np.ndarray,
    n: int,
    rng: np.random.Generator,
    *,
    pool: Pool | None = None,
    generations: int = 2,
    explore: bool = True,
) -> SearchOutcome:
    """One-feature sweeps, seeds from real rows and the lines to them, growing spheres,
    then sparsify / shrink, a few genetic generations, and the diverse selection.

    With ``explore=False`` only the candidates already in ``pool`` are refined and chosen
    from (the gradient path's own results).
    """
    pool = Pool(space.p) if pool is None else pool
    keep = max(4 * n, 12)
    exhausted = False
    if explore:
        _feature_sweep(space, oracle, pool)
        S = space.project(seeds) if len(seeds) else seeds
        if len(S) and not oracle.expired():
            m, v = oracle(S)
            ok = oracle.valid(m)
            pool.add(S[ok], m[ok], v[ok])
            _line_search(space, oracle, pool, S)
        if len(pool) < n:
            exhausted = _growing_spheres(space, oracle, pool, rng, needed=max(n, 2))
    _refine(space, oracle, pool, keep)
    if explore and len(pool) < 2 * n:  # too few to choose a diverse set from: breed more
        _genetic(space, oracle, pool, rng, generations)
        _refine(space, oracle, pool, keep)
    ok = space.feasible(pool.Z) & oracle.valid(pool.margin)
    Z, margin, value = pool.Z[ok], pool.margin[ok], pool.value[ok]
    pick = select_diverse(space, Z, n)
    return SearchOutcome(Z[pick], margin[pick], value[pick], exhausted and len(pick) == 0)


# ------------------------------------------------------------------------- gradient path
def gradient_starts(space: Space, seeds: np.ndarray, n: int, rng) -> np.ndarray:
    """Starting points: the query with small random nudges, and the nearest seeds."""
    k = max(2 * n, 4)
    jitter = rng.standard_normal((k, space.p)) * 0.01 * space.scale * space.mutable
    starts = [space.x0 + jitter]
    if len(seeds):
        starts.append(space.project(seeds[:k]))
    return np.vstack(starts)


def run_gradient(
    module: Any,
    space: Space,
    starts: np.ndarray,
    margin_fn: Callable[[Any], Any],
    deadline: float,
    *,
    lam: float = 1.0,
    lr: float = 0.1,
    max_steps: int = 800,
    eps: float = 0.05,
) -> np.ndarray:
    """Wachter et al.'s counterfactual search by gradient descent, batched over starts.

    Minimises ``lam * max(0, eps - margin(f(x')))**2 + sum_j |x'_j - x_j| / scale_j`` with
    Adam in the scaled space (learning rate halved every 150 steps), clamping every step
    into the feasible box (immutable and frozen features cannot move); ``lam`` doubles every
    50 steps for starts still invalid. The squared hinge is Wachter's squared loss made
    one-sided, so the target is a decision rather than a value; with an L1 distance its
    minimisers move only the features with the largest effect per unit of scaled change.

    Returns
    -------
    ndarray of shape (n_starts, p)
        The optimised rows, before rounding and projection (the caller projects them).
    """
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - a torch module implies torch
        raise MissingDependencyError("torch", "torch", "the gradient counterfactual path") from exc
    try:
        param = next(module.parameters())
        dtype, device = param.dtype, param.device
    except StopIteration:
        dtype, device = torch.get_default_dtype(), torch.device("cpu")

    def t(a: np.ndarray) -> Any:
        return torch.as_tensor(np.ascontiguousarray(a, dtype=float), dtype=dtype, device=device)

    x0, scale = space.x0, space.scale
    lo = np.where(space.lo > space.hi, x0, np.minimum(space.lo, x0))
    hi = np.where(space.lo > space.hi, x0, np.maximum(space.hi, x0))
    frozen = ~space.mutable
    lo, hi = np.where(frozen, x0, lo), np.where(frozen, x0, hi)
    x0_t, s_t = t(x0), t(scale)
    lo_u, hi_u = t((lo - x0) / scale), t((hi - x0) / scale)
    U = t((starts - x0) / scale).clone().requires_grad_(True)
    opt = torch.optim.Adam([U], lr=lr)
    lam_t = torch.full((len(starts),), float(lam), dtype=dtype, device=device)
    U_prev = U.detach().clone()
    for step in range(max_steps):
        if step % 10 == 0 and time.perf_counter() >= deadline:
            break
        out = module(x0_t + U * s_t)
        margin = margin_fn(out)
        loss = (lam_t * torch.relu(eps - margin) ** 2).sum() + U.abs().sum()
        (grad,) = torch.autograd.grad(loss, U)
        U.grad = grad
        opt.step()
        with torch.no_grad():
            U.copy_(torch.maximum(torch.minimum(U, hi_u), lo_u))
            if step % 50 == 49:
                lam_t = torch.where(margin < 0, lam_t * 2.0, lam_t)
                moved = float((U - U_prev).abs().max())
                if bool((margin >= 0).all()) and moved < 1e-3:
                    break  # every start valid and no longer moving
                U_prev = U.detach().clone()
            if step % 150 == 149:
                for group in opt.param_groups:
                    group["lr"] *= 0.5
    with torch.no_grad():
        return (x0_t + U * s_t).detach().to("cpu", torch.float64).numpy()


# ------------------------------------------------------------------------------ outcomes
@dataclass
class Outcome:
    """What counts as the desired outcome, as a margin on the model's outputs (m, k).

    ``margin(Y) >= 0`` (``> 0`` when ``strict``) means the desired outcome is reached;
    ``value(Y)`` is the judged output reported as the prediction; ``torch_margin`` is the same
    margin on a torch output tensor (for the gradient path) or None.
    """

    margin: Callable[[np.ndarray], np.ndarray]
    value: Callable[[np.ndarray], np.ndarray]
    strict: bool
    description: str
    torch_margin: Callable[[Any], Any] | None = None


def argmax_outcome(c: int, k: int, description: str, torch_ok: bool) -> Outcome:
    """Desired: output ``c`` is the largest of ``k`` (class scores or probabilities)."""
    others = np.array([j for j in range(k) if j != c])

    def margin(Y: np.ndarray) -> np.ndarray:
        return Y[:, c] - Y[:, others].max(axis=1)

    def torch_margin(out: Any) -> Any:
        return out[:, c] - out[:, others].max(dim=1).values

    return Outcome(margin, lambda Y: Y[:, c], True, description, torch_margin if torch_ok else None)


def threshold_outcome(c: int, threshold: float, description: str) -> Outcome:
    """Desired: output ``c`` (a probability) at least ``threshold``."""
    return Outcome(lambda Y: Y[:, c] - threshold, lambda Y: Y[:, c], False, description)


def sign_outcome(positive: bool, description: str) -> Outcome:
    """Desired: a binary decision function above 0 (positive class) or at most 0."""
    s = 1.0 if positive else -1.0
    return Outcome(lambda Y: s * Y[:, 0], lambda Y: Y[:, 0], positive, description)


def interval_outcome(t: int, lo: float, hi: float, description: str, torch_ok: bool) -> Outcome:
    """Desired: output ``t`` inside ``[lo, hi]`` (either end may be infinite)."""

    def margin(Y: np.ndarray) -> np.ndarray:
        return np.minimum(Y[:, t] - lo, hi - Y[:, t])

    def torch_margin(out: Any) -> Any:
        y = out[:, t] if out.ndim > 1 else out
        parts = [y - lo] if np.isfinite(lo) else []
        if np.isfinite(hi):
            parts.append(hi - y)
        if len(parts) == 1:
            return parts[0]
        import torch

        return torch.minimum(parts[0], parts[1])

    return Outcome(
        margin, lambda Y: Y[:, t], False, description, torch_margin if torch_ok else None
    )
