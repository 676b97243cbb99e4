"""Model-parameter randomisation (Adebayo et al. 2018) against Quantus's MPRT, with layers
whose re-initialisation does not depend on a random generator so that both libraries
randomise to the same weights."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.oracles import import_without_torchvision
from whybox import metrics
from whybox.errors import InvalidParameterError, UnsupportedModelError

from .conftest import grad_x_input

torch = pytest.importorskip("torch")


class FixedResetLinear(torch.nn.Linear):
    """A Linear layer whose reset_parameters draws from its own seeded numpy generator."""

    def reset_parameters(self):
        g = np.random.default_rng(self.in_features * 100 + self.out_features)
        with torch.no_grad():
            self.weight.copy_(torch.as_tensor(g.normal(size=tuple(self.weight.shape))))
            self.bias.copy_(torch.as_tensor(g.normal(size=tuple(self.bias.shape))))


def _model():
    torch.manual_seed(0)
    m = torch.nn.Sequential(
        torch.nn.Flatten(), FixedResetLinear(6, 16), torch.nn.Tanh(), FixedResetLinear(16, 2)
    )
    with torch.no_grad():  # trained-like weights, different from the reset ones
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return m.eval()


def _quantus_explain(model, inputs, targets, **kw):
    x = np.asarray(inputs)
    return grad_x_input(model, x.reshape(len(x), -1)).reshape(x.shape)


@pytest.mark.parametrize(
    ("order", "q_order"), [("cascading", "top_down"), ("independent", "independent")]
)
def test_matches_quantus_mprt(order, q_order):
    quantus = import_without_torchvision("quantus")
    model = _model()
    X = np.random.default_rng(0).normal(size=(10, 6)).astype(np.float32)
    ref = quantus.MPRT(layer_order=q_order, disable_warnings=True)(
        model=model,
        x_batch=X[:, None, :],
        y_batch=np.ones(10, dtype=int),
        a_batch=None,
        explain_func=_quantus_explain,
        device="cpu",
    )
    ours = metrics.model_randomisation(
        lambda m, Z: grad_x_input(m, Z), model, X, order=order, per_row=True
    )
    assert list(ours.index) == ["original", "3", "1"]
    assert set(ref) == set(ours.index)
    for layer, scores in ref.items():
        np.testing.assert_allclose(ours.loc[layer].to_numpy(), scores, atol=1e-12)
    summary = metrics.model_randomisation(lambda m, Z: grad_x_input(m, Z), model, X, order=order)
    np.testing.assert_allclose(summary["mean"], ours.mean(axis=1))
    np.testing.assert_allclose(summary["std"], ours.std(axis=1, ddof=1))
    assert (summary["n"] == 10).all()


def test_model_dependent_method_passes_and_model_blind_method_fails():
    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 2),
    ).eval()
    X = np.random.default_rng(1).normal(size=(20, 6)).astype(np.float32)
    good = metrics.model_randomisation(lambda m, Z: grad_x_input(m, Z), model, X)
    blind = metrics.model_randomisation(lambda m, Z: np.abs(np.asarray(Z, float)), model, X)
    assert good.loc["original", "mean"] == pytest.approx(1.0)
    assert good["mean"].iloc[-1] < 0.5  # fully randomised: attributions no longer alike
    np.testing.assert_allclose(blind["mean"], 1.0)  # ignores the model: fails the test


def test_seeded_leaves_model_and_torch_rng_alone():
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    before = [p.detach().clone() for p in model.parameters()]
    X = np.random.default_rng(2).normal(size=(6, 6)).astype(np.float32)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    fn = lambda m, Z: grad_x_input(m, Z)  # noqa: E731
    a = metrics.model_randomisation(fn, model, X, random_state=5, per_row=True)
    assert torch.equal(state, torch.get_rng_state())
    b = metrics.model_randomisation(fn, model, X, random_state=5, per_row=True)
    c = metrics.model_randomisation(fn, model, X, random_state=6, per_row=True)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a.to_numpy()[1:], c.to_numpy()[1:])
    for p, q in zip(model.parameters(), before, strict=True):
        assert torch.equal(p, q)
    pearson = metrics.model_randomisation(
        fn, model, X, similarity="pearson", abs=False, per_row=True
    )
    ref = [
        np.corrcoef(grad_x_input(model, X)[i], grad_x_input(model, X)[i])[0, 1] for i in range(6)
    ]
    np.testing.assert_allclose(pearson.loc["original"], ref)


def test_errors():
    model = _model()
    X = np.zeros((3, 6), dtype=np.float32)
    fn = lambda m, Z: grad_x_input(m, Z)  # noqa: E731
    with pytest.raises(UnsupportedModelError, match=r"torch\.nn\.Module; got LinearRegression"):
        from sklearn.linear_model import LinearRegression

        metrics.model_randomisation(fn, LinearRegression(), X)
    with pytest.raises(InvalidParameterError, match="order='top_down' is not supported"):
        metrics.model_randomisation(fn, model, X, order="top_down")
    with pytest.raises(InvalidParameterError, match="similarity='ssim' is not supported"):
        metrics.model_randomisation(fn, model, X, similarity="ssim")
    with pytest.raises(InvalidParameterError, match="nothing to randomise"):
        metrics.model_randomisation(fn, torch.nn.Tanh(), X)
    with pytest.raises(InvalidParameterError, match="random_state must be a non-negative int"):
        metrics.model_randomisation(fn, model, X, random_state=None)
    with pytest.raises(InvalidParameterError, match="random_state must be a non-negative int"):
        metrics.model_randomisation(fn, model, X, random_state=-1)
