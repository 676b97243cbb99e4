"""The HTML report: escaping, self-containment, numbers it shows."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score

import whybox as wb
from whybox.explanation import Explanation
from whybox.report.builder import model_metrics

EVIL = "<script>alert(1)</script>"


@pytest.fixture
def evil_exp():
    rng = np.random.default_rng(0)
    data = pd.DataFrame(
        {
            EVIL: rng.normal(size=6),
            "purpose": pd.Categorical(["<img src=x onerror=alert(2)>", "car"] * 3),
            "plain": rng.normal(size=6),
        },
        index=[f"<b>row{i}</b>" for i in range(6)],
    )
    values = rng.normal(size=(6, 3))
    base = np.zeros(6)
    return Explanation(
        values,
        base,
        data=data,
        predictions=values.sum(1),
        method="exact",
        params={"output": "<i>risk</i>"},
    )


def test_user_strings_are_escaped(evil_exp):
    reasons = wb.reason_codes(evil_exp, [0, 1], phrases={"plain": "<u>too</u> {value}"})
    html = wb.report(evil_exp, rows=[0, 1], reasons=reasons).to_html()
    assert EVIL not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html
    assert "<b>row0</b>" not in html and "&lt;b&gt;row0&lt;/b&gt;" in html
    assert "<i>risk</i>" not in html
    assert "<u>too</u>" not in html
    assert re.search(r"<script", html, re.IGNORECASE) is None


def test_report_is_self_contained(evil_exp, tmp_path):
    path = wb.report(evil_exp).save(tmp_path / "r.html")
    html = path.read_text()
    # every image is inline, nothing is fetched
    srcs = re.findall(r'(?:src|href)="([^"#]+)"', html)
    assert srcs and all(s.startswith("data:image/svg+xml;base64,") for s in srcs)
    assert "http://" not in html and "https://" not in html
    for section in ("Summary", "Global importance", "Local explanations"):
        assert section in html


def test_save_to_folder_writes_index(evil_exp, tmp_path):
    path = wb.report(evil_exp).save(tmp_path / "out/")
    assert path == tmp_path / "out" / "index.html"
    assert path.read_text().startswith("<!DOCTYPE html>")


def test_importance_table_numbers(evil_exp):
    html = wb.report(evil_exp).to_html()
    mean = np.abs(evil_exp.values).mean(axis=0)
    for m in mean:
        assert f"{m:.4g}" in html


def test_truth_section_reports_correlation(evil_exp):
    rng = np.random.default_rng(1)
    truth = evil_exp.values + 0.1 * rng.normal(size=evil_exp.values.shape)
    html = wb.report(evil_exp, truth=truth).to_html()
    overall = np.corrcoef(evil_exp.values.ravel(), truth.ravel())[0, 1]
    assert "Ground truth comparison" in html
    assert f"correlate {overall:.3f}" in html
    with pytest.raises(wb.InvalidParameterError, match="same rows and features"):
        wb.report(evil_exp, truth=truth[:, :2])


def test_model_metrics_match_sklearn():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] + rng.normal(size=200) > 0).astype(int)
    model = LogisticRegression().fit(X[:100], y[:100])
    m = model_metrics(model, X[100:], y[100:])
    assert m["accuracy"] == accuracy_score(y[100:], model.predict(X[100:]))
    assert m["ROC AUC"] == roc_auc_score(y[100:], model.predict_proba(X[100:])[:, 1])
