"""Exception hierarchy of whybox.

Every error raised at whybox's public boundary is a :class:`WhyboxError`. The subclasses
also derive from the matching built-in exception so that ``except ValueError`` and friends
keep working in code written against scikit-learn or shap.

Each message says what was wrong, what was expected and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "InvalidInputError",
    "InvalidParameterError",
    "MissingDependencyError",
    "ModelCallError",
    "UnsupportedModelError",
    "WhyboxError",
]


class WhyboxError(Exception):
    """Base class of every error whybox raises on purpose."""


class InvalidInputError(WhyboxError, ValueError):
    """The data passed in (X, a background, a saved file) cannot be used as it is."""


class InvalidParameterError(WhyboxError, ValueError):
    """A parameter has a value outside its allowed set or range."""


class UnsupportedModelError(WhyboxError, TypeError):
    """whybox does not know how to call or parse the model object it was given."""


class MissingDependencyError(WhyboxError, ImportError):
    """An optional dependency needed for this feature is not installed."""

    def __init__(self, package: str, extra: str, feature: str = "this feature") -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{feature} needs the optional package {package!r}, which is not installed. "
            f"Install it with: pip install 'whybox[{extra}]'"
        )

    def __reduce__(self):  # keep the exception picklable across processes
        return (type(self), (self.package, self.extra))


class ModelCallError(WhyboxError, RuntimeError):
    """The user's model raised while whybox was calling it; the original error is chained."""
