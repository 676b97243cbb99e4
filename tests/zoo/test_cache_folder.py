"""Tests of whybox.zoo.cache.cached_folder: folders built once, atomically, checked on reuse."""

from __future__ import annotations

import json

import pytest

from whybox.errors import InvalidParameterError
from whybox.zoo.cache import cache_path, cached_folder


def _builder(calls):
    def build(config, seed, folder):
        calls.append((dict(config), seed, folder))
        assert folder.is_dir() and not any(folder.iterdir())  # a fresh, empty folder
        (folder / "weights.json").write_text(json.dumps({"seed": seed, **config}))

    return build


def test_builds_once_then_reuses_the_folder(tmp_path) -> None:
    calls = []
    path = cached_folder("toy", _builder(calls), {"n": 2}, 5, version="1", cache_dir=tmp_path)
    assert path == cache_path("toy", {"n": 2}, 5, version="1", cache_dir=tmp_path).with_suffix("")
    assert json.loads((path / "weights.json").read_text()) == {"seed": 5, "n": 2}
    assert len(calls) == 1 and calls[0][2] != path  # built elsewhere, then renamed into place
    again = cached_folder("toy", _builder(calls), {"n": 2}, 5, version="1", cache_dir=tmp_path)
    assert again == path and len(calls) == 1
    # another config, seed or version is another folder
    other = cached_folder("toy", _builder(calls), {"n": 3}, 5, version="1", cache_dir=tmp_path)
    bumped = cached_folder("toy", _builder(calls), {"n": 2}, 5, version="2", cache_dir=tmp_path)
    assert len({path, other, bumped}) == 3 and len(calls) == 3
    # no temporary folders are left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (path, other, bumped)
    )


def test_incomplete_or_foreign_folder_is_rebuilt_with_a_warning(tmp_path) -> None:
    calls = []
    path = cached_folder("toy", _builder(calls), {"n": 1}, 0, version="1", cache_dir=tmp_path)
    (path / "whybox_identity.json").unlink()  # as if a copy had been interrupted
    with pytest.warns(UserWarning, match="incomplete or names another model"):
        again = cached_folder("toy", _builder(calls), {"n": 1}, 0, version="1", cache_dir=tmp_path)
    assert again == path and len(calls) == 2
    (path / "whybox_identity.json").write_text("something else")
    with pytest.warns(UserWarning):
        cached_folder("toy", _builder(calls), {"n": 1}, 0, version="1", cache_dir=tmp_path)
    assert len(calls) == 3


def test_failed_build_leaves_nothing(tmp_path) -> None:
    def broken(config, seed, folder):
        (folder / "half").write_text("x")
        raise RuntimeError("training diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        cached_folder("toy", broken, {}, 0, version="1", cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_no_cache_builds_a_fresh_temporary_folder_each_time(tmp_path) -> None:
    calls = []
    a = cached_folder("toy", _builder(calls), {}, 0, version="1", cache=False)
    b = cached_folder("toy", _builder(calls), {}, 0, version="1", cache=False)
    assert a != b and len(calls) == 2
    assert (a / "weights.json").read_text() == (b / "weights.json").read_text()


def test_bad_arguments_are_refused(tmp_path) -> None:
    with pytest.raises(InvalidParameterError, match="build must be a callable"):
        cached_folder("toy", None, {}, 0, version="1", cache_dir=tmp_path)
    with pytest.raises(InvalidParameterError, match="cache must be True or False"):
        cached_folder("toy", _builder([]), {}, 0, version="1", cache="yes")
    with pytest.raises(InvalidParameterError, match="name"):
        cached_folder("a/b", _builder([]), {}, 0, version="1", cache_dir=tmp_path)
    with pytest.raises(InvalidParameterError, match="seed"):
        cached_folder("toy", _builder([]), {}, -1, version="1", cache_dir=tmp_path)
