"""The command line's dashboard command: ``whybox serve FOLDER [--port 8765] [--host 127.0.0.1]``.

Serves a folder of saved explanations (``.whybox``), HTML reports, CSV tables (logit-lens
tables, patching grids) and SAE folders with their FeatureData, read-only, with the app of
:mod:`whybox.serve` (FastAPI + uvicorn, ``pip install 'whybox[serve]'``). It binds to
127.0.0.1 unless ``--host`` says otherwise, and then warns on stderr that the folder can be
read from the network. A missing folder or missing extra is one line on stderr and exit code
2 (:mod:`whybox.cli`'s rule). Registered on the ``whybox`` app by :func:`register`; FastAPI
and uvicorn are imported only when the command runs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import typer
from rich.markup import escape

from ._cli_console import console, err_console
from .errors import InvalidParameterError, WhyboxError

__all__ = ["register"]


def serve_command(folder: Path, host: str, port: int, poll: float) -> None:
    """Check the arguments, then run the dashboard until interrupted."""
    from .serve import is_loopback, serve

    if not folder.is_dir():
        raise InvalidParameterError(
            f"FOLDER {str(folder)!r} is not an existing folder: pass the folder that holds "
            "the saved explanations (.whybox), reports (.html) and SAE folders to serve."
        )
    if not is_loopback(host):
        err_console.print(
            f"[bold yellow]warning:[/] serving on {escape(host)}, not a loopback address: "
            "anyone who can reach this machine there can read the served folder."
        )
    shown = f"[{host}]" if ":" in host else host
    console.print(
        f"whybox dashboard: http://{escape(shown)}:{port}/ serving {escape(str(folder))} "
        "(read-only; Ctrl+C stops it)"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # warned above, on stderr
        serve(folder, host=host, port=port, poll_interval=poll)


def register(app: typer.Typer, *, fail: Callable[[Exception], None]) -> None:
    """Add ``serve`` to the ``whybox`` app.

    Parameters
    ----------
    app : typer.Typer
    fail : callable
        ``fail(exc)`` prints a WhyboxError as one line and exits with code 2.
    """

    @app.command("serve")
    def serve_cmd(
        folder: Path = typer.Argument(
            ...,
            metavar="FOLDER",
            help="Folder of saved explanations (.whybox), reports (.html), CSV tables and "
            "SAE folders; read, never written.",
        ),
        port: int = typer.Option(8765, "--port", min=0, max=65535, help="Port to listen on."),
        host: str = typer.Option(
            "127.0.0.1",
            "--host",
            help="Address to bind. The default keeps the dashboard on this machine; any "
            "other address exposes the folder to the network (a warning says so).",
        ),
        poll: float = typer.Option(
            2.0, "--poll", min=0.1, max=3600, help="Seconds between rescans of the folder."
        ),
    ) -> None:
        """A local dashboard: browse explanations, reports, lens tables and SAE features."""
        try:
            serve_command(folder, host, port, poll)
        except WhyboxError as exc:
            fail(exc)
