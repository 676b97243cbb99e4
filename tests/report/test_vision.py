"""The vision report and ``whybox quickstart --vision``: figures, metrics recomputed independently."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from typer.testing import CliRunner

import whybox as wb
from whybox.cli import app
from whybox.errors import InvalidParameterError
from whybox.report.vision import VISION_METHODS, vision_report

torch = pytest.importorskip("torch")
captum_attr = pytest.importorskip("captum.attr")


@pytest.fixture(scope="module")
def digits():
    return wb.zoo.digits_cnn(random_state=0)


def _deletion_insertion_by_hand(model, x, target, heat):
    """Pixels set to 0 (deletion) or taken from x onto black (insertion), most positive first;
    trapezoid AUC of the logit normalised to 1 (full image) and 0 (black image)."""
    order = np.argsort(-heat.ravel(), kind="stable")
    P = heat.size
    flat = x.reshape(-1).astype(np.float64)
    dele, ins = [], []
    for k in range(P + 1):
        d = flat.copy()
        d[order[:k]] = 0.0
        i = np.zeros_like(flat)
        i[order[:k]] = flat[order[:k]]
        dele.append(d)
        ins.append(i)
    batch = torch.tensor(np.stack(dele + ins), dtype=torch.float32).reshape(-1, *x.shape)
    with torch.no_grad():
        logit = model(batch)[:, target].double().numpy()
        full = model(torch.tensor(x[None], dtype=torch.float32))[0, target].item()
        empty = model(torch.zeros((1, *x.shape)))[0, target].item()
    frac = np.arange(P + 1) / P

    def auc(v):
        v = (v - empty) / (full - empty)
        return float(((v[1:] + v[:-1]) * 0.5 * np.diff(frac)).sum())

    return auc(logit[: P + 1]), auc(logit[P + 1 :])


def test_report_metrics_match_an_independent_computation(digits):
    model, data = digits
    x = data.X_test[:2]
    rep = vision_report(
        model, x, methods=("integrated_gradients", "kernel_shap"), n_segments=9, budget=2**9
    )
    methods_sec, curves_sec = rep.sections
    assert len(methods_sec["figures"]) == 2
    assert all(f["src"].startswith("data:image/svg+xml;base64,") for f in methods_sec["figures"])
    with torch.no_grad():
        targets = model(x).argmax(dim=1)
    # Integrated Gradients through Captum: same baseline, steps and rule
    ig = captum_attr.IntegratedGradients(model).attribute(
        x, baselines=0.0, target=targets, n_steps=64, method="gausslegendre"
    )
    rows = curves_sec["table"]["rows"]
    for i in range(2):
        heat = ig[i].sum(dim=0).detach().numpy().astype(np.float64)
        d, ins = _deletion_insertion_by_hand(model, x[i].numpy(), int(targets[i]), heat)
        got_d, got_i = (float(s) for s in rows[i][1].split(" / "))
        assert got_d == pytest.approx(d, abs=2e-3)
        assert got_i == pytest.approx(ins, abs=2e-3)
    with torch.no_grad():
        span = (model(x) - model(torch.zeros_like(x))).gather(1, targets[:, None])[:, 0]
    gap = (span - ig.sum(dim=(1, 2, 3))).abs() / span.abs()
    table = {r[0]: r for r in methods_sec["table"]["rows"]}
    ig_row = table[VISION_METHODS["integrated_gradients"]]
    assert float(ig_row[3]) == pytest.approx(float(gap.max()), rel=0.05)
    assert float(table[VISION_METHODS["kernel_shap"]][3]) < 1e-10  # exact at 2**9 coalitions
    assert float(ig_row[1]) == pytest.approx(
        np.mean([float(r[1].split(" / ")[0]) for r in rows]), abs=2e-3
    )


def test_quickstart_vision_writes_the_report(tmp_path, digits):
    out = tmp_path / "vision"
    result = CliRunner().invoke(app, ["quickstart", "--vision", "--images", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = (out / "index.html").read_text(encoding="utf-8")
    for title in VISION_METHODS.values():
        assert title in html
        assert title in result.output
    assert "deletion AUC (lower is better)" in html
    assert "insertion AUC (higher is better)" in html
    assert "largest relative completeness gap" in html
    # two side-by-side figures (one per image) and the curves, all inline
    assert html.count('src="data:image/svg+xml;base64,') == 3
    assert 'src="http' not in html  # self-contained: nothing loaded from the network


def test_bad_parameters_messages(digits):
    model, data = digits
    with pytest.raises(InvalidParameterError, match="method='lrp' is not supported"):
        vision_report(model, data.X_test[:1], methods=("lrp",))
    with pytest.raises(InvalidParameterError, match=r"one class index per image, shape \(2,\)"):
        vision_report(model, data.X_test[:2], targets=[1])
    with pytest.raises(InvalidParameterError, match="between 0 and 9"):
        vision_report(model, data.X_test[:1], targets=[12])
