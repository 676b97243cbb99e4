"""A disk cache for the zoo's trained toy models: train once per machine, load afterwards.

:func:`cached_model` calls a trainer ``train(config, seed) -> {name: array}`` once and stores
the arrays it returns as a safetensors file (plain little-endian arrays and a JSON header: no
pickle, nothing executed on load), under the cache folder: ``$WHYBOX_CACHE``, else
``$XDG_CACHE_HOME/whybox``, else ``~/.cache/whybox``. The file name holds a hash of
(model name, trainer ``version``, ``config``, ``seed``), so a change to any of them trains anew,
and the file's own metadata repeats them and is checked on load. Files are written to a
temporary name and renamed, so a reader (another test process, say) never sees half a file,
and a process that finds the file missing takes a lock (POSIX ``flock`` on a file in the
system temporary folder named by a hash of the cache path) before training: several processes
asking for the same model at once (test workers, Dask workers) train it once, the others wait
and load it.

Bump ``version`` whenever the trainer's code or recipe changes: the hash cannot see code.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from whybox._persist import _atomic_write
from whybox._validation import check_int
from whybox.errors import InvalidParameterError, MissingDependencyError

__all__ = ["cache_folder", "cache_key", "cache_path", "cached_folder", "cached_model"]

Trainer = Callable[[dict[str, Any], int], Mapping[str, np.ndarray]]
FolderBuilder = Callable[[dict[str, Any], int, Path], None]

_IDENTITY_FILE = "whybox_identity.json"


def cache_folder(path: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder: ``path`` if given, else ``$WHYBOX_CACHE``, else the user cache.

    The user cache is ``$XDG_CACHE_HOME/whybox`` or, without that variable,
    ``~/.cache/whybox``.
    """
    if path is not None:
        return Path(path)
    env = os.environ.get("WHYBOX_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "whybox"


@contextmanager
def _training_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` while one process trains ``path``.

    The lock file is ``<temp folder>/whybox-locks/<sha256 of the resolved path>.lock``: outside
    the cache folder, which then holds only models. Lock files stay (removing one would let a
    waiting process lock a file no one else sees); they are empty.

    Without ``fcntl`` (Windows) or where the lock file cannot be made (a read-only cache) it
    holds nothing: the atomic rename still keeps every reader safe, at the cost of a training
    done twice.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    try:
        locks = Path(tempfile.gettempdir()) / "whybox-locks"
        locks.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(str(path.resolve()).encode("utf-8")).hexdigest()[:32]
        handle = open(locks / f"{digest}.lock", "a+b")
    except OSError:
        yield
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield
    finally:
        handle.close()  # closing the file releases the lock


def _identity(name: str, config: Mapping[str, Any], seed: int, version: str) -> str:
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_." for c in name):
        raise InvalidParameterError(
            f"name must be a non-empty string of letters, digits, '-', '_' or '.', got {name!r}."
        )
    if not isinstance(version, str) or not version:
        raise InvalidParameterError(
            f"version must be a non-empty string naming the trainer's code version, got "
            f"{version!r}; bump it whenever the training code or recipe changes."
        )
    if not isinstance(config, Mapping):
        raise InvalidParameterError(
            f"config must be a dict of the training settings, got {type(config).__name__}."
        )
    seed = check_int("seed", seed, minimum=0)
    try:
        return json.dumps(
            {"name": name, "version": version, "config": dict(config), "seed": seed},
            sort_keys=True,
            separators=(",", ":"),
            allow_nan=False,
        )
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"config must hold only JSON values (str, int, float, bool, None, lists and dicts "
            f"of them) so that it can key the cache; {exc}. Pass e.g. a layer size as an int, "
            "not an object."
        ) from exc


def cache_key(name: str, config: Mapping[str, Any], seed: int, *, version: str) -> str:
    """The hex SHA-256 of (name, version, config, seed), in canonical JSON."""
    return hashlib.sha256(_identity(name, config, seed, version).encode()).hexdigest()


def cache_path(
    name: str,
    config: Mapping[str, Any],
    seed: int,
    *,
    version: str,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Where :func:`cached_model` keeps these weights: ``<folder>/<name>-<key[:20]>.safetensors``."""
    key = cache_key(name, config, seed, version=version)
    return cache_folder(cache_dir) / f"{name}-{key[:20]}.safetensors"


def _safetensors() -> tuple[Any, Any]:
    """(safetensors.numpy, safetensors.safe_open): pure numpy, torch is not needed."""
    try:
        from safetensors import numpy as st
        from safetensors import safe_open
    except ImportError as exc:
        raise MissingDependencyError("safetensors", "llm", "the zoo's model cache") from exc
    return st, safe_open


def _check_weights(weights: Any, name: str) -> dict[str, np.ndarray]:
    if not isinstance(weights, Mapping) or not weights:
        raise InvalidParameterError(
            f"the trainer of {name!r} must return a non-empty dict of parameter name -> numpy "
            f"array, got {type(weights).__name__}."
        )
    out = {}
    for key, value in weights.items():
        if not isinstance(key, str) or not isinstance(value, np.ndarray):
            raise InvalidParameterError(
                f"the trainer of {name!r} must return str -> numpy array; entry {key!r} is a "
                f"{type(value).__name__} (convert torch tensors with .detach().cpu().numpy())."
            )
        out[key] = np.ascontiguousarray(value)
    return out


def _load(path: Path, identity: str) -> dict[str, np.ndarray]:
    """The arrays of a cache file whose metadata names this identity; raises if anything is off."""
    _, safe_open = _safetensors()
    with safe_open(str(path), framework="numpy") as fh:
        meta = fh.metadata() or {}
        if meta.get("whybox_identity") != identity:
            raise ValueError("its metadata names another model, config, seed or version")
        return {k: fh.get_tensor(k) for k in fh.keys()}


def cached_model(
    name: str,
    train: Trainer,
    config: Mapping[str, Any],
    seed: int,
    *,
    version: str,
    cache_dir: str | os.PathLike[str] | None = None,
    cache: bool = True,
) -> dict[str, np.ndarray]:
    """The weights ``train(config, seed)`` returns, trained once and then loaded from disk.

    Parameters
    ----------
    name : str
        The toy model's name (letters, digits, ``-``, ``_``, ``.``): the start of the file name.
    train : callable
        ``train(config, seed) -> {parameter name: numpy array}``. It must be deterministic
        given its arguments. Called only when the cache holds no valid file.
    config : dict
        The training settings (JSON values only): part of the key.
    seed : int
        The training seed (>= 0): part of the key.
    version : str
        The trainer's code version: part of the key. Bump it when the code changes.
    cache_dir : path, optional
        The cache folder (default: ``$WHYBOX_CACHE``, else ``$XDG_CACHE_HOME/whybox``, else
        ``~/.cache/whybox``).
    cache : bool, default True
        False trains without reading or writing the cache.

    Returns
    -------
    dict of str to ndarray
        The weights, as ``train`` returned them (dtype and shape kept).

    Raises
    ------
    InvalidParameterError
        For a bad name, version, seed or config (not JSON), or a trainer that returns something
        other than a dict of arrays.
    MissingDependencyError
        If ``safetensors`` is not installed (``pip install 'whybox[llm]'``).

    Notes
    -----
    A cache file that cannot be read (truncated, not safetensors) or whose metadata names
    another identity is replaced by a fresh training, with a ``UserWarning`` naming the file. A
    cache folder that cannot be written (a read-only home) only costs the next call a retraining.

    Examples
    --------
    >>> import tempfile
    >>> calls = []
    >>> def train(config, seed):
    ...     calls.append(seed)
    ...     return {"w": np.full(config["n"], float(seed))}
    >>> folder = tempfile.mkdtemp()
    >>> first = wb.zoo.cached_model("demo", train, {"n": 3}, 7, version="1", cache_dir=folder)
    >>> again = wb.zoo.cached_model("demo", train, {"n": 3}, 7, version="1", cache_dir=folder)
    >>> again["w"].tolist(), len(calls)  # the second call loads the file: trained once
    ([7.0, 7.0, 7.0], 1)
    """
    identity = _identity(name, config, seed, version)
    if not isinstance(cache, (bool, np.bool_)):
        raise InvalidParameterError(f"cache must be True or False, got {cache!r}.")
    if not callable(train):
        raise InvalidParameterError(
            f"train must be a callable (config, seed) -> dict of arrays, got {train!r}."
        )
    seed = check_int("seed", seed, minimum=0)
    path = cache_path(name, config, seed, version=version, cache_dir=cache_dir)
    if not cache:
        return _check_weights(train(dict(config), seed), name)
    _safetensors()  # a missing package is an error, not a damaged file
    if path.is_file():
        try:
            return _load(path, identity)
        except Exception:  # damaged, foreign, truncated: retried (and reported) under the lock
            pass
    with _training_lock(path):
        if path.is_file():  # another process may have trained it while this one waited
            try:
                return _load(path, identity)
            except Exception as exc:  # damaged, foreign or truncated: train again, replace it
                warnings.warn(
                    f"the zoo cache file {str(path)!r} could not be used ({exc}); training "
                    f"{name!r} again and replacing it.",
                    UserWarning,
                    stacklevel=2,
                )
        weights = _check_weights(train(dict(config), seed), name)
        st, _ = _safetensors()
        payload = st.save(weights, metadata={"whybox_identity": identity})
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(path, payload)
        except (OSError, InvalidParameterError):  # a read-only cache: the weights still serve
            pass
    return weights


def _folder_is_valid(folder: Path, identity: str) -> bool:
    try:
        return (folder / _IDENTITY_FILE).read_text(encoding="utf-8") == identity
    except (OSError, UnicodeDecodeError):
        return False


def cached_folder(
    name: str,
    build: FolderBuilder,
    config: Mapping[str, Any],
    seed: int,
    *,
    version: str,
    cache_dir: str | os.PathLike[str] | None = None,
    cache: bool = True,
) -> Path:
    """A folder that ``build(config, seed, folder)`` fills once, then reused from the cache.

    For models saved whole with ``save_pretrained`` (config, safetensors weights, tokenizer
    files) and loaded back with ``from_pretrained(folder)``. The folder is
    ``<cache folder>/<name>-<key[:20]>/`` with the same key as :func:`cache_path`. ``build``
    writes into a fresh temporary folder beside it, which is renamed into place only when
    complete, with a ``whybox_identity.json`` naming (name, version, config, seed): a reader
    never sees half a folder, and a folder without that file or naming another identity is
    rebuilt (with a ``UserWarning``).

    Parameters
    ----------
    name, config, seed, version, cache_dir
        As for :func:`cached_model`.
    build : callable
        ``build(config, seed, folder) -> None`` writes the files into ``folder`` (which
        exists and is empty). It must be deterministic given ``config`` and ``seed``.
    cache : bool, default True
        False builds into a new temporary folder (under the system temp folder) every call.

    Returns
    -------
    pathlib.Path
        The folder holding the files.

    Raises
    ------
    InvalidParameterError
        For a bad name, version, seed or config, or a ``build`` that is not callable.
    """
    identity = _identity(name, config, seed, version)
    if not isinstance(cache, (bool, np.bool_)):
        raise InvalidParameterError(f"cache must be True or False, got {cache!r}.")
    if not callable(build):
        raise InvalidParameterError(
            f"build must be a callable (config, seed, folder) -> None, got {build!r}."
        )
    seed = check_int("seed", seed, minimum=0)
    if not cache:
        folder = Path(tempfile.mkdtemp(prefix=f"whybox-{name}-"))
        build(dict(config), seed, folder)
        (folder / _IDENTITY_FILE).write_text(identity, encoding="utf-8")
        return folder
    final = cache_path(name, config, seed, version=version, cache_dir=cache_dir).with_suffix("")
    if final.is_dir() and _folder_is_valid(final, identity):
        return final
    with _training_lock(final):
        if final.is_dir() and _folder_is_valid(final, identity):  # built while this one waited
            return final
        return _build_folder(name, build, config, seed, identity, final, version)


def _build_folder(
    name: str,
    build: FolderBuilder,
    config: Mapping[str, Any],
    seed: int,
    identity: str,
    final: Path,
    version: str,
) -> Path:
    if final.exists():
        warnings.warn(
            f"the zoo cache folder {str(final)!r} is incomplete or names another model; "
            f"building {name!r} again and replacing it.",
            UserWarning,
            stacklevel=3,
        )
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    except OSError:  # a read-only cache: build in the system temp folder instead
        return cached_folder(name, build, config, seed, version=version, cache=False)
    try:
        build(dict(config), seed, tmp)
        (tmp / _IDENTITY_FILE).write_text(identity, encoding="utf-8")
        if final.exists() and not _folder_is_valid(final, identity):
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:  # another process put a complete folder there first
            if not _folder_is_valid(final, identity):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
