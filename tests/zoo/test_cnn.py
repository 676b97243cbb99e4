"""Tests of whybox.zoo.digits_cnn: data against scikit-learn, cache round trip, no pickle."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from safetensors.numpy import load_file  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import whybox as wb  # noqa: E402
from whybox.errors import InvalidParameterError  # noqa: E402


def test_data_is_sklearns_digits_scaled_and_split(tmp_path) -> None:
    model, data = wb.zoo.digits_cnn(random_state=0, epochs=1, cache_dir=tmp_path)
    bunch = load_digits()
    assert data.X_train.shape == (1347, 1, 8, 8) and data.X_test.shape == (450, 1, 8, 8)
    assert data.X_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert float(data.X_train.min()) >= 0.0 and float(data.X_train.max()) <= 1.0
    # every split image is one of sklearn's images divided by 16, with its label
    ref = {
        (bunch.images[i] / 16.0).astype(np.float32).tobytes(): t for i, t in enumerate(bunch.target)
    }
    for X, y in ((data.X_train, data.y_train), (data.X_test, data.y_test)):
        for img, lab in zip(X.numpy()[:50], y.numpy()[:50], strict=True):
            assert ref[img[0].tobytes()] == lab
    np.testing.assert_array_equal(data.images, data.X_test.numpy()[:, 0])
    assert data.target_names == [str(d) for d in range(10)]
    assert not model.training
    assert {n for n, _ in model.named_modules()} >= {"features.3", "fc", "features.1"}


def test_trained_model_is_accurate(digits_cnn) -> None:
    model, data = digits_cnn  # the session fixture: the machine's cache, trained once
    with torch.no_grad():
        pred = model(data.X_test).argmax(1)
    acc = float((pred == data.y_test).float().mean())
    assert acc == pytest.approx(data.test_accuracy)
    assert acc > 0.96


def test_cache_round_trips_as_plain_arrays(tmp_path) -> None:
    model, data = wb.zoo.digits_cnn(random_state=1, epochs=1, cache_dir=tmp_path)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".safetensors"
    arrays = load_file(str(files[0]))  # plain arrays, no pickle
    assert set(arrays) == set(model.state_dict())
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(arrays[k], v.numpy())
    again, _ = wb.zoo.digits_cnn(random_state=1, epochs=1, cache_dir=tmp_path)  # from the cache
    with torch.no_grad():
        torch.testing.assert_close(again(data.X_test), model(data.X_test), rtol=0, atol=0)


def test_seeded_training_is_reproducible_and_damaged_cache_retrains(tmp_path) -> None:
    a, _ = wb.zoo.digits_cnn(random_state=3, epochs=1, cache=False)
    b, _ = wb.zoo.digits_cnn(random_state=3, epochs=1, cache_dir=tmp_path)
    c, _ = wb.zoo.digits_cnn(random_state=4, epochs=1, cache=False)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    (path,) = tmp_path.iterdir()
    path.write_bytes(b"not a safetensors file")
    with pytest.warns(UserWarning, match="could not be used"):
        d, _ = wb.zoo.digits_cnn(random_state=3, epochs=1, cache_dir=tmp_path)
    assert all(torch.equal(sa[k], d.state_dict()[k]) for k in sa)
    assert set(load_file(str(path))) == set(sa)


def test_the_cache_loads_without_training(tmp_path, monkeypatch) -> None:
    """Trained once: a second call never enters the training loop."""
    import whybox.zoo.cnn as cnn

    calls = []
    real = cnn._train
    monkeypatch.setattr(cnn, "_train", lambda *a: (calls.append(1), real(*a))[1])
    a, _ = wb.zoo.digits_cnn(random_state=5, epochs=1, cache_dir=tmp_path)
    b, _ = wb.zoo.digits_cnn(random_state=5, epochs=1, cache_dir=tmp_path)
    wb.zoo.digits_cnn(random_state=5, epochs=2, cache_dir=tmp_path)  # another config
    assert len(calls) == 2
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert len(list(tmp_path.iterdir())) == 2


def test_the_callers_torch_rng_is_untouched(tmp_path) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    wb.zoo.digits_cnn(random_state=6, epochs=1, cache_dir=tmp_path)  # trains
    torch.manual_seed(123)
    wb.zoo.digits_cnn(random_state=6, epochs=1, cache_dir=tmp_path)  # loads
    torch.testing.assert_close(torch.rand(3), expected, rtol=0, atol=0)


def test_bad_parameters() -> None:
    with pytest.raises(InvalidParameterError, match="epochs must be at least 1"):
        wb.zoo.digits_cnn(epochs=0, cache=False)
    with pytest.raises(InvalidParameterError, match="random_state must be an integer"):
        wb.zoo.digits_cnn(random_state="a", cache=False)
    with pytest.raises(InvalidParameterError, match="cache must be True or False"):
        wb.zoo.digits_cnn(cache="yes")
