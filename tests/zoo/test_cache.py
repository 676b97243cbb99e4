"""whybox.zoo.cached_model: trains once, loads equal weights, keys by (name, version, config,
seed), replaces damaged files, writes atomically, never pickles."""

from __future__ import annotations

import hashlib
import json
import os
import warnings

import numpy as np
import pytest

pytest.importorskip("safetensors")

from safetensors.numpy import load_file

from whybox.errors import InvalidParameterError
from whybox.zoo.cache import cache_folder, cache_key, cache_path, cached_model


class Trainer:
    """A deterministic toy trainer that counts its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict, int]] = []

    def __call__(self, config: dict, seed: int) -> dict[str, np.ndarray]:
        self.calls.append((config, seed))
        rng = np.random.default_rng(seed)
        width = config["width"]
        return {
            "w": rng.normal(size=(3, width)),  # float64
            "b": rng.normal(size=width).astype(np.float32),
            "steps": np.arange(width, dtype=np.int64),
        }


def test_trains_once_then_loads_equal_weights(tmp_path):
    train = Trainer()
    first = cached_model("toy", train, {"width": 4}, 7, version="1", cache_dir=tmp_path)
    again = cached_model("toy", train, {"width": 4}, 7, version="1", cache_dir=tmp_path)
    assert len(train.calls) == 1
    oracle = Trainer()({"width": 4}, 7)  # the trainer's own output, computed here
    for weights in (first, again):
        assert weights.keys() == oracle.keys()
        for k in oracle:
            assert weights[k].dtype == oracle[k].dtype and weights[k].shape == oracle[k].shape
            np.testing.assert_array_equal(weights[k], oracle[k])  # stored bits, no arithmetic
    (path,) = tmp_path.iterdir()
    assert path.suffix == ".safetensors" and path.name.startswith("toy-")
    # a plain safetensors file: readable by safetensors itself, no pickle anywhere
    on_disk = load_file(str(path))
    assert on_disk.keys() == oracle.keys()
    assert b"pickle" not in path.read_bytes() and not path.read_bytes().startswith(b"\x80")


def test_the_key_is_a_hash_of_name_version_config_and_seed(tmp_path):
    base = {"name": "toy", "config": {"width": 4}, "seed": 7, "version": "1"}
    expected = hashlib.sha256(
        json.dumps(base, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    assert cache_key("toy", {"width": 4}, 7, version="1") == expected
    keys = {
        cache_key("toy", {"width": 4}, 7, version="1"),
        cache_key("toy", {"width": 4}, 8, version="1"),  # seed
        cache_key("toy", {"width": 5}, 7, version="1"),  # config
        cache_key("toy", {"width": 4, "lr": 0.1}, 7, version="1"),
        cache_key("toy", {"width": 4}, 7, version="2"),  # trainer code version
        cache_key("toy2", {"width": 4}, 7, version="1"),
    }
    assert len(keys) == 6
    # the config's key order does not matter
    assert cache_key("t", {"a": 1, "b": 2}, 0, version="1") == cache_key(
        "t", {"b": 2, "a": 1}, 0, version="1"
    )
    train = Trainer()
    for seed, width in ((7, 4), (8, 4), (7, 5)):
        cached_model("toy", train, {"width": width}, seed, version="1", cache_dir=tmp_path)
    cached_model("toy", train, {"width": 4}, 7, version="2", cache_dir=tmp_path)
    assert len(train.calls) == 4 and len(list(tmp_path.iterdir())) == 4
    a = cached_model("toy", train, {"width": 4}, 7, version="1", cache_dir=tmp_path)
    b = cached_model("toy", train, {"width": 4}, 8, version="1", cache_dir=tmp_path)
    assert len(train.calls) == 4  # both loaded
    assert not np.array_equal(a["w"], b["w"])


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "foreign"])
def test_a_damaged_or_foreign_file_is_retrained_with_a_warning(tmp_path, damage):
    train = Trainer()
    good = cached_model("toy", train, {"width": 4}, 7, version="1", cache_dir=tmp_path)
    path = cache_path("toy", {"width": 4}, 7, version="1", cache_dir=tmp_path)
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not a safetensors file")
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # a valid file of another model under this name
        other = cache_path("toy", {"width": 4}, 8, version="1", cache_dir=tmp_path)
        cached_model("toy", train, {"width": 4}, 8, version="1", cache_dir=tmp_path)
        path.write_bytes(other.read_bytes())
    calls = len(train.calls)
    with pytest.warns(UserWarning, match="could not be used.*training 'toy' again"):
        again = cached_model("toy", train, {"width": 4}, 7, version="1", cache_dir=tmp_path)
    assert len(train.calls) == calls + 1
    for k in good:
        np.testing.assert_array_equal(again[k], good[k])
    with warnings.catch_warnings():  # the file was replaced: the next call loads it quietly
        warnings.simplefilter("error")
        cached_model("toy", train, {"width": 4}, 7, version="1", cache_dir=tmp_path)
    assert len(train.calls) == calls + 1


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path, monkeypatch):
    import whybox.zoo.cache as cache_module

    seen = []
    real = cache_module._atomic_write

    def spy(path, payload):
        seen.append(path)
        real(path, payload)

    monkeypatch.setattr(cache_module, "_atomic_write", spy)
    cached_model("toy", Trainer(), {"width": 2}, 0, version="1", cache_dir=tmp_path)
    assert seen == [cache_path("toy", {"width": 2}, 0, version="1", cache_dir=tmp_path)]
    assert [p.name for p in tmp_path.iterdir()] == [seen[0].name]


def test_cache_false_and_a_read_only_folder_still_return_weights(tmp_path):
    train = Trainer()
    w = cached_model("toy", train, {"width": 3}, 1, version="1", cache_dir=tmp_path, cache=False)
    assert not list(tmp_path.iterdir()) and len(train.calls) == 1
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder would go")
    w2 = cached_model("toy", train, {"width": 3}, 1, version="1", cache_dir=blocked / "sub")
    np.testing.assert_array_equal(w["w"], w2["w"])


def test_the_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("WHYBOX_CACHE", str(tmp_path / "a"))
    assert cache_folder() == tmp_path / "a"
    monkeypatch.delenv("WHYBOX_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_folder() == tmp_path / "xdg" / "whybox"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_folder() == tmp_path / "home" / ".cache" / "whybox"
    assert cache_folder(tmp_path / "x") == tmp_path / "x"


def test_bad_arguments_are_refused(tmp_path):
    train = Trainer()
    with pytest.raises(InvalidParameterError, match="only JSON values"):
        cached_model("toy", train, {"width": object()}, 0, version="1", cache_dir=tmp_path)
    with pytest.raises(InvalidParameterError, match="only JSON values"):
        cached_model("toy", train, {"lr": float("nan")}, 0, version="1", cache_dir=tmp_path)
    with pytest.raises(InvalidParameterError, match="version must be a non-empty string"):
        cached_model("toy", train, {"width": 1}, 0, version="", cache_dir=tmp_path)
    with pytest.raises(InvalidParameterError, match="name must be"):
        cached_model("../toy", train, {"width": 1}, 0, version="1", cache_dir=tmp_path)
    with pytest.raises(InvalidParameterError, match="seed"):
        cached_model("toy", train, {"width": 1}, -1, version="1", cache_dir=tmp_path)
    with pytest.raises(InvalidParameterError, match="dict of parameter name"):
        cached_model("toy", lambda c, s: [1, 2], {}, 0, version="1", cache_dir=tmp_path)
    with pytest.raises(InvalidParameterError, match="entry 'w' is a list"):
        cached_model("toy", lambda c, s: {"w": [1.0]}, {}, 0, version="1", cache_dir=tmp_path)
    assert not train.calls and not list(tmp_path.iterdir())


def test_the_shared_session_cache_is_the_machine_cache(zoo_cache):
    """tests/conftest.py's session fixture: the per-machine cache folder, so `make test`
    trains each toy model at most once per machine."""
    assert zoo_cache == cache_folder()
    assert os.environ.get("WHYBOX_CACHE") in (None, "", str(zoo_cache))


def _train_slowly(config, seed):
    """A trainer that leaves a line in ``config['log']`` and takes its time (for the lock)."""
    import time

    with open(config["log"], "a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(0.4)
    return {"w": np.full(3, float(seed))}


def test_processes_asking_at_once_train_once(tmp_path):
    """Two processes wanting the same untrained model: one trains, the other waits and loads
    (without the lock both would train: two lines in the log)."""
    import multiprocessing

    log = tmp_path / "log.txt"
    config = {"log": str(log)}
    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(
            target=cached_model,
            args=("slow", _train_slowly, config, 3),
            kwargs={"version": "1", "cache_dir": tmp_path},
        )
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0]
    assert len(log.read_text().splitlines()) == 1
    w = cached_model("slow", _train_slowly, config, 3, version="1", cache_dir=tmp_path)
    assert w["w"].tolist() == [3.0, 3.0, 3.0] and len(log.read_text().splitlines()) == 1
