"""``exp.plot``: the plotting accessor of :class:`~whybox.explanation.Explanation`.

:attr:`Explanation.plot <whybox.explanation.Explanation.plot>` imports this module by name on
first use, so the Explanation layer never imports ``viz`` (which builds on it).
"""

from __future__ import annotations

from typing import Any

from ..explanation import Explanation
from . import images, plots, plots_rows, text

__all__ = ["PlotAccessor"]


class PlotAccessor:
    """``exp.plot``: matplotlib plots of an Explanation; each returns the Axes."""

    def __init__(self, exp: Explanation) -> None:
        self._exp = exp

    def bar(self, **kwargs: Any) -> Any:
        return plots.bar(self._exp, **kwargs)

    def waterfall(self, i: int = 0, **kwargs: Any) -> Any:
        return plots.waterfall(self._exp, i, **kwargs)

    def beeswarm(self, **kwargs: Any) -> Any:
        return plots.beeswarm(self._exp, **kwargs)

    def scatter(self, feature: str | int, **kwargs: Any) -> Any:
        return plots.scatter(self._exp, feature, **kwargs)

    def heatmap(self, **kwargs: Any) -> Any:
        return plots_rows.heatmap(self._exp, **kwargs)

    def force(self, i: int = 0, **kwargs: Any) -> Any:
        return plots_rows.force(self._exp, i, **kwargs)

    def image(self, i: int = 0, **kwargs: Any) -> Any:
        """Heatmap of image ``i`` over the image (see :func:`whybox.viz.images.image`)."""
        return images.image(self._exp, i, **kwargs)

    def text(self, i: int = 0, **kwargs: Any) -> Any:
        """Tokens of text ``i`` coloured by value: HTML + image (see :func:`whybox.viz.text.text`)."""
        return text.text(self._exp, i, **kwargs)

    def text_heatmap(self, **kwargs: Any) -> Any:
        """Generated x source tokens heatmap (see :func:`whybox.viz.text.text_heatmap`)."""
        return text.text_heatmap(self._exp, **kwargs)
