"""The page layer of reports: the :class:`Report` container, SVG figures and number format.

Every report module (builder, quality, sections, limitations, vision) imports from here and
from nowhere above it, so the report package has no import circle.
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._persist import _atomic_write
from .._validation import check_int
from ..errors import InvalidParameterError

__all__ = ["Report", "figure_data_uri", "figures_section"]


#: artists with more marks than this are drawn as an embedded bitmap inside the SVG
RASTER_ABOVE = 60


def _rasterize_dense(fig: Any) -> None:
    """Rasterize the dense layers of a figure (many dots, many lines), keep text and axes
    vector: the SVG stays sharp where it matters and small where it would be huge."""
    for ax in fig.axes:
        marks = [max(len(c.get_offsets()), len(c.get_paths())) for c in ax.collections]
        if sum(marks) > 3 * RASTER_ABOVE:  # e.g. a beeswarm: one collection per feature
            for coll in ax.collections:
                coll.set_rasterized(True)
        else:
            for coll, m in zip(ax.collections, marks, strict=True):
                if m > RASTER_ABOVE:
                    coll.set_rasterized(True)
        if len(ax.lines) > RASTER_ABOVE // 3:
            widest = max(line.get_linewidth() for line in ax.lines)
            for line in ax.lines:
                if line.get_linewidth() < widest:
                    line.set_rasterized(True)


def figure_data_uri(fig: Any) -> str:
    """Render a matplotlib figure to an SVG ``data:`` URI (text drawn as paths) and close it.

    Dense layers (over ``RASTER_ABOVE`` dots or a few dozen lines) are embedded as bitmaps
    at 110 dpi; text, axes and sparse marks stay vector.
    """
    import matplotlib
    import matplotlib.pyplot as plt

    _rasterize_dense(fig)
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "whybox"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", dpi=150, metadata={"Date": None})
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return "missing"
        return f"{float(v):.{digits}g}"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    return str(v)


@dataclass
class Report:
    """An HTML report: a title and a list of sections; ``save(path)`` writes one file.

    Sections are plain dicts read by the template (``kind`` one of ``summary``,
    ``importance``, ``local``, ``truth``, ``table``, ``figures``, ...); builders in this
    module create them. The generic ``figures`` kind is
    ``{"kind": "figures", "title": str, "text": str, "figures": [{"src": data_uri,
    "caption": str}, ...], "table": {"columns": [...], "rows": [[...], ...]} or None}``:
    a responsive grid of captioned figures with an optional table (see
    :func:`figures_section`).
    """

    title: str = "whybox report"
    subtitle: str = ""
    sections: list[dict[str, Any]] = field(default_factory=list)

    def add(self, section: dict[str, Any]) -> Report:
        """Append a section dict (see the class docstring); returns the report."""
        if not isinstance(section, dict) or "kind" not in section or "title" not in section:
            raise InvalidParameterError(
                "a report section must be a dict with at least 'kind' and 'title' keys, got "
                f"{type(section).__name__}. Build one with figures_section(...) or the other "
                "*_section helpers of whybox.report.builder."
            )
        if section["kind"] == "figures":
            _check_figures(section)
        section.setdefault("id", f"s{len(self.sections) + 1}")
        self.sections.append(section)
        return self

    def insert_after(self, section_id: str, section: dict[str, Any]) -> Report:
        """Insert a section after the one with id ``section_id`` (at the end if none has it)."""
        self.add(section)
        self.sections.pop()
        ids = [s.get("id") for s in self.sections]
        pos = ids.index(section_id) + 1 if section_id in ids else len(self.sections)
        self.sections.insert(pos, section)
        return self

    def to_html(self) -> str:
        """The report as one self-contained HTML document."""
        import jinja2

        from .. import __version__

        env = jinja2.Environment(
            loader=jinja2.PackageLoader("whybox.report", "templates"),
            autoescape=True,
        )
        template = env.get_template("report.html")
        return template.render(
            title=self.title,
            subtitle=self.subtitle,
            sections=self.sections,
            version=__version__,
            generated=_dt.date.today().isoformat(),
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the report to ``path``: a ``.html`` file, or ``path/index.html`` otherwise.

        The file is written under a temporary name and renamed, so a failure never leaves a
        half-written report behind.
        """
        path = Path(path)
        if path.is_dir() or path.suffix.lower() not in (".html", ".htm"):
            path.mkdir(parents=True, exist_ok=True)
            path = path / "index.html"
        _atomic_write(path, self.to_html().encode("utf-8"))
        return path

    def _repr_html_(self) -> str:
        return self.to_html()


# ---------------------------------------------------------------------- sections
def _check_figures(section: dict[str, Any]) -> None:
    """Validate a ``figures`` section: inline image data URIs only, a well-formed table."""
    figures = section.get("figures")
    if not isinstance(figures, (list, tuple)):
        raise InvalidParameterError(
            f"a 'figures' section needs figures=[{{'src': data_uri, 'caption': str}}, ...], "
            f"got {type(figures).__name__}."
        )
    for k, fig in enumerate(figures):
        src = fig.get("src") if isinstance(fig, dict) else None
        if not isinstance(src, str) or not src.startswith("data:image/"):
            shown = src[:40] if isinstance(src, str) else type(src).__name__
            raise InvalidParameterError(
                f"figure {k} of section {section.get('title')!r} has src {shown!r}; the "
                "report is self-contained, so each src must be an inline 'data:image/...' URI "
                "(use whybox.report.builder.figure_data_uri(fig) for a matplotlib figure)."
            )
    table = section.get("table")
    if table is not None:
        if not isinstance(table, dict) or "columns" not in table or "rows" not in table:
            raise InvalidParameterError(
                "the table of a 'figures' section must be None or "
                "{'columns': [...], 'rows': [[...], ...]}."
            )
        width = len(table["columns"])
        for r, row in enumerate(table["rows"]):
            if len(row) != width:
                raise InvalidParameterError(
                    f"row {r} of the table of section {section.get('title')!r} has "
                    f"{len(row)} cells but there are {width} columns."
                )


def figures_section(
    title: str,
    figures: list[dict[str, str]],
    *,
    text: str = "",
    table: dict[str, Any] | None = None,
    id: str | None = None,
    columns: int | None = None,
) -> dict[str, Any]:
    """A generic section: a responsive grid of captioned figures and an optional table.

    Parameters
    ----------
    title : str
        Section heading.
    figures : list of dict
        ``[{"src": data_uri, "caption": str}, ...]``; each ``src`` an inline
        ``data:image/...`` URI (e.g. from :func:`figure_data_uri`).
    text : str, optional
        A paragraph shown above the figures.
    table : dict, optional
        ``{"columns": [...], "rows": [[...], ...]}`` shown below the figures.
    id : str, optional
        Anchor id of the section (default: assigned by :meth:`Report.add`).
    columns : int, optional
        Figures per grid row, 1 to 4 (default: as many as fit, at least 220 px wide).

    Returns
    -------
    dict
        The section, for :meth:`Report.add`. Every string in it is escaped when rendered.
    """
    section: dict[str, Any] = {
        "kind": "figures",
        "title": str(title),
        "text": str(text),
        "figures": [
            {"src": f.get("src"), "caption": str(f.get("caption", ""))}
            if isinstance(f, dict)
            else f
            for f in figures
        ],
        "table": None
        if table is None
        else {
            "columns": [str(c) for c in table.get("columns", [])],
            "rows": [[_fmt(c) for c in row] for row in table.get("rows", [])],
        }
        if isinstance(table, dict)
        else table,
    }
    if id is not None:
        section["id"] = str(id)
    if columns is not None:
        section["columns"] = check_int("columns", columns, minimum=1, maximum=4)
    _check_figures(section)
    return section
