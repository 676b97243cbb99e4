"""Extract tagged code blocks from a Markdown (MyST) page, so that tests can run a page's code.

A page marks each fenced code block with a first-line comment naming what it is, e.g.::

    ```python
    # whybox
    exp = wb.explain(model, X)
    ```

    ```python
    # shap
    sv = shap.TreeExplainer(model)(X)
    ```

``blocks(path, "whybox")`` returns the source of every ``# whybox`` block, in page order, with
the tag line kept (it is a comment, so the block runs as shown). The tag line may carry more
words after the tag (``# whybox: setup``, ``# whybox (continued)``); ``# whyboxes`` does not
match ``whybox``. Fences of backticks or tildes (three or more), MyST directive fences such as
```` ```{code-block} python ````, and fences indented inside lists or ``:::`` containers are
all found; a fence closes on a line of the same character at least as long as its opening.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

__all__ = ["blocks", "check_prints", "fenced_blocks", "run_blocks"]

_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_PY_INFO = re.compile(r"^\s*(\{(code-block|code|sourcecode)\}\s*)?(python|py|python3|pycon)?\s*$")


def fenced_blocks(path: str | Path) -> list[tuple[str, str, int]]:
    """Every fenced code block of a Markdown file.

    Parameters
    ----------
    path : str or Path
        The Markdown file.

    Returns
    -------
    list of (info, source, line)
        The info string after the opening fence (e.g. ``"python"``, ``"{code-block} python"``),
        the block's source dedented by the fence's indentation (MyST directive options such as
        ``:caption:`` at its top removed), and the 1-based line number of the opening fence.
    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    out: list[tuple[str, str, int]] = []
    i = 0
    while i < len(lines):
        m = _OPEN.match(lines[i])
        if m is None:
            i += 1
            continue
        fence, info, start = m["fence"], m["info"].strip(), i + 1
        close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        body: list[str] = []
        i += 1
        while i < len(lines) and not close.match(lines[i]):
            body.append(lines[i])
            i += 1
        i += 1  # past the closing fence (or the end of the file)
        if info.startswith("{"):
            # a directive's options (":caption: ...") come first; they are not code
            while body and re.match(r"^\s*:[\w-]+:", body[0]):
                body.pop(0)
        out.append((info, textwrap.dedent("\n".join(body)).strip("\n") + "\n", start))
    return out


def blocks(path: str | Path, tag: str) -> list[str]:
    """The Python code blocks of a Markdown page whose first line is the comment ``# <tag>``.

    Parameters
    ----------
    path : str or Path
        The Markdown (MyST) page.
    tag : str
        The tag, e.g. ``"whybox"``, ``"shap"``, ``"captum"``. Matched case-sensitively as a whole
        word after ``#`` on the block's first non-empty line.

    Returns
    -------
    list of str
        The blocks' sources, in page order (the tag line included).
    """
    head = re.compile(rf"^#\s*{re.escape(tag)}(?![\w-])")
    out = []
    for info, source, _ in fenced_blocks(path):
        if not _PY_INFO.match(info):
            continue
        first = next((ln.strip() for ln in source.splitlines() if ln.strip()), "")
        if head.match(first):
            out.append(source)
    return out


def run_blocks(path: str | Path, tag: str, namespace: dict | None = None) -> dict:
    """Execute a page's ``# <tag>`` blocks in order in one namespace and return the namespace.

    A failing block raises with the page, the block's number and its first lines in the
    message, so a test failure points at the page. ``namespace`` (default: a fresh dict) is
    updated in place; pass one to seed it or to run two tags' blocks side by side.
    """
    ns = {"__name__": f"page_{Path(path).stem}"} if namespace is None else namespace
    found = blocks(path, tag)
    if not found:
        raise LookupError(f"{path}: no code block starts with '# {tag}'")
    for k, src in enumerate(found):
        code = compile(src, f"{Path(path).name}[{tag} block {k}]", "exec")
        try:
            exec(code, ns)  # the page's own code is what is tested
        except Exception as err:
            preview = "\n".join(src.splitlines()[:4])
            raise AssertionError(
                f"{path}: '# {tag}' block {k} failed with {type(err).__name__}: {err}\n{preview}"
            ) from err
    return ns


def check_prints(source: str, printed: str) -> int:
    """Check a block's ``print(...)  # expected`` comments against what it printed.

    Each line of ``source`` whose code starts with ``print(`` (indented ones too, e.g. in a
    ``try``; not in loops) and ends with a comment is a claim: the line it printed (its output lines are taken in order, one per ``print``) must
    be the start of the comment's text, so ``print(x.shape)  # (4, 13): rows, features``
    claims ``(4, 13)``. Prints without a comment are not checked.

    Parameters
    ----------
    source : str
        The block's source.
    printed : str
        What running it wrote to stdout.

    Returns
    -------
    int
        The number of claims checked.

    Raises
    ------
    AssertionError
        When the block printed a different number of lines than it has ``print`` lines, or a
        printed line is not the start of its comment.
    """
    prints = [ln.strip() for ln in source.splitlines() if ln.strip().startswith("print(")]
    out = printed.splitlines()
    if len(out) != len(prints):
        raise AssertionError(
            f"{len(prints)} print lines printed {len(out)} lines (one each expected):\n{printed}"
        )
    checked = 0
    for line, got in zip(prints, out, strict=True):
        code, sep, comment = line.partition("  # ")
        if not sep:
            continue
        if not comment.strip().startswith(got.strip()):
            raise AssertionError(f"{code} printed {got!r}; the page says {comment.strip()!r}")
        checked += 1
    return checked
