"""docs/migration/shap.md: every whybox block runs, and where the page says "same values as
shap" the shap block (or a stated shap oracle over the same game) gives the same numbers.

The page's blocks are tagged ``# setup``, ``# shap [k]`` and ``# whybox [k]``. The setup block
and the whybox blocks run in page order in one namespace; the shap blocks listed in
``SHAP_RUNS`` run in a second namespace (after the same setup), and each oracle below compares
the two namespaces right after section k ran on both sides.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings

import numpy as np

from ._md_blocks import blocks, check_prints
from ._public import ROOT

PAGE = ROOT / "docs" / "migration" / "shap.md"

with warnings.catch_warnings():
    # shap's import-time notices about matplotlib colormap setters, not ours
    warnings.simplefilter("ignore", PendingDeprecationWarning)
    import shap  # a dev dependency: the oracle is part of the page's claim


def _label(src: str) -> str:
    m = re.match(r"#\s*\w+\s*\[(\d+)\]", src.strip())
    return m.group(1) if m else ""


def _close(a, b, tol=1e-8):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=0, atol=tol)


def _oracle_3(s, w):
    # interventional TreeShap == shap's brute-force ExactExplainer over the same background
    ex = shap.ExactExplainer(s["forest"].predict, s["background"])(s["rows"].iloc[:2])
    _close(w["exp"].values[:2], ex.values)
    _close(w["exp"].base_values[:2], ex.base_values)
    # what the page says of shap's own interventional TreeExplainer (shap 0.51) on this forest
    tree = s["sv"]
    off = np.abs(tree.values[:2] - ex.values).max()
    miss = np.abs(tree.values.sum(1) + tree.base_values - s["forest"].predict(s["rows"])).max()
    assert 0.05 < off < 0.2 and 1e-3 < miss < 5e-3, (off, miss)
    from sklearn.tree import DecisionTreeRegressor

    one = DecisionTreeRegressor(max_depth=4, random_state=0).fit(s["X_train"], s["y_train"])
    sv_one = shap.TreeExplainer(one, s["background"], feature_perturbation="interventional")
    exact_one = w["wb"].ExactShap(one, s["background"]).explain(s["rows"])
    assert np.abs(sv_one(s["rows"]).values - exact_one.values).max() < 1e-5


def _oracle_4(s, w):
    _close(w["exp_raw"].values, s["sv_raw"].values)
    _close(w["exp_prob"].values, s["sv_prob"].values)
    # the exact values of the probability add up to it, shap's rescaled ones need not
    assert np.abs(w["exact_prob"].completeness_gap()).max() < 1e-10


def _oracle_6(s, w):
    # same background rows for both (the two kmeans summaries differ by design)
    bg = s["X_train"].iloc[:40]
    sv = shap.KernelExplainer(s["linear"].predict, bg).shap_values(
        s["rows"], nsamples=2048, silent=True
    )
    exp = w["wb"].KernelShap(s["linear"], bg, random_state=0).explain(s["rows"], budget=2048)
    _close(exp.values, sv)
    # and the page's own call (kmeans background) is exact for a linear model: the closed form
    lin = w["wb"].LinearShap(s["linear"], w["wb"].kmeans(s["X_train"], 10)).explain(s["rows"])
    _close(w["exp"].values, lin.values, 1e-6)


def _oracle_8(s, w):
    exact = w["wb"].ExactShap(s["forest"], s["background"]).explain(s["rows"])
    exp = w["exp"]
    assert np.all(np.abs(exp.values - exact.values) <= 4 * exp.std + 1e-9)
    assert np.abs(exp.completeness_gap()).max() < 1e-8


def _oracle_16(s, w):
    ex = shap.ExactExplainer(s["logistic"].decision_function, s["background_c"])(s["rows_c"])
    _close(w["exp"].values, ex.values)
    _close(w["exp"].base_values, ex.base_values)


ORACLES = {
    "1": lambda s, w: _close(w["exp"].values, s["sv"].values),
    "2": lambda s, w: _close(w["values"], s["values"]),
    "3": _oracle_3,
    "4": _oracle_4,
    "6": _oracle_6,
    "8": _oracle_8,
    "9": lambda s, w: _close(w["exp"].values[:2], s["sv"].values[:2]),
    "10": lambda s, w: _close(w["exp"].values, s["sv"].values),
    "14": lambda s, w: _close(w["exp"].values, s["sv"].values),
    "15": lambda s, w: _close(w["inter"].values, s["interactions"]),
}
# shap blocks that run as shown (the others name objects the page leaves to the reader, draw
# plots, or are slow: 9 runs on two rows only)
SHAP_RUNS = {"1", "2", "3", "4", "14", "15", "10"}


def test_page_has_twenty_sections():
    labels = {_label(b) for b in blocks(PAGE, "whybox")} - {""}
    assert {str(k) for k in range(1, 21)} <= labels
    assert len(blocks(PAGE, "setup")) == 1


def test_whybox_blocks_run_and_match_shap():
    setup = blocks(PAGE, "setup")[0]
    w: dict = {"__name__": "shap_page_whybox"}
    s: dict = {"__name__": "shap_page_shap"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(setup, "shap.md[setup]", "exec"), w)
        exec(compile(setup, "shap.md[setup]", "exec"), s)
        import shap as _shap  # the page's shap column imports it in its first block

        s["shap"] = _shap
        shap_blocks = {_label(b): b for b in blocks(PAGE, "shap")}
        checked = []
        claims = 0
        for k, src in enumerate(blocks(PAGE, "whybox")):
            label = _label(src)
            if label in SHAP_RUNS:
                exec(compile(shap_blocks[label], f"shap.md[shap {label}]", "exec"), s)
            if label == "9":  # shap's ExactExplainer on two rows only (it takes ~3 s a row)
                s["sv"] = _shap.ExactExplainer(s["forest"].predict, s["background"])(
                    s["rows"].iloc[:2]
                )
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    exec(compile(src, f"shap.md[whybox {label or k}]", "exec"), w)
            except Exception as err:  # pragma: no cover - the message points at the page
                raise AssertionError(f"shap.md whybox block {label or k} failed: {err!r}") from err
            claims += check_prints(src, out.getvalue())  # "print(x)  # what it prints"
            if label in ORACLES:
                ORACLES[label](s, w)
                checked.append(label)
    assert sorted(checked, key=int) == sorted(ORACLES, key=int)
    assert claims >= 10  # the page's printed results are checked, not only run
