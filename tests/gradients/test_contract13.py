"""The issue-13 contract on the torch gradient explainers: per-row targets, keywords, forward
outputs (dict / ModelOutput / tuple), NaN outputs, completeness warnings and the adaptive
Expected Gradients. Oracles: Captum, one-target-at-a-time runs, the same model returning a
plain tensor, and closed forms."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
captum_attr = pytest.importorskip("captum.attr")
nn = torch.nn

import whybox as wb  # noqa: E402
from whybox.errors import InvalidParameterError, ModelCallError  # noqa: E402
from whybox.explanation import ROW_KEYS  # noqa: E402


def _mlp(seed: int = 0, p: int = 5, k: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(p, 8), nn.Tanh(), nn.Linear(8, k)).double().eval()


def _x(n: int = 6, p: int = 5, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, p, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _explainers(net):
    return {
        "saliency": wb.Saliency(net, output_names=["a", "b", "c"]),
        "ixg": wb.InputXGradient(net, output_names=["a", "b", "c"]),
        "ig": wb.IntegratedGradients(net, output_names=["a", "b", "c"]),
        "guided": wb.GuidedBackprop(
            nn.Sequential(*net[:1], nn.ReLU(), *net[2:]), output_names=["a", "b", "c"]
        ),
    }


# ----------------------------------------------------------------------------- target=
@pytest.mark.parametrize("kind", ["tensor", "array", "series", "names"])
@pytest.mark.parametrize("name", ["saliency", "ixg", "ig", "guided"])
def test_per_row_targets_equal_one_at_a_time_runs(name, kind) -> None:
    net, x = _mlp(), _x()
    exp_ = _explainers(net)[name]
    y = np.array([0, 2, 1, 1, 0, 2])
    names = np.array(["a", "c", "b", "b", "a", "c"])
    target = {
        "tensor": torch.as_tensor(y),
        "array": y,
        "series": pd.Series(y),
        "names": names,
    }[kind]
    exp = exp_.explain(x, target=target)
    assert exp.values.shape == (6, 5) and exp.output_names == ["per-example target"]
    assert exp.params["target"] == list(names) and exp.meta["targets"] == list(names)
    assert "targets" in exp.meta[ROW_KEYS]
    for i, t in enumerate(y):
        one = exp_.explain(x[i : i + 1], target=int(t))
        np.testing.assert_allclose(exp.values[i], one.values[0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(exp.base_values[i], one.base_values[0], rtol=1e-12)
    sub = exp[[1, 4]]
    assert sub.meta["targets"] == ["c", "a"]
    with pytest.raises(InvalidParameterError, match=r"one output per explained row.*\(6,\)"):
        exp_.explain(x, target=torch.tensor([0, 1]))


def test_per_row_tensor_target_equals_captum_integrated_gradients() -> None:
    net, x = _mlp(), _x()
    y = torch.tensor([0, 2, 1, 1, 0, 2])
    exp = wb.IntegratedGradients(net).explain(x, target=y, method="riemann_middle", steps=32)
    ref = captum_attr.IntegratedGradients(net).attribute(
        x.clone(), target=y, method="riemann_middle", n_steps=32
    )
    np.testing.assert_allclose(exp.values, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert exp.params["target"] == [
        "output 0",
        "output 2",
        "output 1",
        "output 1",
        "output 0",
        "output 2",
    ]


def test_string_labels_lists_and_all() -> None:
    net, x = _mlp(), _x()
    sal = wb.Saliency(net, output_names=["a", "b", "c"], absolute=False)
    both = sal.explain(x, target=["c", "a"])
    assert both.output_names == ["c", "a"] and both.values.shape == (6, 5, 2)
    np.testing.assert_array_equal(both.values[..., 0], sal.explain(x, target=2).values)
    every = sal.explain(x, target="all")
    np.testing.assert_array_equal(every.values[..., 1], sal.explain(x, target="b").values)
    assert sal.explain(x, target="b").params["output"] == "output b (raw model output)"
    assert wb.Saliency(net).explain(x, target=1).params["output"] == ("output 1 (raw model output)")
    with pytest.raises(InvalidParameterError, match=r"unknown target 'd'.*\['a', 'b', 'c'\]"):
        sal.explain(x, target=np.array(["a", "d", "a", "a", "a", "a"]))


# ----------------------------------------------------------------------------- keywords
@pytest.mark.parametrize(
    ("make", "good"),
    [
        (lambda net: wb.Saliency(net), "internal_batch_size"),
        (lambda net: wb.InputXGradient(net), "internal_batch_size"),
        (lambda net: wb.IntegratedGradients(net), "steps"),
        (lambda net: wb.SmoothGrad(wb.IntegratedGradients(net), n_samples=2), "steps"),
        (lambda net: wb.VarGrad(wb.Saliency(net), n_samples=2), "internal_batch_size"),
        (lambda net: wb.ExpectedGradients(net, _x(4, seed=9), n_samples=4), "internal_batch_size"),
        (lambda net: wb.GuidedBackprop(net), "internal_batch_size"),
    ],
)
def test_every_explain_refuses_unknown_keywords(make, good) -> None:
    net = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3)).double().eval()
    ex = make(net)
    x = _x()
    with pytest.raises(InvalidParameterError, match=r"unexpected keyword tpyo="):
        ex.explain(x, target=0, tpyo=1)
    name = type(ex).__name__
    with pytest.raises(InvalidParameterError, match=rf"{name}\.explain\(\) got an unexpected"):
        ex.explain(x, target=0, stesp=3)
    if good == "steps":
        with pytest.raises(InvalidParameterError, match=r"n_steps=.*steps="):
            ex.explain(x, target=0, n_steps=10)
    with pytest.raises(InvalidParameterError, match=r"nt_samples=.*n_samples="):
        ex.explain(x, target=0, nt_samples=10)
    with pytest.raises(InvalidParameterError, match=r"return_convergence_delta=.*completeness"):
        ex.explain(x, target=0, return_convergence_delta=True)


def test_cam_keywords_and_constructor_keywords_in_explain() -> None:
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 36, 2))
    net = net.double().eval()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    for ex in (wb.GradCam(net, "0"), wb.GradCamPlusPlus(net, "0"), wb.GuidedGradCam(net, "0")):
        with pytest.raises(InvalidParameterError, match=r"relu_attributions=.*relu="):
            ex.explain(x, target=0, relu_attributions=True)
        with pytest.raises(InvalidParameterError, match=r"belongs to the constructor"):
            ex.explain(x, target=0, layer="0")
    with pytest.raises(InvalidParameterError, match=r"absolute=.*constructor"):
        wb.Saliency(net).explain(x, target=0, absolute=False)


# ----------------------------------------------------------------------------- outputs
class _Tuple(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.zeros(x.shape[0], 7, dtype=x.dtype), self.net(x)


class _Dict(nn.Module):
    def __init__(self, net, key="logits"):
        super().__init__()
        self.net, self.key = net, key

    def forward(self, x):
        return {"hidden": x * 2, self.key: self.net(x)}


@pytest.mark.parametrize(
    "make",
    [
        lambda m: wb.Saliency(m),
        lambda m: wb.IntegratedGradients(m),
        lambda m: wb.InputXGradient(m),
        lambda m: wb.ExpectedGradients(m, _x(4, seed=9), n_samples=8),
    ],
)
def test_tuple_outputs_need_output_and_dicts_use_logits(make) -> None:
    net, x = _mlp(), _x()
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    plain = make(net).explain(x, target=y)
    with pytest.raises(InvalidParameterError, match=r"tuple of 2 elements.*output="):
        make(_Tuple(net)).explain(x, target=y)
    e = make(_Tuple(net))
    e.output = 1
    sel = e.explain(x, target=y)
    np.testing.assert_array_equal(sel.values, plain.values)
    assert "element 1 of the forward's tuple" in sel.params["output"]
    d = make(_Dict(net)).explain(x, target=y)
    np.testing.assert_array_equal(d.values, plain.values)
    assert "'logits' of the forward's dict" in d.params["output"]
    with pytest.raises(InvalidParameterError, match=r"keys \['hidden', 'scores'\].*output="):
        make(_Dict(net, "scores")).explain(x, target=y)


def test_output_selector_on_the_constructors_and_hf_model_output() -> None:
    transformers = pytest.importorskip("transformers")
    net, x = _mlp(), _x()

    class _HF(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, z):
            return transformers.modeling_outputs.SequenceClassifierOutput(logits=self.net(z))

    plain = wb.IntegratedGradients(net).explain(x, target=1)
    np.testing.assert_array_equal(
        wb.IntegratedGradients(_HF()).explain(x, target=1).values, plain.values
    )
    for ex in (
        wb.Saliency(_Tuple(net), output=1),
        wb.GradCam(_Tuple(net), "net.0", output=1),
        wb.IntegratedGradients(_Tuple(net), output=1),
        wb.ExpectedGradients(_Tuple(net), _x(3), output=1),
        wb.SmoothGrad(wb.Saliency(_Tuple(net), output=1), n_samples=2),
    ):
        assert ex.output == 1
    with pytest.raises(InvalidParameterError, match=r"output= selects .* got 1\.5"):
        wb.Saliency(net, output=1.5)
    with pytest.raises(InvalidParameterError, match=r"returns a tensor .* output=None"):
        wb.Saliency(net, output=0).explain(x, target=0)


# ----------------------------------------------------------------------------- NaN outputs
class _LogNet(nn.Module):
    def forward(self, x):
        return torch.log(x).sum(1, keepdim=True)


def test_nan_outputs_and_gradients_raise_naming_the_rows() -> None:
    x = torch.ones(5, 3, dtype=torch.float64)
    x[1, 0] = -1.0
    x[3, 2] = 0.0
    net = _LogNet()
    for ex in (wb.Saliency(net), wb.IntegratedGradients(net), wb.InputXGradient(net)):
        with pytest.raises(ModelCallError, match=r"NaN or infinite outputs for rows \[1, 3\]"):
            ex.explain(x)
    # finite at x, NaN along the path from the zero baseline (log 0 = -inf at the start)
    with pytest.raises(ModelCallError, match=r"NaN or infinite outputs at the baseline .*\[0, 1\]"):
        wb.IntegratedGradients(net).explain(torch.ones(2, 3, dtype=torch.float64), baseline=0.0)
    with pytest.raises(ModelCallError, match=r"NaN or infinite outputs .* of the baselines"):
        wb.ExpectedGradients(net, torch.zeros(3, 3, dtype=torch.float64), n_samples=2).explain(
            torch.ones(2, 3, dtype=torch.float64)
        )


class _SqrtNet(nn.Module):
    def forward(self, x):
        return torch.sqrt(x * x).sum(1, keepdim=True) + torch.sqrt(x.abs()).sum(1, keepdim=True)


def test_infinite_gradients_raise_naming_the_rows() -> None:
    x = torch.ones(3, 2, dtype=torch.float64)
    x[2, 1] = 0.0  # d sqrt(|x|)/dx is inf at 0
    with pytest.raises(ModelCallError, match=r"NaN or infinite gradients for rows \[2\]"):
        wb.Saliency(_SqrtNet()).explain(x)


# ------------------------------------------------------------------ completeness warnings
def test_integrated_gradients_warns_when_the_gap_exceeds_one_percent_of_the_scale() -> None:
    net, x = _mlp(), _x(12) * 3
    with pytest.warns(UserWarning, match=r"completeness gap .* reaches .*Raise steps= \(now 2\)"):
        exp = wb.IntegratedGradients(net).explain(x, target=0, steps=2, method="riemann_left")
    # the figure in the message is the largest gap, relative to the std of the outputs
    gap = np.abs(exp.completeness_gap())
    assert gap.max() / exp.predictions.std() > 0.01
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        good = wb.IntegratedGradients(net).explain(x, target=0, steps=64)
    assert np.abs(good.completeness_gap()).max() / good.predictions.std() < 0.01


def test_adaptive_ig_that_stops_at_the_node_cap_warns() -> None:
    net, x = _mlp(), _x(4) * 3
    with pytest.warns(UserWarning, match=r"stopped at the node cap steps=12 .*tolerance=1e-09"):
        exp = wb.IntegratedGradients(net).explain(x, target=0, tolerance=1e-9, steps=12)
    assert not all(exp.meta["converged"]) and max(exp.meta["steps"]) == 12
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = wb.IntegratedGradients(net).explain(x, target=0, tolerance=1e-3)
    assert all(ok.meta["converged"])


# --------------------------------------------------------------- adaptive ExpectedGradients
class _Quadratic(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.a = nn.Parameter(torch.randn(6, generator=g, dtype=torch.float64))
        self.c = nn.Parameter(torch.randn(6, generator=g, dtype=torch.float64))

    def forward(self, x):
        return ((self.a * x * x).sum(1) + (self.c * x).sum(1))[:, None]


def test_expected_gradients_default_adapts_to_the_tolerance_and_matches_the_expectation() -> None:
    model = _Quadratic().eval()
    rng = np.random.default_rng(0)
    x, bg = rng.normal(size=(4, 6)), rng.normal(size=(100, 6))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exp = wb.ExpectedGradients(model, baselines=bg).explain(x)
    a, c = model.a.detach().numpy(), model.c.detach().numpy()
    f_bg = (a * bg**2).sum(1) + bg @ c
    scale = f_bg.std()
    # the documented tolerance: the gap is within 1% of the std of f over the baselines
    assert np.abs(exp.completeness_gap()).max() <= 0.01 * scale
    np.testing.assert_allclose(exp.base_values, np.full(4, f_bg.mean()), rtol=1e-12)
    # closed form of E_b E_alpha[(x - b) grad f(b + alpha (x - b))] over the 100 baselines
    exact = a * (x**2 - (bg**2).mean(0)) + c * (x - bg.mean(0))
    np.testing.assert_allclose(exp.values, exact, atol=0.02 * scale)
    assert exp.params["n_samples"] == "adaptive"
    assert all(s % 100 == 0 for s in exp.meta["n_samples"])  # every baseline visited equally
    # i.i.d. draws with the old default count miss by far more
    with pytest.warns(UserWarning, match=r"n_samples=50 .*n_samples=None"):
        iid = wb.ExpectedGradients(model, baselines=bg, n_samples=50).explain(x)
    assert np.abs(iid.completeness_gap()).max() > 0.01 * scale


def test_expected_gradients_of_a_linear_model_are_exact_with_balanced_baselines() -> None:
    torch.manual_seed(0)
    net = nn.Linear(6, 2).double().eval()
    rng = np.random.default_rng(2)
    x, bg = rng.normal(size=(3, 6)), rng.normal(size=(40, 6))
    exp = wb.ExpectedGradients(net, baselines=bg).explain(x, target=1)
    w = net.weight.detach().numpy()[1]
    np.testing.assert_allclose(exp.values, w * (x - bg.mean(0)), rtol=1e-10, atol=1e-12)
    assert exp.meta["n_samples"] == [40, 40, 40]


def test_expected_gradients_issue_mlp_gap_is_within_tolerance_or_warns() -> None:
    """The issue's case: a torch MLP with outputs of about +-2 and a 100-row background."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1))
    net = net.double().eval()
    rng = np.random.default_rng(0)
    X, bg = rng.normal(size=(20, 8)) * 2, rng.normal(size=(100, 8)) * 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exp = wb.explain(net, X, background=bg)
    assert exp.method == "expected_gradients"
    with torch.no_grad():
        scale = net(torch.as_tensor(bg)).numpy().std()
    gap = np.abs(exp.completeness_gap()).max()
    assert gap <= 0.01 * scale or any("completeness gap" in str(w.message) for w in caught)


def test_expected_gradients_of_an_example_do_not_depend_on_its_batch_in_adaptive_mode() -> None:
    model = _Quadratic().eval()
    rng = np.random.default_rng(1)
    x, bg = rng.normal(size=(5, 6)), rng.normal(size=(30, 6))
    eg = wb.ExpectedGradients(model, baselines=bg, random_state=4)
    full = eg.explain(x)
    np.testing.assert_array_equal(eg.explain(x[2:4]).values, full.values[2:4])
    np.testing.assert_array_equal(eg.explain(x, internal_batch_size=7).values, full.values)
    assert eg.explain(x[2:4]).meta["n_samples"] == full.meta["n_samples"][2:4]
