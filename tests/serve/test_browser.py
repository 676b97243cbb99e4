"""The dashboard in a real browser: Playwright (Python) driving the Debian Chromium.

The app runs with uvicorn on a free port (``LiveServer``); every page is opened, waited for,
checked for console errors, page errors and dialogs, and screenshot into the artifact folder
(``$WHYBOX_TEST_ARTIFACTS/serve`` when set, else the test's tmp_path). The hostile-string
page must show ``<img src=x onerror=alert(1)>`` as text, with no element injected; a feature
page of an SAE trained here (``wb.sae.train`` on the zoo's tiny GPT-2) must show its top
contexts with their tokens.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.serve._helpers import HOSTILE, LiveServer, hostile_folder, tree_snapshot

pytest.importorskip("fastapi")
try:
    from playwright import sync_api
except ImportError:  # never a silent skip: make test installs it with the dev extra
    pytest.fail(
        "the dashboard's browser tests need Playwright for Python (no browser download: it "
        "drives the system Chromium): pip install -c constraints.txt playwright, or "
        "pip install -e '.[dev]'.",
        pytrace=False,
    )

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--no-first-run"]  # fmt: skip


def _chromium() -> str:
    path = os.environ.get("WHYBOX_CHROMIUM") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    path = path or shutil.which("chromium")
    if not path:
        pytest.fail(
            "the dashboard's browser tests need Chromium at /usr/bin/chromium (or "
            "$WHYBOX_CHROMIUM): run `make system-deps` (apt-get install chromium)."
        )
    return path


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    base = os.environ.get("WHYBOX_TEST_ARTIFACTS")
    folder = Path(base) / "serve" if base else tmp_path_factory.mktemp("serve-screens")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=_chromium(), args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from whybox.serve import create_app

    root = hostile_folder(tmp_path_factory.mktemp("served") / "folder")
    before = tree_snapshot(root)
    with LiveServer(create_app(root, poll_interval=0.2)) as server:
        yield server, root
    assert tree_snapshot(root) == before, "the dashboard wrote inside the served folder"


class Page:
    """One browser page that records console errors, page errors and dialogs."""

    def __init__(self, browser, base: str, artifacts: Path) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.base, self.artifacts = base, artifacts
        self.problems: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(m.text))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("dialog", lambda d: (self.problems.append(f"dialog: {d.message}"),
                                          d.dismiss()))  # fmt: skip

    def wait_until(self, js: str, timeout: float = 20.0) -> None:
        """Poll ``js`` (a function expression) with ``evaluate``: ``wait_for_function``
        evaluates strings with ``eval``, which the page's content security policy forbids."""
        deadline = time.monotonic() + timeout
        while not self.page.evaluate(js):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {js}")
            time.sleep(0.05)

    def open(self, fragment: str, shot: str, wait_for: str | None = None) -> None:
        self.page.goto(f"{self.base}/#/{fragment}")
        self.page.evaluate("() => document.body.setAttribute('data-loading', '1')")
        self.page.evaluate("() => window.dispatchEvent(new HashChangeEvent('hashchange'))")
        self.wait_until("() => document.body.getAttribute('data-loading') === '0'")
        if wait_for:
            self.page.wait_for_selector(wait_for, timeout=20_000)
        self.page.screenshot(path=str(self.artifacts / f"{shot}.png"), full_page=True)
        assert not self.problems, f"{fragment}: {self.problems}"
        assert not self.page.query_selector(".error"), self.page.inner_text(".error")

    def close(self) -> None:
        self.page.close()


def _q(path: str) -> str:
    return quote(path, safe="")


PAGES = [
    ("", "index", "table"),
    ("explanation?path=tabular.whybox", "explanation_tabular", "svg.waterfall"),
    (f"explanation?path={_q(HOSTILE + '.whybox')}", "explanation_text", ".text-heatmap"),
    ("explanation?path=images%2Fimage.whybox&row=1", "explanation_image", "#row-detail canvas"),
    ("explanation?path=patching.whybox", "explanation_patching", "table.heatmap"),
    ("table?path=lens.csv", "lens", "table.heatmap"),
    ("report?path=report.html", "report", "iframe.report"),
    ("sae?path=sae", "sae", "ul"),
    ("features?path=sae%2Ffeatures", "features", "#density svg.histogram rect"),
    ("feature?path=sae%2Ffeatures&j=0", "feature_hostile", "#top-contexts .ctx"),
]


@pytest.mark.parametrize(("fragment", "shot", "wait_for"), PAGES, ids=[p[1] for p in PAGES])
def test_pages_load_without_console_errors(browser, site, artifacts, fragment, shot, wait_for):
    server, _ = site
    page = Page(browser, server.url, artifacts)
    try:
        page.open(fragment, shot, wait_for)
    finally:
        page.close()


def test_hostile_strings_show_as_text_not_markup(browser, site, artifacts):
    server, _ = site
    page = Page(browser, server.url, artifacts)
    try:
        pg = page.page
        # index: the hostile file name; explanation: feature name in bars, beeswarm, waterfall
        for fragment, shot in [
            ("", "hostile_index"),
            ("explanation?path=tabular.whybox", "hostile_tabular"),
            (f"explanation?path={_q(HOSTILE + '.whybox')}&row=1", "hostile_text"),
            ("table?path=lens.csv", "hostile_lens"),
            ("feature?path=sae%2Ffeatures&j=0", "hostile_feature"),
            ("features?path=sae%2Ffeatures", "hostile_features"),
        ]:
            page.open(fragment, shot)
            assert HOSTILE in pg.inner_text("main"), fragment
            # no element was made from the string: the page itself has no <img> at all
            assert pg.eval_on_selector_all("img", "els => els.length") == 0, fragment
            assert pg.eval_on_selector_all("[onerror]", "els => els.length") == 0, fragment
        # the text row's tokens: one span holds the hostile token as its text
        page.open(f"explanation?path={_q(HOSTILE + '.whybox')}&row=1", "hostile_tokens")
        spans = pg.eval_on_selector_all(".text-heatmap .tok", "els => els.map(e => e.textContent)")
        assert spans[0] == HOSTILE and len(spans) == 4
        # search by the hostile token and by explanation text: results are text too
        page.open("features?path=sae%2Ffeatures", "hostile_search")
        pg.fill("#search-text", "onerror")
        pg.press("#search-text", "Enter")
        pg.wait_for_selector("#search-results table")
        assert HOSTILE in pg.inner_text("#search-results")
        assert pg.eval_on_selector_all("img", "els => els.length") == 0
        assert not page.problems, page.problems
        # the check can fail: markup parsed from a string does make an element
        pg.evaluate("() => { const d = document.createElement('div'); "
                    "d.innerHTML = '<img alt=x>'; document.body.appendChild(d); }")  # fmt: skip
        assert pg.eval_on_selector_all("img", "els => els.length") == 1
    finally:
        page.close()


def test_rows_filter_sort_and_compare(browser, site, artifacts):
    server, _ = site
    page = Page(browser, server.url, artifacts)
    try:
        pg = page.page
        page.open("explanation?path=tabular.whybox", "rows", "#rows table")
        pg.select_option("#row-sort", "prediction")
        pg.check("#row-desc")
        page.wait_until(
            "() => { const c = [...document.querySelectorAll('#rows table tr td:nth-child(3)')]"
            ".map(t => parseFloat(t.textContent)); return c.length > 2 && c.every((v, i) => "
            "i === 0 || c[i - 1] >= v); }"
        )
        page.wait_until("() => document.querySelectorAll('#dependence svg circle').length === 30")
        pg.click("#rows table tr.click:nth-child(3)")
        pg.wait_for_selector("#row-detail svg.waterfall")
        pg.select_option("#compare-with", "tabular_other.whybox")
        pg.wait_for_selector("#compare table")
        text = pg.inner_text("#compare")
        assert "spearman" in text and "feature_agreement" in text
        pg.screenshot(path=str(artifacts / "compare.png"), full_page=True)
        assert not page.problems, page.problems
    finally:
        page.close()


def test_new_files_appear_on_the_index(browser, tmp_path, artifacts):
    """The watcher: a file saved while the page is open shows without a reload."""
    import numpy as np

    from whybox.explanation import Explanation
    from whybox.serve import create_app

    root = tmp_path / "live"
    root.mkdir()
    with LiveServer(create_app(root, poll_interval=0.1)) as server:
        page = Page(browser, server.url, artifacts)
        try:
            page.open("", "empty_index")
            Explanation(np.ones((2, 2)), 0.0, method="late").save(tmp_path / "late.whybox")
            os.replace(tmp_path / "late.whybox", root / "late.whybox")
            page.page.wait_for_selector("text=late.whybox", timeout=15_000)
        finally:
            page.close()


@pytest.fixture(scope="module")
def trained_site(tmp_path_factory):
    """An SAE trained here on the tiny GPT-2's activations, with its FeatureData."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import whybox as wb
    from whybox.serve import create_app
    from whybox.zoo.tinylm import tiny_lm, tiny_lm_corpus

    lm, tok = tiny_lm()
    texts = tiny_lm_corpus("train")[:4]
    sae = wb.sae.train(lm, site="blocks.2.resid_post", architecture="topk", width=128, k=8,
                       tokens=texts, tokenizer=tok, total_tokens=4096, batch_size=512,
                       progress=False, random_state=0)  # fmt: skip
    fd = wb.sae.feature_data(sae, lm, texts[:2], tokenizer=tok, context_size=64, n_top=5,
                             batch_size=8)  # fmt: skip
    root = tmp_path_factory.mktemp("trained") / "folder"
    root.mkdir()
    sae.save(root / "sae")
    fd.save(root / "sae" / "features")
    j = int(np.argmax(np.asarray(fd.n_firing)))
    with LiveServer(create_app(root)) as server:
        yield server, fd.feature(j)


np = pytest.importorskip("numpy")


def test_feature_page_of_a_trained_sae_shows_its_contexts(browser, trained_site, artifacts):
    server, expected = trained_site
    page = Page(browser, server.url, artifacts)
    try:
        page.open("sae?path=sae", "trained_sae", "ul a")
        page.page.click("ul a")
        page.page.wait_for_selector("table.features")
        page.open(f"feature?path=sae%2Ffeatures&j={expected['index']}", "trained_feature",
                  "#top-contexts .ctx")  # fmt: skip
        lines = page.page.eval_on_selector_all(
            "#top-contexts .ctx",
            "els => els.map(e => [...e.querySelectorAll('.tok')].map(t => t.textContent))",
        )
        assert len(lines) == len(expected["top_contexts"])
        shown = lines[0]
        want = [
            t.replace("\n", "↵").replace("\t", "⇥") for t in expected["top_contexts"][0]["tokens"]
        ]
        assert shown == want
        centre = page.page.eval_on_selector("#top-contexts .ctx .tok.center", "e => e.textContent")
        ctx = expected["top_contexts"][0]
        assert centre == want[ctx["center"]]
        assert page.page.query_selector("svg.histogram rect") is not None
        assert page.page.query_selector("svg.histogram line.marker") is not None
    finally:
        page.close()
