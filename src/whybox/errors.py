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
    """Base class of every error whybox raises on purpose.

    Catch it to handle any of whybox's own errors at once; the subclasses also derive from
    the matching built-in exception (``ValueError``, ``TypeError``, ``ImportError``,
    ``RuntimeError``).

    Examples
    --------
    >>> try:
    ...     wb.explain(lambda X: X.sum(1), np.ones((2, 3)), method="shapely")
    ... except wb.WhyboxError as err:
    ...     print(type(err).__name__)
    InvalidParameterError
    """


class InvalidInputError(WhyboxError, ValueError):
    """The data passed in (X, a background, a saved file) cannot be used as it is.

    Examples
    --------
    >>> try:
    ...     wb.Explanation(np.zeros((2, 3)), base_values=np.zeros(3))
    ... except wb.InvalidInputError as err:
    ...     print(isinstance(err, ValueError), err)
    True base_values must have shape (n,) or (n, k) with n=2 rows, got (3,).
    """


class InvalidParameterError(WhyboxError, ValueError):
    """A parameter has a value outside its allowed set or range.

    Examples
    --------
    >>> try:
    ...     wb.explain(lambda X: X.sum(1), np.ones((2, 3)), method="shapely")
    ... except wb.InvalidParameterError as err:
    ...     print(isinstance(err, ValueError), str(err)[:26])
    True unknown method 'shapely'.
    """


class UnsupportedModelError(WhyboxError, TypeError):
    """whybox does not know how to call or parse the model object it was given.

    Examples
    --------
    >>> try:
    ...     wb.wrap_model(object())
    ... except wb.UnsupportedModelError as err:
    ...     print(isinstance(err, TypeError), str(err)[:50])
    True whybox cannot call a model of type builtins.object
    """


class MissingDependencyError(WhyboxError, ImportError):
    """An optional dependency needed for this feature is not installed.

    Parameters
    ----------
    package : str
        The missing package, as imported (``"torch"``).
    extra : str
        The whybox extra that installs it (``pip install 'whybox[extra]'``).
    feature : str, default "this feature"
        What needed the package, named at the start of the message.

    Examples
    --------
    >>> err = wb.MissingDependencyError("torch", "torch", "GradCam")
    >>> print(err)
    GradCam needs the optional package 'torch', which is not installed. Install it with: pip install 'whybox[torch]'
    >>> isinstance(err, ImportError), err.package, err.extra
    (True, 'torch', 'torch')
    """

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
    """The user's model raised while whybox was calling it; the original error is chained.

    Examples
    --------
    >>> def broken(X):
    ...     raise ZeroDivisionError("boom")
    >>> try:
    ...     wb.explain(broken, np.ones((1, 3)), background=np.zeros((1, 3)))
    ... except wb.ModelCallError as err:
    ...     print(isinstance(err, RuntimeError), type(err.__cause__).__name__)
    True ZeroDivisionError
    """
