"""A small convolutional network trained on scikit-learn's 8x8 digits, for demos and tests.

:func:`digits_cnn` trains (in a few seconds on a CPU) or loads from the cache a seeded
:class:`torch.nn.Module` of this layout, whose module paths are stable so that layer methods
can address them (``layer="features.3"``)::

    features.0  Conv2d(1, 32, 3, padding=1)    -> (32, 8, 8)
    features.1  ReLU
    features.2  AvgPool2d(2)                   -> (32, 4, 4)
    features.3  Conv2d(32, 64, 3, padding=1)   -> (64, 4, 4)   (the Grad-CAM layer)
    features.4  ReLU
    flatten     Flatten                        -> (1024,)
    fc          Linear(1024, 10)               -> logits of the ten digits

Average pooling and the width keep the network's output close to linear along
Integrated-Gradients paths (fewer, smaller kinks than max pooling): 64 Gauss-Legendre steps
reach a mean relative completeness gap below 1e-3 on the test images.

The weights are cached by :func:`whybox.zoo.cache.cached_model`: a safetensors file (plain
arrays, no pickle) under the user cache folder (``$WHYBOX_CACHE``, else
``$XDG_CACHE_HOME/whybox``, else ``~/.cache/whybox``), keyed by a hash of the recipe version,
``epochs`` and ``random_state``, written atomically, so the model is trained once per machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from whybox._validation import check_int
from whybox.errors import InvalidParameterError, MissingDependencyError
from whybox.zoo.cache import cached_model

__all__ = ["DigitsData", "digits_cnn"]

_VERSION = "2"  # bump when the architecture or the training recipe changes


@dataclass
class DigitsData:
    """The digits split used to train :func:`digits_cnn`.

    Parameters
    ----------
    X_train, X_test : torch.Tensor of shape (n, 1, 8, 8), float32 in [0, 1]
        Images (pixel intensities divided by 16).
    y_train, y_test : torch.Tensor of shape (n,), int64
        Digit labels 0-9.
    images : ndarray of shape (n_test, 8, 8), float32
        The test images as numpy arrays, for plotting.
    target_names : list of str
        ``["0", ..., "9"]``.
    test_accuracy : float
        Accuracy of the returned model on the test split.

    Examples
    --------
    >>> model, data = wb.zoo.digits_cnn()
    >>> tuple(data.X_train.shape), tuple(data.X_test.shape), data.images.shape
    ((1347, 1, 8, 8), (450, 1, 8, 8), (450, 8, 8))
    >>> data.target_names[:3], bool(data.test_accuracy > 0.9)
    (['0', '1', '2'], True)
    """

    X_train: Any
    X_test: Any
    y_train: Any
    y_test: Any
    images: np.ndarray
    target_names: list[str]
    test_accuracy: float


def _build(nn: Any) -> Any:
    class DigitsCNN(nn.Module):
        """Two convolutions and a linear read-out over 1x8x8 digit images."""

        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 32, 3, padding=1),
                nn.ReLU(),
                nn.AvgPool2d(2),
                nn.Conv2d(32, 64, 3, padding=1),
                nn.ReLU(),
            )
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(64 * 4 * 4, 10)

        def forward(self, x: Any) -> Any:
            return self.fc(self.flatten(self.features(x)))

    return DigitsCNN()


def _split(random_state: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    X = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=random_state
    )
    return X_tr, X_te, y_tr, y_te


def _train(torch: Any, model: Any, X: Any, y: Any, random_state: int, epochs: int) -> None:
    gen = torch.Generator().manual_seed(random_state)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    n = X.shape[0]
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, 64):
            idx = order[start : start + 64]
            opt.zero_grad()
            loss = loss_fn(model(X[idx]), y[idx])
            loss.backward()
            opt.step()
    model.eval()


def digits_cnn(
    random_state: int = 0,
    *,
    epochs: int = 15,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[Any, DigitsData]:
    """A small CNN trained on scikit-learn's digits (1x8x8 images, 10 classes).

    Parameters
    ----------
    random_state : int, default 0
        Seed of the train/test split, the weight initialisation and the batch order.
    epochs : int, default 15
        Training epochs (Adam, learning rate 3e-3, batches of 64).
    cache : bool, default True
        Load the weights from the cache when present and store them after training.
    cache_dir : path, optional
        Folder of the cache (default: ``$WHYBOX_CACHE`` or the user cache folder).

    Returns
    -------
    model : torch.nn.Module
        The network, on the CPU, in float32, in eval mode.
    data : DigitsData
        The train/test split (test size 25 %, stratified) and the model's test accuracy.

    Raises
    ------
    MissingDependencyError
        If torch is not installed.
    InvalidParameterError
        If ``random_state`` or ``epochs`` is not a non-negative / positive integer.

    Examples
    --------
    >>> model, data = wb.zoo.digits_cnn()  # trained once (about 10 s), then cached
    >>> logits = model(data.X_test[:5])
    >>> tuple(logits.shape)
    (5, 10)
    >>> bool((logits.argmax(dim=1) == data.y_test[:5]).float().mean() >= 0.8)
    True
    """
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is installed in the test env
        raise MissingDependencyError("torch", "torch", "the digits CNN") from exc
    random_state = check_int("random_state", random_state, minimum=0)
    epochs = check_int("epochs", epochs, minimum=1)
    if not isinstance(cache, (bool, np.bool_)):
        raise InvalidParameterError(f"cache must be True or False, got {cache!r}.")

    X_tr, X_te, y_tr, y_te = _split(random_state)
    Xt_tr, Xt_te = torch.from_numpy(X_tr), torch.from_numpy(X_te)
    yt_tr, yt_te = torch.from_numpy(y_tr), torch.from_numpy(y_te)

    def train(config: dict[str, Any], seed: int) -> dict[str, np.ndarray]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = _build(torch.nn)
        _train(torch, net, Xt_tr, yt_tr, seed, config["epochs"])
        return {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}

    weights = cached_model(
        "digits_cnn",
        train,
        {"epochs": epochs},
        random_state,
        version=_VERSION,
        cache_dir=cache_dir,
        cache=bool(cache),
    )
    with torch.random.fork_rng(devices=[]):  # the caller's torch RNG is left as it was
        model = _build(torch.nn)
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.items()})
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    with torch.no_grad():
        acc = float((model(Xt_te).argmax(1) == yt_te).float().mean())
    data = DigitsData(
        X_train=Xt_tr,
        X_test=Xt_te,
        y_train=yt_tr,
        y_test=yt_te,
        images=X_te[:, 0].copy(),
        target_names=[str(d) for d in range(10)],
        test_accuracy=acc,
    )
    return model, data
