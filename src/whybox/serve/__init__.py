"""whybox's local dashboard: ``whybox serve FOLDER`` (needs ``pip install 'whybox[serve]'``).

:func:`create_app` builds the FastAPI app over a folder of saved explanations (``.whybox``),
HTML reports, CSV tables (logit-lens tables, patching grids) and SAE folders with their
FeatureData; :func:`serve` runs it with uvicorn, on 127.0.0.1 unless told otherwise. The app
is read-only; see :mod:`whybox.serve.app` for its routes and its security rules.
"""

from __future__ import annotations

import ipaddress
import os
import warnings
from typing import Any

from whybox.errors import MissingDependencyError

__all__ = ["create_app", "is_loopback", "serve"]


def create_app(folder: str | os.PathLike[str], **kwargs: Any) -> Any:
    """The dashboard app over ``folder``; see :func:`whybox.serve.app.create_app`."""
    from .app import create_app as _create

    return _create(folder, **kwargs)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    folder: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    poll_interval: float = 2.0,
    log_level: str = "warning",
) -> None:
    """Run the dashboard over ``folder`` until interrupted.

    Parameters
    ----------
    folder : path
        The folder to serve (read-only).
    host : str, default "127.0.0.1"
        Address to bind. Anything but a loopback address exposes the folder's contents to
        the network: a ``UserWarning`` says so.
    port : int, default 8765
    poll_interval : float, default 2.0
        Least seconds between two rescans of the folder.
    log_level : str, default "warning"
        uvicorn's log level.
    """
    try:
        import uvicorn
    except ImportError:
        raise MissingDependencyError("uvicorn", "serve", "whybox serve") from None
    from .app import DEFAULT_HOSTS

    hosts = list(DEFAULT_HOSTS)
    if not is_loopback(host):
        warnings.warn(
            f"serving on {host!r}, not a loopback address: anyone who can reach this machine "
            "on that interface can read the served folder. Use --host 127.0.0.1 to keep it "
            "local.",
            UserWarning,
            stacklevel=2,
        )
        hosts = ["*"] if host in ("0.0.0.0", "::") else [*hosts, host]
    app = create_app(folder, poll_interval=poll_interval, allowed_hosts=hosts)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
