"""wb.explain routes the torch-only methods (saliency, SmoothGrad, Grad-CAM, LRP) by name."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
captum_attr = pytest.importorskip("captum.attr")

import whybox as wb  # noqa: E402
from whybox.errors import InvalidParameterError  # noqa: E402


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).eval()


def _cnn() -> torch.nn.Module:
    torch.manual_seed(1)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2)
    ).eval()


def test_saliency_and_input_x_gradient_equal_captum():
    m, x = _mlp(), torch.randn(4, 5, generator=torch.Generator().manual_seed(2))
    sal = wb.explain(m, x, method="saliency", target=1, absolute=False)
    want = captum_attr.Saliency(m).attribute(x, target=1, abs=False)
    np.testing.assert_allclose(sal.values, want.detach().numpy(), atol=1e-6)
    ixg = wb.explain(m, x, method="input_x_gradient", target=2)
    want = captum_attr.InputXGradient(m).attribute(x, target=2)
    np.testing.assert_allclose(ixg.values, want.detach().numpy(), atol=1e-6)
    assert sal.params["method_selection"] == "saliency -> saliency: requested"


def test_lrp_smoothgrad_and_gradcam_equal_their_explainers():
    m, x = _mlp(), torch.randn(4, 5, generator=torch.Generator().manual_seed(3))
    np.testing.assert_allclose(
        wb.explain(m, x, method="lrp", target=0, composite="epsilon_plus", epsilon=0.01).values,
        wb.LRP(m, "epsilon_plus", epsilon=0.01).explain(x, target=0).values,
    )
    got = wb.explain(m, x, method="smoothgrad", target=0, n_samples=6, noise=0.1, random_state=4)
    want = wb.SmoothGrad(wb.Saliency(m), n_samples=6, noise=0.1, random_state=4).explain(
        x, target=0
    )
    np.testing.assert_allclose(got.values, want.values)
    cnn = _cnn()
    img = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    np.testing.assert_allclose(
        wb.explain(cnn, img, method="gradcam", target=1, layer="0", upsample=False).values,
        wb.GradCam(cnn, "0").explain(img, target=1, upsample=False).values,
    )


def test_bad_keywords_and_models_are_refused():
    m, x = _mlp(), torch.randn(2, 5)
    with pytest.raises(InvalidParameterError, match="Did you mean epsilon="):
        wb.explain(m, x, method="lrp", target=0, epsilonn=0.1)
    with pytest.raises(InvalidParameterError, match="needs layer="):
        wb.explain(_cnn(), torch.randn(1, 1, 8, 8), method="gradcam", target=0)
    with pytest.raises(InvalidParameterError, match="uses no background"):
        wb.explain(m, x, method="saliency", target=0, background=x)
    with pytest.raises(InvalidParameterError, match="explains torch modules"):
        wb.explain(lambda z: z, x.numpy(), method="lrp")
