"""The Explainer base class shared by every method.

Every explainer is constructed once with the model (and whatever it needs, e.g. a
background) and then called as ``.explain(inputs, ...)`` as often as needed, returning an
:class:`~whybox.explanation.Explanation`.

This module sits just above the game core (:mod:`whybox.games`) and imports nothing of it:
the model-agnostic machinery (:class:`whybox.agnostic._base.TabularGameExplainer`), the tree,
linear and gradient explainers all derive from :class:`Explainer` one layer up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from .explanation import Explanation

__all__ = ["Explainer", "ProgressFn"]

ProgressFn = Callable[[int, int], None]


class Explainer:
    """Base class of all explainers: construct once, then ``.explain(inputs, ...)``."""

    #: registry name of the method, e.g. ``"exact"``
    method: ClassVar[str] = ""

    def explain(self, X: Any, **kwargs: Any) -> Explanation:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(method={self.method!r})"
