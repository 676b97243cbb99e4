"""The command line's rich consoles, sized when they print, not when they are made.

rich's ``Console()`` reads ``COLUMNS`` / ``LINES`` once, at construction, when they are set, and
keeps that size for good. The command line's consoles are module globals, made when a command
first imports its module: in a process that runs several commands (a notebook, a test session,
an application calling :data:`whybox.cli.app`), every later command would keep the first one's
width. :func:`live_console` makes a console that reads the terminal's size (and ``COLUMNS``) at
each print, which is what rich does anyway when those variables are unset; :data:`console` and
:data:`err_console` are the two every command module prints with.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

__all__ = ["console", "err_console", "live_console"]


def live_console(**kwargs: Any) -> Console:
    """A ``rich.console.Console(**kwargs)`` whose size follows the terminal at each print.

    Parameters
    ----------
    **kwargs
        Passed to ``Console`` (``stderr=True``, ``highlight=False``, ...). An explicit ``width``
        or ``height`` is kept.

    Returns
    -------
    rich.console.Console
    """
    console = Console(**kwargs)
    # rich stores a size it read from the environment in these two attributes; a console
    # without them measures the terminal and reads COLUMNS / LINES again every time.
    if kwargs.get("width") is None:
        console._width = None
    if kwargs.get("height") is None:
        console._height = None
    return console


#: Standard output of every command (``highlight=False``: numbers are not recoloured).
console = live_console(highlight=False)
#: Standard error of every command: errors, warnings, progress.
err_console = live_console(stderr=True, highlight=False)
