"""Resolving a user-given relative path inside the served folder, refusing everything else.

Every file the dashboard reads goes through :func:`resolve`: a path is relative to the served
folder, uses ``/`` as its separator, has no ``..`` segment, no NUL, no backslash, no drive or
home prefix, no hidden (dot) segment, and no segment that becomes any of these when
URL-decoded again (double-encoded ``%252e%252e``); after symlinks are followed it still lies
inside the folder. A refused path is a :class:`PathRefused` (status 400 for a malformed path,
404 for one that does not exist or leaves the folder: the answer does not reveal what lies
outside).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

__all__ = ["MAX_PATH_CHARS", "PathRefused", "inside", "resolve"]

#: longest relative path accepted
MAX_PATH_CHARS = 4096
_DRIVE = re.compile(r"^[A-Za-z]:")


class PathRefused(Exception):
    """A path the dashboard will not read; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _malformed(rel: str) -> str | None:
    """Why ``rel`` (one decoding of it) is malformed, or None."""
    if "\x00" in rel or "\\" in rel:
        return "paths may not contain NUL or backslash characters"
    if rel.startswith(("/", "~")) or _DRIVE.match(rel):
        return "paths are relative to the served folder (no leading '/', '~' or drive)"
    for part in rel.split("/"):
        if part == "..":
            return "paths may not contain '..' segments"
        if part.startswith(".") and part != ".":
            return "hidden files and folders (names starting with '.') are not served"
    return None


def inside(root: Path, path: Path) -> bool:
    """Whether the resolved ``path`` lies in the resolved folder ``root`` (or is it)."""
    return path == root or root in path.parents


def resolve(root: Path, rel: str) -> Path:
    """The real path of ``rel`` inside ``root`` (already resolved), or :class:`PathRefused`.

    Parameters
    ----------
    root : Path
        The served folder, ``Path.resolve()``-d.
    rel : str
        A relative path as received (query parameters are URL-decoded once by the server).

    Returns
    -------
    Path
        The resolved path: it exists and lies inside ``root`` after symlinks are followed.
    """
    if not isinstance(rel, str) or not rel or len(rel) > MAX_PATH_CHARS:
        raise PathRefused(400, f"give a relative path of 1 to {MAX_PATH_CHARS} characters.")
    candidate = rel
    for _ in range(4):  # the path as given and up to three further URL decodings
        why = _malformed(candidate)
        if why is not None:
            raise PathRefused(400, f"refused path: {why}.")
        decoded = unquote(candidate)
        if decoded == candidate:
            break
        candidate = decoded
    try:
        real = (root / rel).resolve(strict=True)
    except (OSError, RuntimeError):
        raise PathRefused(404, "no such file or folder in the served folder.") from None
    if not inside(root, real):
        raise PathRefused(404, "no such file or folder in the served folder.")
    return real
