"""scikit-learn's bundled data sets behind one validated loader (nothing is downloaded).

:func:`load_sklearn` returns exactly what ``sklearn.datasets.load_<name>(return_X_y=True,
as_frame=as_frame)`` returns; the named helpers are shortcuts for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn import datasets as _skd

from whybox.errors import InvalidParameterError

__all__ = [
    "SKLEARN_DATASETS",
    "breast_cancer",
    "diabetes",
    "digits",
    "iris",
    "load_sklearn",
    "wine",
]

_LOADERS: dict[str, Callable[..., Any]] = {
    "breast_cancer": _skd.load_breast_cancer,
    "diabetes": _skd.load_diabetes,
    "digits": _skd.load_digits,
    "iris": _skd.load_iris,
    "wine": _skd.load_wine,
}

#: Names accepted by :func:`load_sklearn`.
SKLEARN_DATASETS: tuple[str, ...] = tuple(sorted(_LOADERS))


def load_sklearn(
    name: str, as_frame: bool = True
) -> tuple[pd.DataFrame | np.ndarray, pd.Series | np.ndarray]:
    """Load one of scikit-learn's bundled data sets as ``(X, y)``.

    Parameters
    ----------
    name : str
        One of ``"breast_cancer"`` (569, 30), ``"diabetes"`` (442, 10), ``"digits"``
        (1797, 64), ``"iris"`` (150, 4), ``"wine"`` (178, 13).
    as_frame : bool, default True
        Return a DataFrame and a Series (True) or two numpy arrays (False).

    Returns
    -------
    X : pandas.DataFrame or numpy.ndarray, shape (n_samples, n_features)
        The features.
    y : pandas.Series or numpy.ndarray, shape (n_samples,)
        The target.

    Raises
    ------
    InvalidParameterError
        If ``name`` is not one of the bundled data sets or ``as_frame`` is not a bool.

    Examples
    --------
    >>> X, y = wb.zoo.load_sklearn("iris", as_frame=False)
    >>> type(X).__name__, X.shape, y.shape
    ('ndarray', (150, 4), (150,))
    >>> wb.zoo.SKLEARN_DATASETS
    ('breast_cancer', 'diabetes', 'digits', 'iris', 'wine')
    """
    if not isinstance(name, str) or name not in _LOADERS:
        raise InvalidParameterError(
            f"name must be one of {list(SKLEARN_DATASETS)} (scikit-learn's bundled data "
            f"sets), got {name!r}. Pick one of these names."
        )
    if not isinstance(as_frame, (bool, np.bool_)):
        raise InvalidParameterError(
            f"as_frame must be True or False, got {as_frame!r}. Pass as_frame=True for a "
            f"DataFrame and a Series, as_frame=False for numpy arrays."
        )
    X, y = _LOADERS[name](return_X_y=True, as_frame=bool(as_frame))
    return X, y


def breast_cancer(
    as_frame: bool = True,
) -> tuple[pd.DataFrame | np.ndarray, pd.Series | np.ndarray]:
    """Wisconsin breast cancer (binary classification), X shape (569, 30), y shape (569,).

    Parameters
    ----------
    as_frame : bool, default True
        Return a DataFrame and a Series (True) or two numpy arrays (False).

    Returns
    -------
    X : pandas.DataFrame or numpy.ndarray
    y : pandas.Series or numpy.ndarray

    Raises
    ------
    InvalidParameterError
        If ``as_frame`` is not a bool.

    See Also
    --------
    load_sklearn : the loader behind it.

    Examples
    --------
    >>> X, y = wb.zoo.breast_cancer()
    >>> X.shape, y.shape, int(y.sum())  # 357 benign (1), 212 malignant (0)
    ((569, 30), (569,), 357)
    """
    return load_sklearn("breast_cancer", as_frame=as_frame)


def diabetes(
    as_frame: bool = True,
) -> tuple[pd.DataFrame | np.ndarray, pd.Series | np.ndarray]:
    """Diabetes progression (regression), X shape (442, 10), y shape (442,).

    Parameters
    ----------
    as_frame : bool, default True
        Return a DataFrame and a Series (True) or two numpy arrays (False).

    Returns
    -------
    X : pandas.DataFrame or numpy.ndarray
    y : pandas.Series or numpy.ndarray

    Raises
    ------
    InvalidParameterError
        If ``as_frame`` is not a bool.

    See Also
    --------
    load_sklearn : the loader behind it.

    Examples
    --------
    >>> X, y = wb.zoo.diabetes()
    >>> X.columns.tolist()[:4], round(float(y.mean()), 1)
    (['age', 'sex', 'bmi', 'bp'], 152.1)
    """
    return load_sklearn("diabetes", as_frame=as_frame)


def digits(
    as_frame: bool = True,
) -> tuple[pd.DataFrame | np.ndarray, pd.Series | np.ndarray]:
    """8x8 handwritten digits (10 classes), X shape (1797, 64), y shape (1797,).

    Pixel intensities are 0-16; ``X[i].reshape(8, 8)`` is the image.

    Parameters
    ----------
    as_frame : bool, default True
        Return a DataFrame and a Series (True) or two numpy arrays (False).

    Returns
    -------
    X : pandas.DataFrame or numpy.ndarray
    y : pandas.Series or numpy.ndarray

    Raises
    ------
    InvalidParameterError
        If ``as_frame`` is not a bool.

    See Also
    --------
    load_sklearn : the loader behind it.

    Examples
    --------
    >>> X, y = wb.zoo.digits(as_frame=False)
    >>> X.shape, float(X.max()), len(set(y))
    ((1797, 64), 16.0, 10)
    """
    return load_sklearn("digits", as_frame=as_frame)


def iris(
    as_frame: bool = True,
) -> tuple[pd.DataFrame | np.ndarray, pd.Series | np.ndarray]:
    """Iris flowers (3 classes), X shape (150, 4), y shape (150,).

    Parameters
    ----------
    as_frame : bool, default True
        Return a DataFrame and a Series (True) or two numpy arrays (False).

    Returns
    -------
    X : pandas.DataFrame or numpy.ndarray
    y : pandas.Series or numpy.ndarray

    Raises
    ------
    InvalidParameterError
        If ``as_frame`` is not a bool.

    See Also
    --------
    load_sklearn : the loader behind it.

    Examples
    --------
    >>> X, y = wb.zoo.iris()
    >>> X.columns.tolist()[:2], np.bincount(y).tolist()
    (['sepal length (cm)', 'sepal width (cm)'], [50, 50, 50])
    """
    return load_sklearn("iris", as_frame=as_frame)


def wine(
    as_frame: bool = True,
) -> tuple[pd.DataFrame | np.ndarray, pd.Series | np.ndarray]:
    """Wine cultivars (3 classes), X shape (178, 13), y shape (178,).

    Parameters
    ----------
    as_frame : bool, default True
        Return a DataFrame and a Series (True) or two numpy arrays (False).

    Returns
    -------
    X : pandas.DataFrame or numpy.ndarray
    y : pandas.Series or numpy.ndarray

    Raises
    ------
    InvalidParameterError
        If ``as_frame`` is not a bool.

    See Also
    --------
    load_sklearn : the loader behind it.

    Examples
    --------
    >>> X, y = wb.zoo.wine()
    >>> X.shape, np.bincount(y).tolist()
    ((178, 13), [59, 71, 48])
    """
    return load_sklearn("wine", as_frame=as_frame)
