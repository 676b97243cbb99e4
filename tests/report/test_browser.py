"""The HTML report in a real browser: headless Chromium over the DevTools Protocol.

The quickstart report is opened and must render without a single console error, every image
must decode, and every section heading must be in the DOM; a full-page screenshot is saved
(also to ``benchmarks/_out/report-screenshot.png`` for a human to look at). A report built on
hostile strings must render them as text: no script element, no dialog.

Chromium must be installed (``make system-deps`` installs it, or prints the command); without it
these tests fail, never skip.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import whybox as wb
from whybox.cli import app
from whybox.explanation import Explanation

from ._browser import Browser, find_chromium

EVIL = "<script>alert(1)</script>"
EVIL_IMG = "<img src=x onerror=alert(2)>"
SCREENSHOT_COPY = Path(__file__).resolve().parents[2] / "benchmarks" / "_out"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with Browser(tmp_path_factory.mktemp("chromium")) as b:
        yield b


@pytest.fixture(scope="module")
def quickstart_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart")
    result = CliRunner().invoke(
        app,
        [
            "quickstart",
            "--out",
            str(out),
            "--n",
            "800",
            "--explain-rows",
            "12",
            "--background-rows",
            "15",
        ],
    )
    assert result.exit_code == 0, result.output
    return out / "index.html"


def _headings(browser: Browser) -> list[str]:
    return browser.evaluate("Array.from(document.querySelectorAll('h2'), h => h.textContent)")


def test_quickstart_report_renders_without_console_errors(browser, quickstart_report, tmp_path):
    browser.events.clear()
    browser.open(quickstart_report)
    assert browser.errors() == []
    assert browser.dialogs() == []
    headings = _headings(browser)
    for title in (
        "Summary",
        "Data",
        "Global importance",
        "Denied applicants and their principal reasons",
        "Ground truth comparison",
        "Explanation quality",
        "Limitations",
    ):
        assert title in headings, headings
    # the navigation links every section, in order
    nav = browser.evaluate("Array.from(document.querySelectorAll('nav a'), a => a.textContent)")
    assert nav == headings
    # every figure decoded to a real image, and nothing was fetched from anywhere but data:
    images = browser.evaluate(
        "Array.from(document.images, i => [i.complete, i.naturalWidth, i.src.slice(0, 26)])"
    )
    assert len(images) >= 8
    for complete, width, src in images:
        assert complete and width > 0 and src == "data:image/svg+xml;base64,"
    resources = browser.evaluate(
        "performance.getEntriesByType('resource').map(e => e.name).filter("
        "n => !n.startsWith('data:'))"
    )
    assert resources == []
    assert browser.evaluate("document.querySelectorAll('script').length") == 0
    # the page has a real layout: the sections stack to more than a screen
    assert browser.evaluate("document.body.scrollHeight") > 2000

    shot = browser.screenshot(tmp_path / "report-screenshot.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    SCREENSHOT_COPY.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT_COPY / "report-screenshot.png")


def test_a_console_error_is_caught(browser, quickstart_report):
    """The error collection works: a page that logs an error is caught."""
    browser.events.clear()
    browser.open(quickstart_report)
    browser.evaluate("console.error('deliberate'); 1")
    assert browser.errors() == ["console: deliberate"]


def evil_report(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    data = pd.DataFrame(
        {
            EVIL: rng.normal(size=8),
            "purpose": pd.Categorical([EVIL_IMG, "car"] * 4),
            "plain": rng.normal(size=8),
        },
        index=[EVIL if i == 0 else f"<b>row{i}</b>" for i in range(8)],
    )
    values = rng.normal(size=(8, 3))
    exp = Explanation(
        values,
        np.zeros(8),
        data=data,
        predictions=values.sum(1),
        method="exact",
        params={"output": EVIL},
    )
    reasons = wb.reason_codes(exp, [0, 1], phrases={"plain": EVIL + " {value}"})
    rep = wb.report(exp, X=data, rows=[0, 1], reasons=reasons, title=EVIL)
    return rep.save(tmp_path / "evil.html")


def test_hostile_strings_render_as_text(browser, tmp_path):
    path = evil_report(tmp_path)
    browser.events.clear()
    browser.open(path)
    assert browser.dialogs() == []
    assert browser.errors() == []
    assert browser.evaluate("document.querySelectorAll('script').length") == 0
    assert browser.evaluate("document.querySelectorAll('[onerror]').length") == 0
    # the only images are the report's own figures
    srcs = browser.evaluate("Array.from(document.images, i => i.src.slice(0, 26))")
    assert srcs and set(srcs) == {"data:image/svg+xml;base64,"}
    text = browser.evaluate("document.body.innerText")
    # shown literally, where a reader can see them
    assert EVIL in text  # feature name, title, output, row label
    assert EVIL_IMG in text  # category value (in the data summary)
    assert browser.evaluate("document.title") == EVIL


def test_the_dialog_check_can_fail(browser, tmp_path):
    """An unescaped page does open a dialog, and the browser helper sees it."""
    page = tmp_path / "unsafe.html"
    page.write_text(f"<!DOCTYPE html><html><body>{EVIL}</body></html>")
    browser.events.clear()
    browser.open(page)
    assert browser.dialogs() == ["1"]
    assert browser.evaluate("document.querySelectorAll('script').length") == 1


def test_missing_chromium_fails_and_says_how_to_install(monkeypatch):
    """Without Chromium the browser tests fail, never skip; the old skip switch is gone."""
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("WHYBOX_CHROMIUM", raising=False)
    for switch in (None, "1"):  # WHYBOX_SKIP_BROWSER=1 no longer turns the failure into a skip
        if switch is not None:
            monkeypatch.setenv("WHYBOX_SKIP_BROWSER", switch)
        with pytest.raises(pytest.fail.Exception, match=r"make system-deps.*apt-get install"):
            find_chromium()
