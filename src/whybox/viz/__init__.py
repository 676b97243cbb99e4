"""Plots of :class:`~whybox.explanation.Explanation` objects (matplotlib).

``bar``, ``waterfall``, ``beeswarm``, ``scatter``, ``heatmap`` and ``force`` each take an
Explanation and return the matplotlib Axes they drew on; they are also available as
``exp.plot.<name>()``.
"""

from __future__ import annotations

from .plots import bar, beeswarm, scatter, waterfall
from .plots_rows import force, heatmap

__all__ = ["bar", "beeswarm", "force", "heatmap", "scatter", "waterfall"]
