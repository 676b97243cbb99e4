"""Sparse SAE kernels (whybox.sae._sparse) against dense closed forms written here.

Every reference builds the dense (n, d_sae) activations and writes the gradients of
``L = sum(C * x_hat) [+ sum(r * l0)]`` out by hand (chain rule through ``x_hat = f W_dec +
b_dec``, ``f`` the activation of ``pre = x W_enc + b_enc``), so no autograd of the kernels'
own graph is used as the oracle. Float32 runs are compared with float64 references at
1e-5 relative (Frobenius) error; float64 runs of small shapes also go through gradcheck.
"""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")

from whybox.errors import InvalidInputError, InvalidParameterError, WhyboxError  # noqa: E402
from whybox.sae import _sparse  # noqa: E402

torch.set_num_threads(int(os.environ.get("WHYBOX_TEST_TORCH_THREADS", "1")))

REL = 1e-5


def rel_err(a, b) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def problem(n, d, m, seed, dtype=torch.float32, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * scale
    W = torch.randn(d, m, generator=g, dtype=torch.float64) / d**0.5
    b = torch.randn(m, generator=g, dtype=torch.float64) * 0.1
    Wd = torch.randn(m, d, generator=g, dtype=torch.float64) / m**0.5
    bd = torch.randn(d, generator=g, dtype=torch.float64) * 0.1
    C = torch.randn(n, d, generator=g, dtype=torch.float64)
    return [t.to(dtype) for t in (x, W, b, Wd, bd, C)]


def dense_grads(x, W, Wd, C, f, dz):
    """Closed-form gradients given the dense activations f and dL/dpre = dz."""
    return {
        "x": dz @ W.T,
        "W_enc": x.T @ dz,
        "b_enc": dz.sum(0),
        "W_dec": f.T @ C,
        "b_dec": C.sum(0),
    }


def kernel_grads(enc, x, W, b, Wd, bd, C, extra=(), r=None):
    """Run encoder ``enc`` + sparse_decode, L = sum(C * x_hat) [+ sum(r * l0)]; grads."""
    leaves = [t.clone().requires_grad_() for t in (x, W, b, Wd, bd, *extra)]
    xl, Wl, bl, Wdl, bdl = leaves[:5]
    out = enc(xl, Wl, bl, *leaves[5:])
    values, indices = out[0], out[1]
    x_hat = _sparse.sparse_decode(values, indices, Wdl, bdl)
    loss = (x_hat * C).sum()
    if r is not None:
        loss = loss + (out[2] * r).sum()
    loss.backward()
    names = ["x", "W_enc", "b_enc", "W_dec", "b_dec", "threshold"][: len(leaves)]
    return out, x_hat, {k: t.grad for k, t in zip(names, leaves, strict=True)}


def to_dense(values, indices, m):
    n = values.shape[0]
    out = torch.zeros(n, m, dtype=torch.float64)
    rows = torch.arange(n)[:, None].expand_as(indices)
    return out.index_put_((rows, indices), values.double(), accumulate=True)


# --------------------------------------------------------------------------- TopK ----
CASES = [(64, 12, 48, 5, 0), (33, 7, 20, 1, 1), (17, 9, 16, 16, 2), (128, 24, 96, 8, 3)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("n", "d", "m", "k", "seed"), CASES)
def test_topk_forward_and_gradients_equal_dense(n, d, m, k, seed, dtype):
    x, W, b, Wd, bd, C = problem(n, d, m, seed, dtype)
    out, x_hat, grads = kernel_grads(
        lambda x_, W_, b_: _sparse.topk_encode(x_, W_, b_, k), x, W, b, Wd, bd, C
    )
    values, indices = out
    X, Wx, bx, Wdx, bdx, Cx = (t.double() for t in (x, W, b, Wd, bd, C))
    pre = X @ Wx + bx
    # reference selection: each row's k largest pre-activations (no ties in random data)
    kth = pre.sort(dim=1, descending=True).values[:, k - 1 : k]
    mask = pre >= kth
    assert torch.equal(to_dense(torch.ones_like(values), indices, m) > 0, mask)
    f = torch.relu(pre) * mask
    dz = (Cx @ Wdx.T) * mask * (pre > 0)
    ref = dense_grads(X, Wx, Wdx, Cx, f, dz)
    assert rel_err(to_dense(values, indices, m), f) < REL
    assert rel_err(x_hat, f @ Wdx + bdx) < REL
    for name, g in grads.items():
        assert rel_err(g, ref[name]) < REL, name


def test_topk_ties_pick_a_valid_top_k_and_gradients_follow_it():
    # integer data: duplicated encoder columns give bit-identical pre-activations
    g = torch.Generator().manual_seed(5)
    n, d, m, k = 40, 6, 24, 7
    x = torch.randint(-3, 4, (n, d), generator=g).double()
    base = torch.randint(-2, 3, (d, m // 3), generator=g).double()
    W = torch.cat([base, base, base], dim=1)  # every pre-activation appears 3 times
    b = torch.zeros(m, dtype=torch.float64)
    _, Wd, bd, C = problem(n, d, m, 6, torch.float64)[2:]
    out, _, grads = kernel_grads(
        lambda x_, W_, b_: _sparse.topk_encode(x_, W_, b_, k), x, W, b, Wd, bd, C
    )
    values, indices = out
    pre = x @ W + b
    mask = to_dense(torch.ones_like(values), indices, m) > 0
    assert bool((mask.sum(1) == k).all())  # k distinct latents per row
    lowest_kept = torch.where(mask, pre, torch.inf).min(1).values
    highest_dropped = torch.where(mask, -torch.inf, pre).max(1).values
    assert bool((lowest_kept >= highest_dropped).all())
    assert torch.equal(values, torch.relu(pre.gather(1, indices)))
    f = torch.relu(pre) * mask
    ref = dense_grads(x, W, Wd, C, f, (C @ Wd.T) * mask * (pre > 0))
    for name, grad in grads.items():
        assert rel_err(grad, ref[name]) < REL, name


def test_topk_k_equal_width_and_leading_dims():
    x, W, b, Wd, bd, _ = problem(30, 5, 8, 7, torch.float64)
    values, indices = _sparse.topk_encode(x.reshape(3, 10, 5), W, b, 8)
    assert values.shape == (3, 10, 8)
    dense = to_dense(values.reshape(30, 8), indices.reshape(30, 8), 8)
    assert rel_err(dense, torch.relu(x @ W + b)) < 1e-12
    x_hat = _sparse.sparse_decode(values, indices, Wd, bd)
    assert x_hat.shape == (3, 10, 5)
    assert rel_err(x_hat.reshape(30, 5), torch.relu(x @ W + b) @ Wd + bd) < 1e-12


def test_topk_columns_choose_among_given_latents_only():
    x, W, b, Wd, bd, C = problem(50, 8, 30, 8, torch.float64)
    cols = torch.tensor([3, 7, 8, 20, 21, 29])
    out, _, grads = kernel_grads(
        lambda x_, W_, b_: _sparse.topk_encode(x_, W_, b_, 4, columns=cols), x, W, b, Wd, bd, C
    )
    values, indices = out
    pre = x @ W + b
    allowed = torch.zeros(30, dtype=torch.bool)
    allowed[cols] = True
    masked = torch.where(allowed, pre, -torch.inf)
    kth = masked.sort(dim=1, descending=True).values[:, 3:4]
    mask = masked >= kth
    assert torch.equal(to_dense(torch.ones_like(values), indices, 30) > 0, mask)
    f = torch.relu(pre) * mask
    ref = dense_grads(x, W, Wd, C, f, (C @ Wd.T) * mask * (pre > 0))
    for name, grad in grads.items():
        assert rel_err(grad, ref[name]) < REL, name
    assert float(grads["W_enc"][:, ~allowed].abs().max()) == 0.0


# --------------------------------------------------------------------------- decoder ----
def test_sparse_decode_repeated_indices_add_up_and_gradients():
    g = torch.Generator().manual_seed(9)
    n, k, m, d = 20, 6, 10, 4
    indices = torch.randint(0, m, (n, k), generator=g)
    indices[:, 1] = indices[:, 0]  # repeats within a row
    values = torch.randn(n, k, generator=g, dtype=torch.float64, requires_grad=True)
    Wd = torch.randn(m, d, generator=g, dtype=torch.float64, requires_grad=True)
    bd = torch.randn(d, generator=g, dtype=torch.float64, requires_grad=True)
    C = torch.randn(n, d, generator=g, dtype=torch.float64)
    x_hat = _sparse.sparse_decode(values, indices, Wd, bd)
    f = to_dense(values.detach(), indices, m)
    assert rel_err(x_hat, f @ Wd.detach() + bd.detach()) < 1e-12
    (x_hat * C).sum().backward()
    # d values[i, s] = C[i] . W_dec[indices[i, s]]
    ref_values = (Wd.detach()[indices] * C[:, None, :]).sum(-1)
    assert rel_err(values.grad, ref_values) < 1e-12
    assert rel_err(Wd.grad, f.T @ C) < 1e-12
    assert rel_err(bd.grad, C.sum(0)) < 1e-12
    no_bias = _sparse.sparse_decode(values.detach(), indices, Wd.detach())
    assert rel_err(no_bias, f @ Wd.detach()) < 1e-12


def test_dense_layout_flag():
    idx = _sparse.dense_indices(5, 7)
    assert _sparse.is_dense_indices(idx, 7)
    assert not _sparse.is_dense_indices(idx.contiguous().flip(1), 7)
    assert not _sparse.is_dense_indices(torch.arange(7).repeat(5, 1)[:, :6], 7)
    values = torch.randn(5, 7, dtype=torch.float64)
    Wd = torch.randn(7, 3, dtype=torch.float64)
    assert rel_err(_sparse.sparse_decode(values, idx, Wd), values @ Wd) < 1e-12


# --------------------------------------------------------------------------- BatchTopK ----
def batchtopk_reference(pre, total):
    """SAELens' BatchTopK written out: keep the batch's ``total`` largest relu(pre)."""
    acts = torch.relu(pre).flatten()
    cut = acts.sort(descending=True).values[total - 1]
    return (torch.relu(pre) >= cut) & (pre > 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("n", "d", "m", "k", "seed", "hot"),
    [
        (64, 10, 40, 4, 0, False),
        (50, 8, 30, 2.5, 1, True),  # one row holds far more than 4k of the batch's top entries
        (20, 6, 12, 12, 2, False),  # every latent kept: dense layout
    ],
)
def test_batchtopk_forward_and_gradients_equal_dense(n, d, m, k, seed, hot, dtype):
    x, W, b, Wd, bd, C = problem(n, d, m, seed, dtype)
    if hot:
        x[3] *= 40.0
    out, x_hat, grads = kernel_grads(
        lambda x_, W_, b_: _sparse.batchtopk_encode(x_, W_, b_, k), x, W, b, Wd, bd, C
    )
    values, indices = out
    X, Wx, bx, Wdx, bdx, Cx = (t.double() for t in (x, W, b, Wd, bd, C))
    pre = X @ Wx + bx
    mask = batchtopk_reference(pre, int(k * n))
    got = to_dense(values, indices, m)
    assert torch.equal(got > 0, mask)
    f = torch.relu(pre) * mask
    assert rel_err(got, f) < REL
    assert rel_err(x_hat, f @ Wdx + bdx) < REL
    ref = dense_grads(X, Wx, Wdx, Cx, f, (Cx @ Wdx.T) * mask)
    for name, g in grads.items():
        assert rel_err(g, ref[name]) < REL, name
    if hot:
        assert int((got[3] > 0).sum()) > 4 * 3  # the candidate pool had to grow


# --------------------------------------------------------------------------- JumpReLU ----
def jumprelu_reference(x, W, b, Wd, t, eps, C, r):
    """Dense JumpReLU forward and the pseudo-derivatives of Rajamanoharan et al. (2024)."""
    pre = x @ W + b
    active = pre > t
    f = pre * active
    l0 = active.sum(1).double()
    u = (pre - t) / eps
    rect = ((u > -0.5) & (u < 0.5)).double()
    df = C @ Wd.T
    dz = df * active
    grads = dense_grads(x, W, Wd, C, f, dz)
    grads["threshold"] = (-(t / eps) * rect * df).sum(0) + (-(1 / eps) * rect * r[:, None]).sum(0)
    return f, l0, grads


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("thr_level", "eps"), [(3.0, 0.3), (0.05, 0.5)])  # sparse, dense
def test_jumprelu_forward_and_pseudo_gradients_equal_dense(thr_level, eps, dtype):
    n, d, m = 60, 10, 40
    x, W, b, Wd, bd, C = problem(n, d, m, 11, dtype, scale=2.0)
    g = torch.Generator().manual_seed(12)
    t = (thr_level * (0.5 + torch.rand(m, generator=g, dtype=torch.float64))).to(dtype)
    r = torch.randn(n, generator=g, dtype=torch.float64)
    out, x_hat, grads = kernel_grads(
        lambda x_, W_, b_, t_: _sparse.jumprelu_encode(x_, W_, b_, t_, eps),
        x,
        W,
        b,
        Wd,
        bd,
        C,
        extra=(t,),
        r=r.to(dtype),
    )
    values, indices, l0 = out
    X, Wx, bx, Wdx, bdx, Cx, tx = (v.double() for v in (x, W, b, Wd, bd, C, t))
    f, l0_ref, ref = jumprelu_reference(X, Wx, bx, Wdx, tx, eps, Cx, r)
    dense_layout = _sparse.is_dense_indices(indices, m)
    assert dense_layout == (thr_level < 1.0)
    assert rel_err(to_dense(values, indices, m), f) < REL
    assert torch.equal(l0.double(), l0_ref)
    assert rel_err(x_hat, f @ Wdx + bdx) < REL
    assert float(ref["threshold"].abs().sum()) > 0  # the window matters in this problem
    for name, grad in grads.items():
        assert rel_err(grad, ref[name]) < REL, name


def test_jumprelu_inference_keeps_active_latents_only():
    x, W, b, *_ = problem(30, 6, 20, 13, torch.float64, scale=2.0)
    t = torch.full((20,), 2.5, dtype=torch.float64)
    values, indices, l0 = _sparse.jumprelu_encode(x, W, b, t, 0.5)
    pre = x @ W + b
    assert not _sparse.is_dense_indices(indices, 20)
    assert values.shape[1] == int((pre > 2.5).sum(1).max())
    assert rel_err(to_dense(values, indices, 20), pre * (pre > 2.5)) < 1e-12
    assert torch.equal(l0, (pre > 2.5).sum(1).double())


# --------------------------------------------------------------------------- gradcheck ----
def test_gradcheck_float64_small():
    x, W, b, Wd, bd, _ = problem(12, 5, 9, 21, torch.float64)
    leaves = [t.clone().requires_grad_() for t in (x, W, b)]
    assert torch.autograd.gradcheck(lambda *a: _sparse.topk_encode(*a, 3)[0], leaves)
    assert torch.autograd.gradcheck(lambda *a: _sparse.batchtopk_encode(*a, 2.5)[0], leaves)
    t = torch.full((9,), 0.2, dtype=torch.float64)
    pre = x @ W + b
    assert float((pre - 0.2).abs().min()) > 1e-4  # no entry at the jump
    assert torch.autograd.gradcheck(lambda *a: _sparse.jumprelu_encode(*a, t, 0.1)[0], leaves)
    values, indices = _sparse.topk_encode(x, W, b, 3)
    dec = [
        values.detach().clone().requires_grad_(),
        Wd.clone().requires_grad_(),
        bd.clone().requires_grad_(),
    ]
    assert torch.autograd.gradcheck(lambda v, w, bb: _sparse.sparse_decode(v, indices, w, bb), dec)


def test_reference_comparison_can_fail():
    """The dense reference tells k apart from k + 1 (the comparisons above have teeth)."""
    x, W, b, Wd, bd, C = problem(40, 8, 30, 3, torch.float64)
    _, _, grads = kernel_grads(
        lambda x_, W_, b_: _sparse.topk_encode(x_, W_, b_, 5), x, W, b, Wd, bd, C
    )
    pre = x @ W + b
    mask = pre >= pre.sort(dim=1, descending=True).values[:, 5:6]  # k + 1 latents
    f = torch.relu(pre) * mask
    ref = dense_grads(x, W, Wd, C, f, (C @ Wd.T) * mask * (pre > 0))
    assert rel_err(grads["W_enc"], ref["W_enc"]) > 1e-3


# --------------------------------------------------------------------------- bad input ----
def test_bad_input_raises_whybox_errors():
    x, W, b, Wd, _, _ = problem(10, 4, 6, 0, torch.float64)
    with pytest.raises(InvalidParameterError, match="k=7"):
        _sparse.topk_encode(x, W, b, 7)
    with pytest.raises(InvalidParameterError, match="k=0"):
        _sparse.topk_encode(x, W, b, 0)
    with pytest.raises(InvalidInputError, match="W_enc"):
        _sparse.topk_encode(x[:, :3], W, b, 2)
    with pytest.raises(InvalidInputError, match="b_enc"):
        _sparse.topk_encode(x, W, b[:5], 2)
    with pytest.raises(InvalidParameterError, match="bandwidth"):
        _sparse.jumprelu_encode(x, W, b, torch.ones(6, dtype=torch.float64), 0.0)
    with pytest.raises(InvalidInputError, match="threshold"):
        _sparse.jumprelu_encode(x, W, b, torch.ones(5, dtype=torch.float64), 0.1)
    with pytest.raises(InvalidParameterError, match="k="):
        _sparse.batchtopk_encode(x, W, b, 0)
    with pytest.raises(InvalidInputError, match="same shape"):
        _sparse.sparse_decode(torch.ones(10, 2), torch.zeros(10, 3, dtype=torch.long), Wd)
    with pytest.raises(WhyboxError):
        _sparse.sparse_decode(torch.ones(10, 2), torch.zeros(10, 2, dtype=torch.long), Wd, b)


def test_grouping_cache_is_shared_and_invalidated_by_changes():
    g = torch.Generator().manual_seed(4)
    n, k, m, d = 30, 4, 12, 5
    indices = torch.randint(0, m, (n, k), generator=g)
    w = torch.randn(n, k, generator=g, dtype=torch.float64)
    dense = torch.randn(n, d, generator=g, dtype=torch.float64)
    crow = _sparse._fixed_crow(n, k, "cpu")
    assert _sparse._fixed_crow(n, k, "cpu") is crow
    cols = indices.reshape(-1)
    first = _sparse._grouping(crow, cols, m)
    # the decoder's and the encoder's backward pass see other views of the same memory
    assert _sparse._grouping(crow, indices.view(-1), m) is first
    indices[0, 0] = (indices[0, 0] + 1) % m  # in place: the version counter moves on
    assert _sparse._grouping(crow, cols, m) is not first
    got = _sparse._t_times(crow, cols, w.reshape(-1), dense, m)
    assert rel_err(got, to_dense(w, indices, m).T @ dense) < 1e-12
    other = indices.clone().reshape(-1)  # equal values, another tensor
    assert rel_err(_sparse._t_times(crow, other, w.reshape(-1), dense, m), got) < 1e-12


@pytest.mark.parametrize("arch", ["batchtopk", "jumprelu"])
def test_compact_rows_equal_padded_rows(arch):
    x, W, b, Wd, bd, C = problem(70, 9, 36, 17, torch.float64, scale=2.0)
    t = torch.full((36,), 2.5, dtype=torch.float64)

    def run(compact):
        leaves = [v.clone().requires_grad_() for v in (x, W, b, Wd, bd, t)]
        if arch == "batchtopk":
            out = _sparse.batchtopk_encode(*leaves[:3], 3.5, compact=compact)
        else:
            out = _sparse.jumprelu_encode(*leaves[:3], leaves[5], 0.4, compact=compact)
        if compact:
            offsets = out[2]
            assert out[0].dim() == 1 and offsets.shape == (71,)
            x_hat = _sparse.sparse_decode(out[0], out[1], *leaves[3:5], offsets=offsets)
            dense = to_dense(*_sparse.compact_to_padded(out[0].detach(), out[1], offsets), 36)
        else:
            x_hat = _sparse.sparse_decode(out[0], out[1], *leaves[3:5])
            dense = to_dense(out[0].detach(), out[1], 36)
        loss = (x_hat * C).sum() + (out[-1].sum() if arch == "jumprelu" else 0)
        loss.backward()
        return dense, x_hat.detach(), [v.grad for v in leaves[: 6 if arch == "jumprelu" else 5]]

    d1, x1, g1 = run(False)
    d2, x2, g2 = run(True)
    assert rel_err(d2, d1) < 1e-12 and rel_err(x2, x1) < 1e-12
    for a, c in zip(g1, g2, strict=True):
        assert rel_err(a, c) < 1e-12
