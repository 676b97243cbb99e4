"""The generic ``figures`` section: a captioned grid of inline images and a table."""

from __future__ import annotations

import base64
import re

import pytest

import whybox as wb
from whybox.report import Report, figures_section

# a 1x1 PNG, written out by hand (the PNG signature, IHDR, IDAT and IEND chunks)
PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)
URI = "data:image/png;base64," + base64.b64encode(PNG_1PX).decode()
EVIL = "<script>alert(1)</script>"


def test_figures_render_in_grid_with_captions_and_table():
    rep = Report()
    rep.add(
        figures_section(
            "Images " + EVIL,
            [{"src": URI, "caption": "cat " + EVIL}, {"src": URI, "caption": "dog"}],
            text="Two heatmaps " + EVIL,
            table={"columns": ["image", "score " + EVIL], "rows": [["cat", 0.123456], ["dog", 2]]},
        )
    )
    html = rep.to_html()
    assert re.search(r"<script", html, re.IGNORECASE) is None
    grid = re.search(r'<div class="fig-grid">(.*?)</div>', html, re.S).group(1)
    assert grid.count("<figure") == 2
    assert grid.count(f'src="{URI}"') == 2
    assert "<figcaption>cat &lt;script&gt;" in grid and "<figcaption>dog</figcaption>" in grid
    assert "<th>score &lt;script&gt;alert(1)&lt;/script&gt;</th>" in html
    # numbers formatted to 4 significant digits, ints with separators
    assert "<td>0.1235</td>" in html and "<td>2</td>" in html
    assert "<p>Two heatmaps &lt;script&gt;" in html


def test_figures_without_table_render_no_table():
    html = Report().add(figures_section("Only figures", [{"src": URI, "caption": ""}])).to_html()
    section = re.search(r'<section id="s1">(.*?)</section>', html, re.S).group(1)
    assert "<table" not in section and section.count("<img") == 1


def test_plain_dict_section_is_accepted():
    section = {"kind": "figures", "title": "t", "text": "", "figures": [{"src": URI}]}
    html = Report().add(section).to_html()
    assert html.count(f'src="{URI}"') == 1


@pytest.mark.parametrize("src", ["https://example.com/x.png", "javascript:alert(1)", "x.png", None])
def test_non_inline_sources_are_refused(src):
    with pytest.raises(wb.InvalidParameterError, match=r"inline 'data:image/\.\.\.' URI"):
        figures_section("t", [{"src": src, "caption": ""}])
    with pytest.raises(wb.InvalidParameterError, match="inline 'data:image"):
        Report().add({"kind": "figures", "title": "t", "figures": [{"src": src}]})


def test_bad_table_and_section_messages():
    with pytest.raises(wb.InvalidParameterError, match=r"row 1 .* has 1 cells but there are 2"):
        figures_section("t", [], table={"columns": ["a", "b"], "rows": [[1, 2], [3]]})
    with pytest.raises(wb.InvalidParameterError, match="needs figures="):
        Report().add({"kind": "figures", "title": "t", "figures": "x"})
    with pytest.raises(wb.InvalidParameterError, match="'kind' and 'title'"):
        Report().add({"title": "no kind"})
