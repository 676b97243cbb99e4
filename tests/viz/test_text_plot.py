"""exp.plot.text(i), exp.plot.text_heatmap() and the text report section.

The HTML is read back with Python's own html.parser (not with the code under test): hostile
tokens must come back as text, colours are checked against the white-to-colour mix written
here, and images are checked for their text and pixel values.
"""

from __future__ import annotations

import html.parser

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from whybox.explanation import Explanation
from whybox.viz.text import NEG, POS, TextPlot, visible

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "</div></span>",
    " a&amp;b",
    "'quote'",
    "$x^2$",
    "\n",
    "   ",
    "tab\there",
    "\x07bell",
]


class _Reader(html.parser.HTMLParser):
    """Collects start tags, their attributes and the text of each token span."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.tokens: list[dict] = []
        self._in_tok = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "span" and a.get("class") == "wb-tok":
            self.tokens.append({"attrs": a, "text": ""})
            self._in_tok = 1
        elif self._in_tok:
            self._in_tok += 1

    def handle_endtag(self, tag):
        if self._in_tok:
            self._in_tok -= 1

    def handle_data(self, data):
        if self._in_tok:
            self.tokens[-1]["text"] += data


def _read(s: str) -> _Reader:
    r = _Reader()
    r.feed(s)
    r.close()
    return r


def _hostile_exp() -> Explanation:
    vals = np.linspace(-1.0, 2.0, len(HOSTILE))
    vals[3] = 0.0
    return Explanation([vals], 0.0, feature_names=[HOSTILE], data=[HOSTILE], method="test")


def test_every_token_escaped_and_read_back_as_text():
    exp = _hostile_exp()
    plot = exp.plot.text(0)
    assert isinstance(plot, TextPlot)
    s = str(plot)
    assert s == plot._repr_html_()
    r = _read(s)
    assert {t for t, _ in r.tags} <= {"div", "span", "br"}  # no script, no img
    assert not any(k.startswith("on") for _, a in r.tags for k in a)
    # each token comes back as its own text (in the visible form), in order
    got = [t["text"] for t in r.tokens]
    assert got == [visible(t) for t in HOSTILE]
    assert got[0] == "<script>alert(1)</script>" and got[1] == '"><img src=x onerror=alert(1)>'
    assert "<script>" not in s and "<img" not in s


def test_whitespace_visible():
    assert visible("\n") == "↵" and visible("   ") == "␣␣␣" and visible("a\tb") == "a⇥b"
    assert visible(" the") == " the" and visible("\x07") == "\\x07" and visible("") == "∅"
    exp = Explanation([np.array([1.0, -1.0, 0.5])], 0.0, feature_names=[[" the", "\n", "   "]])
    s = str(exp.plot.text(0))
    assert "<br>" in s  # the newline breaks the line
    r = _read(s)
    assert [t["text"] for t in r.tokens] == [" the", "↵", "␣␣␣"]
    assert "white-space:pre-wrap" in s  # spaces inside tokens kept


def _rgb(style: str) -> tuple[int, ...]:
    inner = style.split("rgb(")[1].split(")")[0]
    return tuple(int(x) for x in inner.split(","))


def test_colours_centred_at_zero_symmetric_max_abs():
    vals = np.array([0.0, 2.0, -2.0, 1.0, -0.5, 4.0, -4.0])
    names = [f"t{j}" for j in range(len(vals))]
    exp = Explanation([vals], 0.0, feature_names=[names])
    r = _read(str(exp.plot.text(0)))
    vmax = np.abs(vals).max()
    for tok, v in zip(r.tokens, vals, strict=True):
        assert float(tok["attrs"]["data-value"]) == v
        a = abs(v) / vmax * 0.85
        end = POS if v > 0 else NEG
        want = tuple(round(255 * (1 - a) + c * a) for c in end)
        assert _rgb(tok["attrs"]["style"]) == want
    rgbs = [_rgb(t["attrs"]["style"]) for t in r.tokens]
    assert rgbs[0] == (255, 255, 255)  # 0 is white (neutral)
    # +v and -v equally far from white
    d = [np.abs(np.subtract(c, 255)).sum() / np.abs(np.subtract(e, 255)).sum()
         for c, e in ((rgbs[1], POS), (rgbs[2], NEG))]  # fmt: skip
    assert d[0] == pytest.approx(d[1], abs=0.01)
    # a shared scale: the same value gets the same colour in two rows
    exp2 = Explanation([vals, vals / 4], 0.0, feature_names=[names, names])
    a = _read(str(exp2.plot.text(0, vmax=4.0))).tokens[3]["attrs"]["style"]
    b = _read(str(exp2.plot.text(1, vmax=4.0))).tokens[5]["attrs"]["style"]
    assert a == b


def test_word_players_keep_the_spaces_of_the_text():
    from tests.text.tiny_text import wordpiece
    from whybox.text import text_explanation, tokenize

    row = tokenize("the cat  sat.\nit is", wordpiece(), granularity="word")[0]
    exp = text_explanation(
        [row], [np.arange(row.n_players, dtype=float)], base_values=[0.0], predictions=[1.0],
        output_names=["p"], method="x", params={}, meta={},
    )  # fmt: skip
    s = str(exp.plot.text(0))
    r = _read(s)
    assert [t["text"] for t in r.tokens] == ["the", "cat", "sat.", "it", "is"]
    assert '<span class="wb-gap">  </span>' in s and "↵<br>" in s


def test_image_version(tmp_path):
    exp = _hostile_exp()
    plot = exp.plot.text(0)
    fig = plot.to_image()
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "$x^2$" in texts and "<script>alert(1)</script>" in texts  # drawn literally
    path = plot.save_png(tmp_path / "t.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # patch colours are the HTML colours
    rgbs = [tuple(round(255 * c) for c in p.get_facecolor()[:3]) for p in fig.axes[0].patches]
    assert rgbs == plot.colours()


def _generation_exp(tokens, P):
    T = len(tokens) - P
    rng = np.random.default_rng(0)
    vals = [rng.normal(size=P + t) for t in range(T)]
    meta = {
        "kind": "generation",
        "prompt": "".join(tokens[:P]),
        "prompt_len": P,
        "source_tokens": tokens,
        "generated_tokens": tokens[P:],
        "targets": tokens[P:],
        "contrast_tokens": None,
        "row_keys": ["targets"],
    }
    names = [tokens[: P + t] for t in range(T)]
    return Explanation(vals, 0.0, feature_names=names, predictions=np.zeros(T),
                       method="input_x_gradient", params={"output": "log p(token)"},
                       meta=meta)  # fmt: skip


def test_generation_row_and_heatmap():
    toks = ["<s>", " why", " $", "<script>", " Paris", "\n", " <b>"]
    exp = _generation_exp(toks, 3)
    plot = exp.plot.text(2)
    assert plot.target == "\n" and len(plot.tokens) == 5
    r = _read(str(plot))
    assert [t["text"] for t in r.tokens] == [visible(t) for t in toks[:5]]
    ax = exp.plot.text_heatmap()
    grid = np.ma.filled(ax.images[0].get_array().astype(float), np.nan)
    want = np.full((4, 6), np.nan)
    for t, v in enumerate(exp.values):
        want[t, : v.size] = v
    np.testing.assert_array_equal(grid, want)
    lo, hi = ax.images[0].get_clim()
    assert lo == -hi == -max(np.abs(v).max() for v in exp.values)
    assert [t.get_text() for t in ax.get_yticklabels()] == [visible(t) for t in toks[3:]]


def test_report_section_escaped():
    import whybox as wb

    exp = _generation_exp(["<s>", " x", "<script>alert(1)</script>", " Paris", "</td>"], 2)
    page = wb.report(exp).to_html()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)" in page
    assert "</td></td>" not in page
    r = _read(page)
    assert not any(t == "script" for t, _ in r.tags)
    assert "Generated tokens x source tokens" in page and "Texts" in page
    # a plain text explanation gets the texts section only
    plain = _hostile_exp()
    plain.meta["tokens"] = [HOSTILE]
    page2 = wb.report(plain).to_html()
    assert "Generated tokens" not in page2 and "&lt;img src=x" in page2
    tags = _read(page2).tags
    assert not any(t == "script" for t, _ in tags)
    imgs = [a for t, a in tags if t == "img"]
    assert imgs and all(a["src"].startswith("data:image/") for a in imgs)
    assert not any(k.startswith("on") for _, a in tags for k in a)


def test_in_a_browser_tokens_are_text_and_nothing_runs(tmp_path):
    """Headless Chromium (tests/report/_browser.py): the TextPlot page and the generation
    report open no dialog, hold no script, and each token span's textContent is the token."""
    from tests.report._browser import Browser

    exp = _hostile_exp()
    page = exp.plot.text(0).save_html(tmp_path / "plot.html")
    gen = _generation_exp(["<s>", " x", HOSTILE[0], HOSTILE[1], " Paris"], 2)
    rep = __import__("whybox").report(gen).save(tmp_path / "rep.html")
    with Browser(tmp_path / "chromium") as b:
        b.open(page)
        assert b.dialogs() == [] and b.errors() == []
        assert b.evaluate("document.querySelectorAll('script, img, [onerror]').length") == 0
        got = b.evaluate("Array.from(document.querySelectorAll('.wb-tok'), s => s.textContent)")
        assert got == [visible(t) for t in HOSTILE]
        b.events.clear()
        b.open(rep)
        assert b.dialogs() == [] and b.errors() == []
        assert b.evaluate("document.querySelectorAll('script, [onerror]').length") == 0
        assert HOSTILE[0] in b.evaluate("document.body.innerText")
