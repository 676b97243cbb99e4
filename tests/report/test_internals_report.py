"""The internals report: patching heatmaps, logit-lens tables, direct logit attribution.

A tiny random GPT-2 with a word-level tokenizer whose every token is hostile HTML (script
tags, entities, quotes, Jinja braces, mathtext dollars): every token the page shows must reach
it escaped. The page is parsed with :mod:`html.parser` (the only tags are the template's own,
no event-handler attribute, no script; the tokens come back as text, attribute values
intact) and opened in headless Chromium (no dialog, no script element).

Values are checked against the model itself: the lens table against ``lm_head(ln_f(h))`` of
the model's own ``output_hidden_states``, the patching table cell by cell against the
Explanation's players found by name.
"""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import whybox as wb  # noqa: E402
from whybox.errors import InvalidParameterError  # noqa: E402
from whybox.explanation import Explanation  # noqa: E402
from whybox.report import internals as R  # noqa: E402

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(2)>",
    "&amp;",
    "&lt;b&gt;",
    '"',
    "'",
    "</td></tr></table>",
    "{{ 7*7 }}",
    "$\\frac{$",
    "$x$",
    "<b>bold</b>",
    "a&b",
    "<!--",
    '" onmouseover="alert(3)',
    "[red]x[/red]",
    "plain",
]
EVIL_TITLE = "<script>alert('title')</script>"
TEMPLATE_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3", "p", "nav",
    "a", "main", "section", "div", "table", "thead", "tbody", "tr", "th", "td", "br", "figure",
    "img", "figcaption", "footer", "ol", "li", "span", "b",
}  # fmt: skip


# ---------------------------------------------------------------------- the page parser
class Page(HTMLParser):
    """Tags with their attributes, all text, and every ``table.grid`` as rows of cells, each
    cell a list of its ``<br>``-separated lines (text unescaped by the parser)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.grids: list[list[list[dict]]] = []
        self._cell: dict | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "table" and "grid" in (attrs.get("class") or ""):
            self.grids.append([])
        elif tag == "tr" and self.grids:
            self.grids[-1].append([])
        elif tag in ("td", "th") and self.grids:
            self._cell = {"tag": tag, "attrs": attrs, "lines": [""]}
            self.grids[-1][-1].append(self._cell)
        elif tag == "br" and self._cell is not None:
            self._cell["lines"].append("")

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell["lines"][-1] += data


def check_safe(html: str) -> Page:
    """The page's tags are the template's, no handler attribute, images are inline figures."""
    page = Page(html)
    tags = {t for t, _ in page.tags}
    assert tags <= TEMPLATE_TAGS, tags - TEMPLATE_TAGS
    for tag, attrs in page.tags:
        assert not any(k.lower().startswith("on") for k in attrs), (tag, attrs)
        if tag == "img":
            assert attrs["src"].startswith("data:image/svg+xml;base64,")
            svg = base64.b64decode(attrs["src"].split(",", 1)[1]).decode()
            assert "<script" not in svg and "<text" not in svg  # text drawn as paths
    assert "script" not in tags
    return page


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def hostile():
    """(model, tokenizer): a word-level tokenizer over HOSTILE and a random 2-layer GPT-2."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {t: i for i, t in enumerate(HOSTILE)}
    vocab["[UNK]"] = len(vocab)
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]")
    cfg = transformers.GPT2Config(
        n_layer=2, n_embd=32, n_head=4, n_positions=32, vocab_size=len(vocab),
        bos_token_id=None, eos_token_id=None,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel._from_config(cfg, attn_implementation="eager").eval()
    with torch.no_grad():  # larger logits, so top tokens and probabilities are far apart
        model.lm_head.weight.mul_(8.0)
    for i, t in enumerate(HOSTILE):
        assert tok.decode([i]) == t
    return model, tok


CLEAN = [0, 1, 2, 3, 4, 5, 6, 7]
CORRUPTED = [0, 1, 8, 3, 9, 5, 6, 7]  # positions 2 and 4 differ


def metric_of(a: int, b: int):
    def metric(logits):
        return (logits[:, -1, a] - logits[:, -1, b]).mean()

    metric.__name__ = EVIL_TITLE  # the metric's name reaches headers and captions
    return metric


@pytest.fixture(scope="module")
def results(hostile):
    model, tok = hostile
    clean, corr = torch.tensor([CLEAN]), torch.tensor([CORRUPTED])
    metric = metric_of(10, 11)
    pos = wb.activation_patching(model, clean, corr, metric, site="resid_pre")
    heads = wb.activation_patching(model, clean, corr, metric, site="attn.head_out")
    lens = wb.logit_lens(model, clean, tokenizer=tok, target=3, top_k=3)
    dla = wb.direct_logit_attribution(model, clean, target=(10, 11), tokenizer=tok)
    return {"pos": pos, "heads": heads, "lens": lens, "dla": dla}


# ---------------------------------------------------------------------- tokens
@pytest.mark.parametrize(
    "token, shown",
    [
        (" the", "␣the"),
        ("the  ", "the␣␣"),
        ("  ", "␣␣"),
        ("a\nb", "a↵b"),
        ("\t", "⇥"),
        ("\x07", "\\x07"),
        ("", "∅"),
        ("<b>", "<b>"),
    ],
)
def test_show_token_makes_whitespace_visible_and_keeps_the_rest(token, shown):
    assert R.show_token(token) == shown


# ---------------------------------------------------------------------- the lens table
def test_lens_table_is_the_models_own_readout_and_escaped(hostile, results):
    model, _ = hostile
    lens = results["lens"]
    html = R.internals_report(lens, title=EVIL_TITLE).to_html()
    page = check_safe(html)
    (grid,) = page.grids
    header, rows = grid[0], grid[1:]
    ids = torch.tensor([CLEAN])
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
        hs = out.hidden_states
        # entry i < n: block i's input / block i-1's output; GPT-2's last hidden state is
        # already through ln_f, so the last entry is the model's own logits
        readouts = [model.lm_head(model.transformer.ln_f(h)) for h in hs[:-1]] + [out.logits]
    assert [r[0]["lines"][0] for r in rows] == ["embed", "L0", "L1"]
    assert [c["lines"] for c in header[1:]] == [[str(p), HOSTILE[t]] for p, t in enumerate(CLEAN)]
    for e, row in enumerate(rows):
        logp = torch.log_softmax(readouts[e][0], dim=-1)
        for p, cell in enumerate(row[1:]):
            lines = cell["lines"]
            rank = int((logp[p] > logp[p, 3]).sum())
            assert lines[0] == f"#{rank} p={logp[p, 3].exp():.3g}"
            top = torch.topk(logp[p], 3)
            want = [
                f"{R.show_token(HOSTILE[int(i)])} {v.exp():.2f}" for v, i in zip(*top, strict=True)
            ]
            assert lines[1:] == want, (e, p)
    text = "".join(page.text)
    for t in ("<script>alert(1)</script>", "<img src=x onerror=alert(2)>", "&amp;", "{{ 7*7 }}"):
        assert t in text
    assert "&amp;amp;" in html and "<script>alert(1)" not in html
    assert EVIL_TITLE in text and EVIL_TITLE not in html


# ---------------------------------------------------------------------- patching
def _cells(grid):
    """{(row label, column label): title attribute} of a grid table."""
    header = [" ".join(c["lines"]) for c in grid[0]]
    out = {}
    for row in grid[1:]:
        label = row[0]["lines"][0]
        for j, cell in enumerate(row[1:], start=1):
            out[label, header[j]] = cell
    return header, out


def test_layer_by_position_heatmap_puts_each_player_in_its_cell(hostile, results):
    _, tok = hostile
    exp = results["pos"]
    html = R.internals_report(exp, tokenizer=tok).to_html()
    page = check_safe(html)
    (grid,) = page.grids
    header, cells = _cells(grid)
    labels = []
    for p, (c, k) in enumerate(zip(CLEAN, CORRUPTED, strict=True)):
        shown = HOSTILE[c] if c == k else f"{HOSTILE[c]} / {HOSTILE[k]}"
        labels.append(f"{p}: {shown}")
    assert header == ["layer", *labels]
    value = dict(zip(exp.feature_names, np.asarray(exp.values[0]), strict=True))
    for layer in range(2):
        for p in range(len(CLEAN)):
            cell = cells[f"L{layer}", labels[p]]
            title = cell["attrs"]["title"]
            assert title.startswith(f"L{layer}, {labels[p]}: ")  # the quotes survived
            assert float(title.rsplit(": ", 1)[1]) == pytest.approx(
                value[f"L{layer}@pos{p}"], rel=1e-6, abs=1e-9
            )
    # the shade: unmoved cells are transparent, moved ones coloured by sign
    base = float(exp.base_values[0])
    for (row, col), cell in cells.items():
        v = value[f"{row}@pos{int(col.split(':')[0])}"]
        style = cell["attrs"]["style"]
        if v == base:
            assert style.endswith(",0.000)")
        elif v > base:
            assert style.startswith("background:rgba(255,0,81,")
        else:
            assert style.startswith("background:rgba(0,139,251,")
    # the metric's hostile name is text, in the caption
    assert EVIL_TITLE + " after the patch" in "".join(page.text)


def test_layer_by_head_grid_and_a_hostile_mathtext_token(hostile, results):
    exp = results["heads"]
    # tokens with dollars would be parsed as mathtext (and "$\frac{$" fails to parse)
    section = R.patching_section(exp, tokens=HOSTILE[: len(CLEAN)])
    html = wb.report.Report(title="t").add(section).to_html()
    page = check_safe(html)
    (grid,) = page.grids
    header, cells = _cells(grid)
    assert header == ["layer", "H0", "H1", "H2", "H3"]
    value = dict(zip(exp.feature_names, np.asarray(exp.values[0]), strict=True))
    for (row, col), cell in cells.items():
        got = float(cell["attrs"]["title"].rsplit(": ", 1)[1])
        assert got == pytest.approx(value[f"{row}.{col}"], rel=1e-6, abs=1e-9)
    # a layer x head grid with mathtext tokens as labels of a position axis
    pos = R.patching_section(results["pos"], tokens=["$\\frac{$", "$x$", *HOSTILE[2:8]])
    assert pos["figures"][0]["src"].startswith("data:image/svg+xml;base64,")


def test_a_large_grid_lists_the_cells_that_move_the_metric_most(results, monkeypatch):
    exp = results["pos"]
    monkeypatch.setattr(R, "MAX_TABLE_CELLS", 4)
    section = R.patching_section(exp)
    rows = section["grids"][0]["rows"]
    vals = np.asarray(exp.values[0], dtype=float)
    order = np.argsort(-np.abs(vals - float(exp.base_values[0])), kind="stable")[:20]
    got = [float(r["cells"][0]["title"]) for r in rows]
    np.testing.assert_allclose(got, vals[order], rtol=1e-6)
    assert len(rows) == min(20, vals.size)


def test_direct_logit_attribution_section(results):
    exp = results["dla"]
    section = R.dla_section(exp, top=5)
    rows = section["grids"][0]["rows"]
    vals = np.asarray(exp.values[0], dtype=float)
    order = np.argsort(-np.abs(vals), kind="stable")[:5]
    assert [r["label"] for r in rows] == [exp.feature_names[j] for j in order]
    np.testing.assert_allclose(
        [float(r["cells"][0]["title"]) for r in rows], vals[order], rtol=1e-6
    )
    assert len(section["figures"]) == 1  # the layer x head heatmap
    check_safe(wb.report.Report().add(section).to_html())


# ---------------------------------------------------------------------- wb.report
def test_wb_report_dispatches_internals_objects(results, tmp_path):
    rep = wb.report(results["pos"])
    assert [s["kind"] for s in rep.sections] == ["grid"]
    assert rep.title == "whybox: model internals"
    rep = wb.report([results["lens"], results["pos"], results["heads"], results["dla"]])
    ids = [s["id"] for s in rep.sections]
    assert len(ids) == len(set(ids)) == 4
    path = rep.save(tmp_path / "page.html")
    check_safe(path.read_text())
    rep = wb.report(results["lens"], title=EVIL_TITLE)
    assert rep.title == EVIL_TITLE
    # a saved and reloaded grid reports the same
    results["pos"].save(tmp_path / "grid.whybox")
    again = wb.load(tmp_path / "grid.whybox")
    assert wb.report(again).sections[0]["grids"] == wb.report(results["pos"]).sections[0]["grids"]


def test_other_objects_are_refused_or_reported_as_before():
    exp = Explanation(np.ones((2, 3)), base_values=0.0, feature_names=["a", "b", "c"])
    with pytest.raises(InvalidParameterError, match="internals report shows results of"):
        R.internals_report(exp)
    with pytest.raises(InvalidParameterError, match="at least one"):
        R.internals_report()
    assert wb.report(exp).sections[0]["id"] == "summary"  # the tabular report, unchanged


# ---------------------------------------------------------------------- in a browser
def test_hostile_tokens_render_as_text_in_a_browser(results, tmp_path, hostile):
    from ._browser import Browser

    _, tok = hostile
    path = R.internals_report(
        results["lens"], results["pos"], results["dla"], tokenizer=tok, title=EVIL_TITLE
    ).save(tmp_path / "internals.html")
    with Browser(tmp_path / "chromium") as browser:
        browser.open(path)
        assert browser.dialogs() == []
        assert browser.errors() == []
        assert browser.evaluate("document.querySelectorAll('script').length") == 0
        assert browser.evaluate("document.querySelectorAll('[onerror],[onmouseover]').length") == 0
        text = browser.evaluate("document.body.innerText")
        assert "<script>alert(1)</script>" in text and "<img src=x onerror=alert(2)>" in text
        assert browser.evaluate("document.title") == EVIL_TITLE
        assert re.search(r"\{\{ 7\*7 \}\}", text)
