"""Fixtures of the gradient tests: the zoo digits CNN and small hand-made torch models."""

from __future__ import annotations

import warnings as _w

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("captum")


@pytest.fixture(scope="session")
def cnn():
    """The zoo digits CNN (trained once and cached in the user cache) and its data."""
    import whybox as wb

    model, data = wb.zoo.digits_cnn(random_state=0)
    return model, data


@pytest.fixture
def x16(cnn):
    return cnn[1].X_test[:16].clone()


@pytest.fixture
def linear():
    """A linear model with 3 outputs on 5 features (bias included)."""
    torch.manual_seed(0)
    net = torch.nn.Linear(5, 3).double().eval()
    return net


@pytest.fixture(autouse=True)
def _quiet_captum():
    """Captum warns when it sets requires_grad on our inputs; that is expected here."""
    with _w.catch_warnings():
        _w.filterwarnings("ignore", message="Input Tensor", category=UserWarning)
        _w.filterwarnings("ignore", message="Setting backward hooks", category=UserWarning)
        yield


@pytest.fixture(scope="session")
def cnn64(cnn):
    """A float64 copy of the digits CNN: batch-size invariance is checked to 1e-12 on it
    (float32 kernels may round differently for different batch sizes)."""
    import copy

    return copy.deepcopy(cnn[0]).double()
