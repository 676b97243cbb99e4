"""The code blocks of docs/getting_started.rst run as written (each is self-contained)."""

from __future__ import annotations

import re

import pytest

from ._public import ROOT

PAGE = ROOT / "docs" / "getting_started.rst"


def rst_python_blocks(text: str) -> list[str]:
    """The ``.. code-block:: python`` blocks of an RST page, dedented, in order."""
    blocks = []
    for m in re.finditer(r"^\.\. code-block:: python\n\n((?:(?:   .*)?\n)+)", text, flags=re.M):
        lines = m.group(1).rstrip("\n").splitlines()
        blocks.append("\n".join(line[3:] for line in lines))
    return blocks


BLOCKS = rst_python_blocks(PAGE.read_text(encoding="utf-8"))


def test_the_page_has_the_four_first_explanations():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize(
    "index", range(len(BLOCKS)), ids=[f"block{i + 1}" for i in range(len(BLOCKS))]
)
def test_getting_started_block_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        exec(compile(BLOCKS[index], f"<getting_started block {index + 1}>", "exec"), {})
    finally:
        import matplotlib.pyplot as plt

        plt.close("all")
