"""Saliency, InputXGradient, SmoothGrad and VarGrad against Captum and hand computations."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
captum_attr = pytest.importorskip("captum.attr")

import whybox as wb  # noqa: E402
from whybox.errors import (  # noqa: E402
    InvalidInputError,
    InvalidParameterError,
    UnsupportedModelError,
)
from whybox.gradients import TrainingModeWarning  # noqa: E402


@pytest.mark.parametrize("absolute", [True, False])
def test_saliency_equals_captum(cnn, x16, absolute) -> None:
    model, data = cnn
    target = data.y_test[:16]
    exp = wb.Saliency(model, absolute=absolute).explain(x16, target=target)
    ref = captum_attr.Saliency(model).attribute(x16, target=target, abs=absolute)
    assert exp.values.shape == (16, 1, 8, 8)
    np.testing.assert_allclose(exp.values, ref.detach().numpy(), rtol=1e-5, atol=1e-7)
    with torch.no_grad():
        out = model(x16)
    np.testing.assert_allclose(exp.predictions, out.gather(1, target[:, None])[:, 0], rtol=1e-6)
    np.testing.assert_array_equal(exp.data, x16.detach().numpy())
    assert exp.method == "saliency" and exp.params["absolute"] is absolute
    assert exp.feature_names[:2] == ["x[0,0,0]", "x[0,0,1]"]


def test_input_x_gradient_equals_captum_for_several_targets(cnn, x16) -> None:
    model, _ = cnn
    exp = wb.InputXGradient(model).explain(x16, target=[2, 7])
    assert exp.values.shape == (16, 1, 8, 8, 2) and exp.output_names == ["output 2", "output 7"]
    for j, t in enumerate([2, 7]):
        ref = captum_attr.InputXGradient(model).attribute(x16, target=t)
        np.testing.assert_allclose(exp.values[..., j], ref.detach().numpy(), rtol=1e-5, atol=1e-7)
    named = wb.InputXGradient(model, output_names=[str(d) for d in range(10)])
    np.testing.assert_allclose(named.explain(x16, target="7").values, exp.values[..., 1])


def test_batch_size_does_not_change_results_and_dtype_follows_model(cnn64, x16) -> None:
    x = x16.double()
    a = wb.Saliency(cnn64, absolute=False).explain(x16, target=4)  # float32 in: cast to float64
    b = wb.Saliency(cnn64, absolute=False).explain(x, target=4, internal_batch_size=3)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-12, atol=1e-14)
    ref = captum_attr.Saliency(cnn64).attribute(x.clone(), target=4, abs=False)
    np.testing.assert_allclose(a.values, ref.detach().numpy(), rtol=1e-12, atol=1e-14)


def _noisy_inputs(x, noise, n_samples, seed):
    """The noise SmoothGrad documents: each example's own numpy Generator, seeded by the seed
    and the example's float64 content (blake2b of dtype, shape and bytes, as
    whybox.parallel.row_seed does), drawing n_samples standard normals of its shape in turn,
    scaled by noise * (max - min) of the example."""
    xn = x.detach().numpy().astype(np.float64)
    eps = []
    for row in xn:
        digest = hashlib.blake2b(
            str(row.dtype).encode() + str(row.shape).encode() + row.tobytes(), digest_size=16
        ).digest()
        seq = np.random.SeedSequence([seed, *np.frombuffer(digest, dtype=np.uint32).tolist()])
        eps.append(np.random.default_rng(seq).standard_normal((n_samples, *row.shape)))
    eps = np.stack(eps, axis=1)  # (n_samples, n, ...)
    span = xn.reshape(len(xn), -1).max(1) - xn.reshape(len(xn), -1).min(1)
    sigma = (noise * span).reshape(-1, 1, 1, 1)
    return [xn + sigma * eps[s] for s in range(n_samples)]


def test_smoothgrad_and_vargrad_match_captum_on_the_same_noise(cnn, x16) -> None:
    batch = 13  # two noisy copies of the 6 inputs per call: the chunking is exercised
    model, data = cnn
    x = x16[:6]
    target = data.y_test[:6]
    sg = wb.SmoothGrad(wb.Saliency(model), noise=0.2, n_samples=7, random_state=3)
    exp = sg.explain(x, target=target, internal_batch_size=batch)
    per_sample = np.stack(
        [
            captum_attr.Saliency(model)
            .attribute(torch.as_tensor(xn, dtype=torch.float32), target=target, abs=True)
            .detach()
            .numpy()
            for xn in _noisy_inputs(x, 0.2, 7, 3)
        ]
    )
    np.testing.assert_allclose(exp.values, per_sample.mean(0), rtol=1e-4, atol=1e-6)
    vg = wb.VarGrad(wb.Saliency(model), noise=0.2, n_samples=7, random_state=3)
    np.testing.assert_allclose(
        vg.explain(x, target=target, internal_batch_size=batch).values,
        per_sample.var(0),
        rtol=1e-3,
        atol=1e-6,
    )
    assert exp.params["wrapped"] == "saliency" and exp.n_evals == 7 and exp.random_state == 3


def test_smoothgrad_absolute_noise_equals_captum_noise_tunnel_with_zero_noise(cnn, x16) -> None:
    model, _ = cnn
    ours = wb.SmoothGrad(wb.InputXGradient(model), noise=0.0, n_samples=3, relative=False)
    ref = captum_attr.NoiseTunnel(captum_attr.InputXGradient(model)).attribute(
        x16, nt_type="smoothgrad", nt_samples=3, stdevs=0.0, target=1
    )
    np.testing.assert_allclose(
        ours.explain(x16, target=1).values, ref.detach().numpy(), rtol=1e-5, atol=1e-7
    )


def test_smoothgrad_wraps_integrated_gradients(cnn, x16) -> None:
    model, _ = cnn
    x = x16[:4]
    exp = wb.SmoothGrad(wb.IntegratedGradients(model), noise=0.1, n_samples=3, random_state=0)
    got = exp.explain(x, target=2, steps=8, method="riemann_middle")
    ig = captum_attr.IntegratedGradients(model)
    refs = [
        ig.attribute(
            torch.as_tensor(xn, dtype=torch.float32), target=2, n_steps=8, method="riemann_middle"
        )
        .detach()
        .numpy()
        for xn in _noisy_inputs(x, 0.1, 3, 0)
    ]
    np.testing.assert_allclose(got.values, np.mean(refs, axis=0), rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        np.testing.assert_allclose(got.base_values, model(torch.zeros_like(x))[:, 2], rtol=1e-6)


def test_target_errors(cnn, x16) -> None:
    model, _ = cnn
    sal = wb.Saliency(model)
    with pytest.raises(InvalidParameterError, match="target 10 is out of range: the model has 10"):
        sal.explain(x16, target=10)
    every = sal.explain(x16[:2])  # no target: all outputs of a multi-output model (DESIGN)
    np.testing.assert_array_equal(every.values, sal.explain(x16[:2], target="all").values)
    assert every.values.shape == (2, 1, 8, 8, 10) and every.output_names[9] == "output 9"
    np.testing.assert_array_equal(every.values[..., 4], sal.explain(x16[:2], target=4).values)
    with pytest.raises(InvalidParameterError, match=r"one output per explained row.*\(16,\)"):
        sal.explain(x16, target=torch.tensor([1, 2]))
    with pytest.raises(InvalidParameterError, match="unknown target 'cat'"):
        sal.explain(x16, target="cat")


def test_bad_inputs_and_models(cnn, x16) -> None:
    model, _ = cnn
    sal = wb.Saliency(model)
    with pytest.raises(InvalidInputError, match="is on device 'meta' but the model is on 'cpu'"):
        sal.explain(torch.empty(2, 1, 8, 8, device="meta"), target=0)
    with pytest.raises(InvalidInputError, match=r"integer dtype .* \(token ids\?\).*layer="):
        sal.explain(torch.ones(2, 1, 8, 8, dtype=torch.int64), target=0)
    with pytest.raises(InvalidInputError, match="must have a batch axis"):
        sal.explain(torch.ones(8), target=0)
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        sal.explain(torch.full((1, 1, 8, 8), float("nan")), target=0)
    with pytest.raises(InvalidInputError, match="is empty"):
        sal.explain(torch.ones(0, 1, 8, 8), target=0)
    with pytest.raises(UnsupportedModelError, match=r"need a torch\.nn\.Module"):
        wb.Saliency(lambda x: x)
    with pytest.raises(InvalidParameterError, match="wraps a gradient explainer"):
        wb.SmoothGrad(model)
    with pytest.raises(InvalidParameterError, match="noise must be a non-negative number"):
        wb.SmoothGrad(sal, noise=-1.0)


def test_training_mode_model_is_explained_in_eval_mode_and_restored() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 2))
    x = torch.randn(5, 4)
    net.eval()
    expected = captum_attr.Saliency(net).attribute(x, target=1, abs=False).detach().numpy()
    net.train()
    with pytest.warns(TrainingModeWarning, match="is in training mode; whybox explains it in eval"):
        got = wb.Saliency(net, absolute=False).explain(x, target=1)
    np.testing.assert_allclose(got.values, expected, rtol=1e-6)
    assert net.training and all(m.training for m in net.modules())
    net.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wb.Saliency(net).explain(x, target=1)


def test_smoothgrad_noise_does_not_depend_on_the_batch(cnn, x16) -> None:
    model, _ = cnn
    sg = wb.SmoothGrad(wb.Saliency(model), noise=0.2, n_samples=6, random_state=3)
    whole = sg.explain(x16[:6], target=2)
    part = sg.explain(x16[3:5], target=2)
    np.testing.assert_allclose(part.values, whole.values[3:5], rtol=1e-6, atol=1e-9)
