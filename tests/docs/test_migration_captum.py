"""docs/migration/captum.md: every whybox block runs, and where the page says "same values as
Captum" the Captum block (or Captum's exhaustive oracle for the same game) gives the same numbers.

The page's blocks are tagged ``# setup``, ``# captum [k]`` and ``# whybox [k]``. The setup block
and the whybox blocks run in page order in one namespace; the Captum blocks listed in
``CAPTUM_RUNS`` run in a second namespace (after the same setup), and each oracle below compares
the two namespaces right after section k ran on both sides.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings

import numpy as np
import pytest
import torch

from ._md_blocks import blocks, check_prints
from ._public import ROOT

PAGE = ROOT / "docs" / "migration" / "captum.md"


def _label(src: str) -> str:
    m = re.match(r"#\s*\w+\s*\[(\d+)\]", src.strip())
    return m.group(1) if m else ""


def _np(a):
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def _close(a, b, tol):
    a, b = _np(a).astype(float), _np(b).astype(float)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=0, atol=tol)


def _corr(a, b):
    return float(np.corrcoef(_np(a).ravel(), _np(b).ravel())[0, 1])


def _oracle_1(c, w):
    _close(w["attr"], c["attr"], 1e-5)
    _close(w["gap"], -_np(c["delta"]), 1e-5)
    steps = w["adaptive"].meta["steps"]
    assert np.all(np.abs(w["adaptive"].completeness_gap()) < 0.05) and len(steps) == 4


def _oracle_5(c, w):
    assert _corr(w["exp"].values, c["attr"]) > 0.99
    # whybox's adaptive default stops within 1 % of the output scale (the std over baselines)
    out = _np(w["model"](w["data"].X_train[:64]))[:, _np(w["target"])]
    scale = out.std(0)
    assert np.all(np.abs(w["exp"].completeness_gap()) <= 0.01 * scale + 1e-6)


def _oracle_11(c, w):
    _close(w["exp"].values, c["attr"], 1e-4)


def _brute_shapley(f, x, baseline):
    """Shapley values of v(S) = f(x on S, baseline elsewhere) from the formula, all 2**p sets."""
    from itertools import product
    from math import factorial

    p = x.shape[0]
    masks = np.array(list(product([0, 1], repeat=p)), dtype=bool)
    inputs = np.where(masks, x, baseline).astype(np.float32)
    with torch.no_grad():
        v = dict(zip(map(tuple, masks), f(torch.tensor(inputs)).double().numpy(), strict=True))
    phi = np.zeros(p)
    for m, val in v.items():
        s = sum(m)
        for i in range(p):
            if m[i]:
                without = tuple(b if j != i else 0 for j, b in enumerate(m))
                weight = factorial(s - 1) * factorial(p - s) / factorial(p)
                phi[i] += weight * (val - v[without])
    return phi


def _oracle_14(c, w):
    mlp, rows = w["mlp"], _np(w["rows"])
    oracle = np.stack([_brute_shapley(lambda z: mlp(z)[:, 1], r, 0.0) for r in rows])
    _close(w["exact"].values, oracle, 1e-5)
    sampled = w["sampled"]
    assert np.all(np.abs(sampled.values - w["exact"].values) <= 4 * sampled.std + 1e-6)


def _oracle_15(c, w):
    exact = w["wb"].ExactShap(w["mlp"], w["wb"].Baseline(0.0)).explain(w["rows"], target=1)
    _close(w["exp"].values, exact.values, 1e-6)


def _oracle_20(c, w):
    # the same perturbations in both: whybox's (n, n_samples, ...) array, Captum's batch in its
    # order (each input repeated n_samples times in a row)
    from captum.metrics import infidelity

    wb, x, exp = w["wb"], w["x"], w["exp"]
    ns = 10
    pert = (0.1 * np.random.default_rng(0).standard_normal((4, ns, 1, 8, 8))).astype(np.float32)
    ours = wb.metrics.infidelity(
        exp,
        w["model"],
        x,
        target=w["target"],
        perturbation=pert,
        n_samples=ns,
        multiply_by_inputs=False,
    )
    flat = torch.tensor(pert.reshape(4 * ns, 1, 8, 8))
    theirs = infidelity(
        w["model"],
        lambda inp: (flat, inp - flat),
        x,
        torch.tensor(exp.values),
        target=w["target"],
        n_perturb_samples=ns,
        max_examples_per_batch=4 * ns,
    )
    _close(ours, theirs, 1e-5)
    assert np.all(w["sens"] >= 0) and np.all(np.isfinite(w["infid"]))


ORACLES = {
    "1": _oracle_1,
    "2": lambda c, w: _close(w["exp"].values, c["attr"], 1e-6),
    "3": lambda c, w: _close(w["exp"].values, c["attr"], 1e-6),
    "5": _oracle_5,
    "6": lambda c, w: _corr(w["exp"].values, c["attr"]) > 0.99 or pytest.fail("smoothgrad"),
    "8": lambda c, w: _close(w["exp"].values, c["attr"], 1e-6),
    "9": lambda c, w: (
        _close(w["exp"].values, c["upsampled"], 1e-6),
        _close(w["coarse"].values, c["cam"], 1e-6),
    ),
    "10": lambda c, w: _close(w["exp"].values, c["attr"], 1e-6),
    "11": _oracle_11,
    "12": lambda c, w: _close(w["exp"].values, c["attr"], 1e-5),
    "13": lambda c, w: _close(w["exp"].values, c["attr"], 1e-5),
    "14": _oracle_14,
    "15": _oracle_15,
    "20": _oracle_20,
}
# Captum blocks that run as shown (the others name objects the page leaves to the reader, or
# only show a call whybox does not have)
CAPTUM_RUNS = {"1", "2", "3", "5", "6", "8", "9", "10", "11", "12", "13"}


def test_page_has_twenty_sections():
    labels = {_label(b) for b in blocks(PAGE, "whybox")} - {""}
    assert {str(k) for k in range(1, 21)} <= labels
    assert len(blocks(PAGE, "setup")) == 1


def test_whybox_blocks_run_and_match_captum():
    setup = blocks(PAGE, "setup")[0]
    w: dict = {"__name__": "captum_page_whybox"}
    c: dict = {"__name__": "captum_page_captum"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(setup, "captum.md[setup]", "exec"), w)
        # the Captum column runs on the very same model objects (no second training run)
        c.update({k: v for k, v in w.items() if not k.startswith("__")})
        captum_blocks = {_label(b): b for b in blocks(PAGE, "captum")}
        checked = []
        claims = 0
        for k, src in enumerate(blocks(PAGE, "whybox")):
            label = _label(src)
            if label in CAPTUM_RUNS:
                exec(compile(captum_blocks[label], f"captum.md[captum {label}]", "exec"), c)
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    exec(compile(src, f"captum.md[whybox {label or k}]", "exec"), w)
            except Exception as err:  # pragma: no cover - the message points at the page
                raise AssertionError(
                    f"captum.md whybox block {label or k} failed: {err!r}"
                ) from err
            claims += check_prints(src, out.getvalue())  # "print(x)  # what it prints"
            if label in ORACLES:
                ORACLES[label](c, w)
                checked.append(label)
    assert sorted(checked, key=int) == sorted(ORACLES, key=int)
    assert claims >= 10  # the page's printed results are checked, not only run
