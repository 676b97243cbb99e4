"""Small helpers shared by the zoo's trained transformers (induction, modular, tinylm).

Private: imports of optional packages with a clear error, a single-threaded, seeded training
scope (the weights then do not depend on the machine's thread settings, and the caller's
torch RNG is left as it was), and flag checks.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from whybox.errors import InvalidParameterError, MissingDependencyError

__all__ = ["check_flag", "quiet_build", "quiet_transformers", "require", "training_scope"]


def require(package: str, extra: str, feature: str) -> Any:
    """Import ``package`` (``"torch"``, ``"transformers"``, ``"tokenizers"``) or raise
    MissingDependencyError naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise MissingDependencyError(package, extra, feature) from exc


def check_flag(name: str, value: Any) -> bool:
    """``value`` as a bool, or InvalidParameterError if it is not True / False."""
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidParameterError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


@contextlib.contextmanager
def training_scope(torch: Any, seed: int) -> Iterator[None]:
    """Seed torch, train on one thread, and restore the caller's RNG and thread count after.

    One thread makes the trained weights the same whatever ``torch.get_num_threads()`` the
    caller runs with (reductions split across threads can round differently), and on two
    shared cores the small matrices of the toy models train no slower on one.
    """
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


@contextlib.contextmanager
def quiet_build() -> Iterator[None]:
    """Silence the construction-time chatter of transformers models (zero-size init notes)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
        yield


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Hide transformers' progress bars and one-off notes (long-sequence, loss-type) inside,
    restoring the caller's logging verbosity and progress-bar setting after."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - callers import transformers first
        yield
        return
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with quiet_build():
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
