"""Tests of whybox.zoo.datasets against scikit-learn's own loaders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets as skd

from whybox.errors import InvalidParameterError
from whybox.zoo import breast_cancer, diabetes, digits, iris, load_sklearn, wine

CASES = [
    ("breast_cancer", skd.load_breast_cancer, breast_cancer, (569, 30)),
    ("diabetes", skd.load_diabetes, diabetes, (442, 10)),
    ("digits", skd.load_digits, digits, (1797, 64)),
    ("iris", skd.load_iris, iris, (150, 4)),
    ("wine", skd.load_wine, wine, (178, 13)),
]


@pytest.mark.parametrize(("name", "sk_loader", "helper", "shape"), CASES)
def test_as_frame_matches_sklearn(name, sk_loader, helper, shape) -> None:
    X, y = load_sklearn(name)
    X_ref, y_ref = sk_loader(return_X_y=True, as_frame=True)
    assert isinstance(X, pd.DataFrame) and isinstance(y, pd.Series)
    assert X.shape == shape and y.shape == (shape[0],)
    pd.testing.assert_frame_equal(X, X_ref)
    pd.testing.assert_series_equal(y, y_ref)
    X_h, y_h = helper()
    pd.testing.assert_frame_equal(X_h, X_ref)
    pd.testing.assert_series_equal(y_h, y_ref)


@pytest.mark.parametrize(("name", "sk_loader", "helper", "shape"), CASES)
def test_arrays_match_sklearn(name, sk_loader, helper, shape) -> None:
    X, y = load_sklearn(name, as_frame=False)
    bunch = sk_loader()
    assert isinstance(X, np.ndarray) and isinstance(y, np.ndarray)
    assert X.shape == shape and y.shape == (shape[0],)
    np.testing.assert_array_equal(X, bunch.data)
    np.testing.assert_array_equal(y, bunch.target)
    X_h, y_h = helper(as_frame=False)
    np.testing.assert_array_equal(X_h, bunch.data)
    np.testing.assert_array_equal(y_h, bunch.target)


@pytest.mark.parametrize("bad", ["mnist", "Iris", "linnerud", "", 3, None])
def test_unknown_name_lists_allowed(bad: object) -> None:
    with pytest.raises(InvalidParameterError) as info:
        load_sklearn(bad)  # type: ignore[arg-type]
    msg = str(info.value)
    for allowed in ("breast_cancer", "diabetes", "digits", "iris", "wine"):
        assert allowed in msg
    assert repr(bad) in msg


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_bad_as_frame(bad: object) -> None:
    with pytest.raises(InvalidParameterError, match="as_frame must be True or False"):
        load_sklearn("iris", as_frame=bad)  # type: ignore[arg-type]
