"""The command line's consoles read the terminal width at each print (whybox._cli_console).

rich's own ``Console()`` keeps the ``COLUMNS`` it saw when it was made; the command line's
consoles are module globals, so a process running several commands (a test session split over
workers, a notebook) printed every command at the width of the first one that imported the
module: four CLI tests failed under pytest-xdist with their tables wrapped at 80 columns.
"""

from __future__ import annotations

import importlib

import pytest
from rich.console import Console

from whybox._cli_console import live_console


def test_rich_alone_keeps_the_width_it_was_made_with(monkeypatch):
    # the behaviour live_console exists for: if rich changes it, this test says so
    monkeypatch.setenv("COLUMNS", "80")
    plain = Console()
    monkeypatch.setenv("COLUMNS", "250")
    assert plain.width == 80


def test_live_console_follows_columns_and_keeps_an_explicit_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    live = live_console(highlight=False, stderr=True)
    fixed = live_console(width=100)
    monkeypatch.setenv("COLUMNS", "250")
    assert live.width == 250 and fixed.width == 100
    monkeypatch.setenv("COLUMNS", "61")
    assert live.width == 61 and live.stderr


@pytest.mark.parametrize(
    "module",
    [
        "whybox.cli",
        "whybox._cli_internals",
        "whybox._cli_sae",
        "whybox._cli_llm",
        "whybox._cli_serve",
    ],
)
def test_every_cli_console_follows_columns(module, monkeypatch):
    mod = importlib.import_module(module)
    consoles = [getattr(mod, n) for n in ("console", "err_console") if hasattr(mod, n)]
    assert consoles
    for width in (73, 211):
        monkeypatch.setenv("COLUMNS", str(width))
        assert [c.width for c in consoles] == [width] * len(consoles)
