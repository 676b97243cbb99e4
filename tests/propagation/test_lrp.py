"""LRP (whybox.propagation.lrp): zennit 0.5.1 as the oracle, closed forms written here in
numpy, conservation, scoped hooks and untouched parameters, bad input.

zennit imports ``torchvision.models.resnet`` at import time; torchvision must not be
installed here, so the fixture puts stub modules for it in ``sys.modules`` just for zennit's
import (after transformers, which caches whether torchvision exists) and removes them again.
"""

from __future__ import annotations

import types
import warnings

import numpy as np
import pytest

from tests.oracles import import_without_torchvision

torch = pytest.importorskip("torch")
nn = torch.nn

from whybox.errors import (  # noqa: E402
    InvalidParameterError,
    ModelCallError,
    UnsupportedModelError,
)
from whybox.propagation.lrp import (  # noqa: E402
    LRP,
    AlphaBeta,
    ConservationWarning,
    Epsilon,
    Flat,
    Gamma,
    WSquare,
    ZPlus,
)


@pytest.fixture(scope="module")
def zennit():
    """zennit's modules (composites, attribution, canonizers, rules, types).

    zennit is the oracle of these tests: `make test` installs it (``--no-deps``, since its
    torchvision requirement would pull a CUDA build); without it the tests fail, not skip."""
    zc = import_without_torchvision("zennit.composites")
    return types.SimpleNamespace(
        c=zc,
        a=import_without_torchvision("zennit.attribution"),
        can=import_without_torchvision("zennit.canonizers"),
        r=import_without_torchvision("zennit.rules"),
        t=import_without_torchvision("zennit.types"),
    )


def small_cnn(seed=0, bn_eps=1e-5, dtype=torch.double):
    """conv - batch norm - relu - max pool - conv - relu - avg pool - flatten - linear - relu
    - linear, with non-trivial batch-norm statistics."""
    torch.manual_seed(seed)
    m = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4, eps=bn_eps),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(6, 5),
        nn.ReLU(),
        nn.Linear(5, 3),
    ).to(dtype)
    bn = m[1]
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.normal_()
    return m.eval()


def images(n=5, seed=1, dtype=torch.double):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 2, 8, 8, generator=g, dtype=dtype)


def zennit_relevance(z, model, x, target, composite):
    """zennit's Gradient attributor with the explained output's value as output relevance."""

    def r_out(o):
        idx = target[:, None]
        return torch.zeros_like(o).scatter(1, idx, o.gather(1, idx))

    with z.a.Gradient(model, composite) as attr:
        _, rel = attr(x.clone(), r_out)
    return rel.detach().numpy()


COMPOSITES = [
    ("epsilon_plus_flat", "EpsilonPlusFlat", {}),
    ("epsilon_gamma_box", "EpsilonGammaBox", {"low": 0.0, "high": 1.0}),
    ("epsilon_alpha2_beta1", "EpsilonAlpha2Beta1", {}),
    ("epsilon_plus", "EpsilonPlus", {}),
    ("epsilon_alpha2_beta1_flat", "EpsilonAlpha2Beta1Flat", {}),
]


@pytest.mark.parametrize(("name", "zname", "kw"), COMPOSITES)
@pytest.mark.parametrize("canon", [True, False])
def test_composites_equal_zennit(zennit, name, zname, kw, canon):
    model = small_cnn()
    x = images()
    target = model(x).argmax(1)
    exp = LRP(model, name, canonizers=("batchnorm",) if canon else (), **kw).explain(
        x, target=target
    )
    canonizers = [zennit.can.SequentialMergeBatchNorm()] if canon else []
    ref = zennit_relevance(
        zennit, model, x, target, getattr(zennit.c, zname)(canonizers=canonizers, **kw)
    )
    scale = np.abs(ref).max()
    assert scale > 0
    # zennit's merged batch norm still divides by sqrt(1 + eps): 5e-6 relative at eps=1e-5
    np.testing.assert_allclose(exp.values, ref, rtol=0, atol=1e-5 * scale)
    assert exp.values.shape == x.shape


@pytest.mark.parametrize(("name", "zname", "kw"), COMPOSITES[:3])
def test_composites_equal_zennit_to_rounding(zennit, name, zname, kw):
    """With a batch-norm eps of 1e-12 zennit's leftover sqrt(1 + eps) vanishes: equal to 1e-10."""
    model = small_cnn(seed=3, bn_eps=1e-12)
    x = images(seed=4)
    target = torch.tensor([0, 1, 2, 0, 1])
    exp = LRP(model, name, **kw).explain(x, target=target)
    comp = getattr(zennit.c, zname)(canonizers=[zennit.can.SequentialMergeBatchNorm()], **kw)
    ref = zennit_relevance(zennit, model, x, target, comp)
    np.testing.assert_allclose(exp.values, ref, rtol=0, atol=1e-10 * np.abs(ref).max())


def test_float32_and_box_bounds_per_channel_equal_zennit(zennit):
    model = small_cnn(seed=5, dtype=torch.float32)
    x = images(seed=6, dtype=torch.float32)
    low = -torch.ones(2, 1, 1)
    high = torch.tensor([1.0, 2.0]).reshape(2, 1, 1)
    target = model(x).argmax(1)
    exp = LRP(model, "epsilon_gamma_box", low=low.numpy(), high=high.numpy(), gamma=0.5).explain(
        x, target=target
    )
    comp = zennit.c.EpsilonGammaBox(
        low=low[None].expand(5, 2, 8, 8),
        high=high[None].expand(5, 2, 8, 8),
        gamma=0.5,
        canonizers=[zennit.can.SequentialMergeBatchNorm()],
    )
    ref = zennit_relevance(zennit, model, x, target, comp)
    np.testing.assert_allclose(exp.values, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_custom_rules_by_type_and_path_equal_zennit(zennit):
    """A dict composite (w-square on the first conv by path, gamma on convolutions,
    epsilon 0.1 on dense layers) = zennit's NameLayerMapComposite with the same rules."""
    model = small_cnn(seed=7)
    x = images(seed=8)
    target = torch.tensor([2, 2, 1, 0, 1])
    exp = LRP(
        model,
        {"0": WSquare(), nn.Conv2d: Gamma(0.1), nn.Linear: Epsilon(0.1)},
        canonizers=(),
    ).explain(x, target=target)
    zr, zt = zennit.r, zennit.t
    comp = zennit.c.NameLayerMapComposite(
        name_map=[(("0",), zr.WSquare())],
        layer_map=[
            (zt.Activation, zr.Pass()),
            (zt.AvgPool, zr.Norm()),
            (zt.BatchNorm, zr.Pass()),
            (zt.Convolution, zr.Gamma(gamma=0.1)),
            (nn.Linear, zr.Epsilon(epsilon=0.1)),
        ],
    )
    ref = zennit_relevance(zennit, model, x, target, comp)
    np.testing.assert_allclose(exp.values, ref, rtol=0, atol=1e-10 * np.abs(ref).max())


@pytest.mark.parametrize(("name", "zname", "kw"), COMPOSITES[:3])
def test_trained_digits_cnn_equals_zennit(zennit, digits_cnn, name, zname, kw):
    """The zoo's trained digits CNN (conv, relu, avg pool, conv, relu, linear), float32."""
    model, data = digits_cnn
    x = data.X_test[:12].clone()
    target = model(x).argmax(1)
    kw = {"low": 0.0, "high": 1.0} if kw else {}  # pixels in [0, 1]
    exp = LRP(model, name, **kw).explain(x, target=target)
    ref = zennit_relevance(zennit, model, x, target, getattr(zennit.c, zname)(**kw))
    np.testing.assert_allclose(exp.values, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    assert len(exp.meta["conservation_gap"]) == 12


# -- closed forms -----------------------------------------------------------------------
def bias_free_mlp(seed=0):
    torch.manual_seed(seed)
    return (
        nn.Sequential(
            nn.Linear(6, 8, bias=False),
            nn.ReLU(),
            nn.Linear(8, 5, bias=False),
            nn.ReLU(),
            nn.Linear(5, 3, bias=False),
        )
        .double()
        .eval()
    )


TINY = 1e-300  # a stabiliser that only ever turns 0 / 0 into 0


@pytest.mark.parametrize(
    "rule",
    [
        ZPlus(stabilizer=TINY),
        AlphaBeta(1.0, 0.0, stabilizer=TINY),
        Epsilon(0.0),
        Flat(stabilizer=TINY),
        WSquare(stabilizer=TINY),
    ],
    ids=["zplus", "alpha1_beta0", "epsilon0", "flat", "wsquare"],
)
def test_bias_free_mlp_conserves_relevance(rule):
    model = bias_free_mlp()
    x = torch.randn(7, 6, generator=torch.Generator().manual_seed(2), dtype=torch.double)
    out = model(x).detach().numpy()  # (7, 3): every output's own relevance
    # z+ and alpha-beta conserve where the output has contributions of its sign: explain
    # each row's (positive) top output; epsilon, flat and w-square conserve for any output
    signed = isinstance(rule, (ZPlus, AlphaBeta))
    target = torch.as_tensor(out.argmax(1)) if signed else "all"
    if signed:  # rows 3 and 6 have only negative outputs: their relevance is lost, and said
        with pytest.warns(ConservationWarning, match="100.00% relative, row 3"):
            exp = LRP(model, {nn.Linear: rule}).explain(x, target=target)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            exp = LRP(model, {nn.Linear: rule}).explain(x, target=target)
    sums = exp.values.sum(axis=1)
    if signed:
        out = out.max(1)
        keep = out > 0  # rows whose top output is negative have no positive share
        assert keep.sum() >= 4
        sums, out_kept = sums[keep], out[keep]
    else:
        out_kept = out
    np.testing.assert_allclose(sums, out_kept, rtol=1e-10, atol=1e-13)
    assert exp.meta["conservation_expected"] is True
    np.testing.assert_allclose(exp.meta["relevance_out"], out, rtol=1e-12)
    np.testing.assert_allclose(exp.completeness_gap(), exp.meta["conservation_gap"], atol=1e-12)
    assert exp.values.shape == ((7, 6) if signed else (7, 6, 3))


def test_one_linear_layer_epsilon_closed_form():
    """R_i = x_i w_ci z_c / (z_c + eps sign z_c), z_c = w_c.x + b_c: numpy."""
    torch.manual_seed(1)
    model = nn.Linear(4, 3).double().eval()
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(3), dtype=torch.double)
    eps = 0.5
    exp = LRP(model, {nn.Linear: Epsilon(eps)}).explain(x, target=1)
    w = model.weight.detach().numpy()[1]
    b = model.bias.detach().numpy()[1]
    xs = x.numpy()
    z = xs @ w + b
    sign = np.where(z >= 0, 1.0, -1.0)
    expect = xs * w * (z / (z + eps * sign))[:, None]
    np.testing.assert_allclose(exp.values, expect, rtol=1e-12, atol=1e-14)
    # bias-free, epsilon -> 0: exactly x * w (the input x gradient of a linear model)
    free = nn.Linear(4, 3, bias=False).double().eval()
    exp0 = LRP(free, {nn.Linear: Epsilon(0.0)}).explain(x, target=2)
    np.testing.assert_allclose(exp0.values, xs * free.weight.detach().numpy()[2], rtol=1e-12)


def test_lrp0_equals_captum_input_x_gradient_on_a_relu_cnn():
    """LRP-0 on every conv and linear layer of a ReLU network (max and average pooling, batch
    norm folded) is input x gradient (Ancona et al. 2018): Captum's InputXGradient."""
    captum = pytest.importorskip("captum.attr")
    model = small_cnn(seed=11)
    x = images(seed=12)
    target = torch.tensor([0, 1, 2, 1, 0])
    rules = {nn.Conv2d: Epsilon(0.0), nn.Linear: Epsilon(0.0)}
    exp = LRP(model, rules, stabilizer=TINY).explain(x, target=target)  # avg pool: norm
    ref = captum.InputXGradient(model).attribute(x.clone().requires_grad_(True), target=target)
    ref = ref.detach().numpy()
    np.testing.assert_allclose(exp.values, ref, rtol=0, atol=1e-11 * np.abs(ref).max())


def test_zplus_two_layer_closed_form():
    """z+ on both layers of a bias-free ReLU net, written out in numpy (Montavon 2017)."""
    model = bias_free_mlp(seed=4)[:3].eval()  # linear, relu, linear (5 outputs)
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(5), dtype=torch.double)
    exp = LRP(model, {nn.Linear: ZPlus(stabilizer=TINY)}).explain(x, target=4)
    w1, w2 = (model[i].weight.detach().numpy() for i in (0, 2))
    xs = x.numpy()

    def zplus(a, w, r):  # a (n, i), w (j, i), r (n, j) -> (n, i)
        contrib = np.clip(a, 0, None)[:, None, :] * np.clip(w, 0, None)[None]
        contrib += np.clip(a, None, 0)[:, None, :] * np.clip(w, None, 0)[None]
        den = contrib.sum(axis=2, keepdims=True)
        share = np.divide(contrib, den, out=np.zeros_like(contrib), where=den != 0)
        return (share * r[:, :, None]).sum(axis=1)

    h = np.maximum(xs @ w1.T, 0)
    r2 = np.zeros((3, 5))
    r2[:, 4] = (h @ w2.T)[:, 4]
    expect = zplus(xs, w1, zplus(h, w2, r2))
    np.testing.assert_allclose(exp.values, expect, rtol=1e-10, atol=1e-12)


def test_flat_first_layer_spreads_evenly():
    """Flat on a single dense layer: every input gets z_c / n_inputs."""
    model = nn.Linear(5, 2, bias=False).double().eval()
    x = torch.randn(4, 5, dtype=torch.double)
    exp = LRP(model, "epsilon_plus_flat", stabilizer=TINY).explain(x, target=0)
    z = (x @ model.weight.detach().T)[:, 0].numpy()
    np.testing.assert_allclose(exp.values, np.repeat(z[:, None] / 5, 5, axis=1), rtol=1e-12)


def test_batchnorm_canonizer_conserves_where_the_fold_is_bias_free():
    """A bias-free conv + a batch norm with mean 0 and beta 0 folds to a bias-free conv: the
    relevance is conserved exactly; without the canonizer the same model conserves too
    (batch norm passes), and both relevances agree up to the scale the fold moves."""
    torch.manual_seed(9)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, bias=False), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
        nn.Linear(3 * 36, 2, bias=False),
    ).double()  # fmt: skip
    with torch.no_grad():
        model[1].running_var.uniform_(0.5, 2.0)
        model[1].weight.uniform_(0.5, 1.5)
        model[1].bias.zero_()
    model.eval()
    x = images(n=3, seed=10)
    exp = LRP(model, "epsilon_plus", epsilon=TINY, stabilizer=TINY).explain(x, target=1)
    assert exp.meta["conservation_expected"] is True
    np.testing.assert_allclose(exp.values.reshape(3, -1).sum(1), exp.predictions, rtol=1e-9)


# -- conservation warnings ----------------------------------------------------------------
class Doubling(nn.Module):
    """Bias-free, but forward adds a branch to itself (h + h) where no hook sees it."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(4, 6, bias=False)
        self.b = nn.Linear(6, 2, bias=False)

    def forward(self, x):
        h = torch.relu(self.a(x))
        return self.b(h + h)


def test_conservation_gap_warns_with_the_measured_gap():
    model = Doubling().double().eval()
    x = torch.rand(3, 4, dtype=torch.double) + 0.1
    with pytest.warns(ConservationWarning, match="misses the output relevance by") as rec:
        exp = LRP(model, {nn.Linear: Epsilon(0.0)}).explain(x, target=0)
    # relevance at h + h goes to h twice: the input gets 2 f(x)
    np.testing.assert_allclose(exp.meta["relevance_in"], 2 * exp.predictions, rtol=1e-9)
    np.testing.assert_allclose(exp.meta["relative_conservation_gap"], 1.0, rtol=1e-9)
    assert "100.00%" in str(rec[0].message)


def test_biased_model_reports_gap_without_warning():
    model = small_cnn()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exp = LRP(model).explain(images(n=2), target=0)
    assert exp.meta["conservation_expected"] is False
    assert "0" in exp.meta["biased_layers"]
    gap = np.asarray(exp.meta["relevance_out"]) - np.asarray(exp.meta["relevance_in"])
    np.testing.assert_allclose(exp.meta["conservation_gap"], gap, atol=1e-15)


# -- hooks, parameters and exceptions -------------------------------------------------------
def hook_count(model):
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    )


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_state(model, before):
    after = model.state_dict()
    assert set(after) == set(before)
    for k, v in before.items():
        assert torch.equal(after[k], v), k
        assert after[k].dtype == v.dtype


class Boom(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = small_cnn()
        self.fail = False

    def forward(self, x):
        h = self.net[:4](x)
        if self.fail:
            raise RuntimeError("boom")
        return self.net[4:](h)


def test_hooks_removed_and_batch_norm_untouched_after_an_exception():
    model = Boom().eval()
    before, hooks_before = snapshot(model), hook_count(model)
    explainer = LRP(model, "epsilon_plus_flat")
    x = images(n=2)
    explainer.explain(x, target=0)
    assert hook_count(model) == hooks_before
    assert_same_state(model, before)
    model.fail = True
    with pytest.raises(Exception, match="boom"):
        explainer.explain(x, target=0)
    assert hook_count(model) == hooks_before
    assert_same_state(model, before)
    assert model.net[1].weight is not None and not model.training
    model.fail = False
    exp = explainer.explain(x, target=0)  # usable again, same result
    np.testing.assert_allclose(exp.values, explainer.explain(x, target=0).values)


class InPlace(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 2)

    def forward(self, x):
        h = self.a(x)
        x.mul_(2)  # changes the input of self.a after it ran
        return self.b(h)


def test_error_in_backward_still_removes_hooks():
    model = InPlace().double().eval()
    before = snapshot(model)

    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, x):
            return self.inner(x * 1.0)

    wrapped = Wrap().eval()
    with pytest.raises(ModelCallError, match="changed in place"):
        LRP(wrapped, {nn.Linear: "epsilon"}).explain(torch.rand(2, 4, dtype=torch.double))
    assert hook_count(wrapped) == 0
    assert_same_state(model, before)


def test_training_mode_restored_and_inplace_relu():
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(inplace=True), nn.Flatten(),
        nn.Linear(3 * 36, 2),
    ).double()  # fmt: skip
    model.train()
    with pytest.warns(UserWarning, match="training mode"):
        exp = LRP(model).explain(images(n=2), target=1)
    assert model.training and model[1].training
    model.eval()
    plain_relu = [m if not isinstance(m, nn.ReLU) else nn.ReLU() for m in model]
    ref = LRP(nn.Sequential(*plain_relu).eval())
    np.testing.assert_allclose(exp.values, ref.explain(images(n=2), target=1).values, atol=1e-14)


# -- bad input ------------------------------------------------------------------------------
def test_module_without_rule_names_path_and_how_to_register():
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2)).eval()
    with pytest.raises(UnsupportedModelError, match=r"'1'.*LayerNorm.*rules="):
        LRP(model)
    exp = LRP(model, rules={"1": "pass"}).explain(torch.rand(2, 4), target=0)
    assert exp.values.shape == (2, 4)


def test_custom_elementwise_module_registered_by_type():
    class Swish(nn.Module):
        def forward(self, x):
            return x * torch.sigmoid(x)

    model = nn.Sequential(nn.Linear(4, 4), Swish(), nn.Linear(4, 2)).eval()
    with pytest.raises(UnsupportedModelError, match="Swish"):
        LRP(model)
    LRP(model, rules={Swish: "pass"}).explain(torch.rand(2, 4), target=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"composite": "epsilon_gamma_box"}, "low= and high="),
        ({"composite": "nope"}, "unknown composite"),
        ({"composite": 3}, "composite must be"),
        ({"canonizers": ("layernorm",)}, "unknown canonizer"),
        ({"composite": {nn.Linear: "bogus"}}, "a rule must be"),
        ({"composite": {3: "epsilon"}}, "rule keys"),
        ({"composite": {nn.ReLU: "epsilon", nn.Linear: "epsilon"}}, "needs its weights"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises((InvalidParameterError, UnsupportedModelError), match=match):
        LRP(bias_free_mlp(), **kwargs) if "weights" in match else LRP(small_cnn(), **kwargs)


def test_bad_rule_settings():
    from whybox.propagation.lrp import AlphaBeta

    with pytest.raises(InvalidParameterError, match="alpha - beta = 1"):
        AlphaBeta(2.0, 2.0)
    with pytest.raises(InvalidParameterError, match=">= 0"):
        Epsilon(-1.0)


def test_params_record_rules():
    exp = LRP(small_cnn(), "epsilon_plus_flat").explain(images(n=1), target=0)
    p = exp.params
    assert p["composite"] == "epsilon_plus_flat"
    assert p["rules"]["0"]["rule"] == "flat"
    assert p["rules"]["4"]["rule"] == "zplus"
    assert p["rules"]["8"] == {"rule": "epsilon", "epsilon": 1e-6}
    assert p["folded_batch_norms"] == {"1": "0"}
    assert exp.method == "lrp"
