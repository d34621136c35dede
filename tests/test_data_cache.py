"""The on-disk cache of drawn synthetic tensors: same data as drawing, atomic files, bounded size."""
import os
import subprocess
import sys

import numpy as np
import pytest

from simulator import ConfigError, clear_tensor_cache, simulate, tensor_cache_info
from simulator.runner import _data_cache as dc
from simulator.runner import _network_run as nr
from workloads import child_seed, synthetic_activation


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("SPARSESIM_CACHE_DIR", str(d))
    monkeypatch.delenv("SPARSESIM_CACHE_MAX_MIB", raising=False)
    return d


def _draw():
    return synthetic_activation((9, 7, 5), 0.4, child_seed(3, "layer", "input", 0))


def _fail():
    raise AssertionError("drawn although the file is on disk")


def test_hit_returns_the_drawn_array_read_only(cache):
    want = _draw()
    a = dc.cached_tensor(("t", 1), _draw, (9, 7, 5))
    files = list(cache.iterdir())
    assert [f.suffix for f in files] == [".npy"]           # one file, no temporary left behind
    b = dc.cached_tensor(("t", 1), _fail, (9, 7, 5))
    assert type(b) is np.ndarray and not b.flags.writeable and b.flags.c_contiguous
    np.testing.assert_array_equal(a, want)
    np.testing.assert_array_equal(b, want)
    assert b.dtype == want.dtype


def test_key_and_generator_version_name_the_file(cache, monkeypatch):
    dc.cached_tensor(("t", 1), _draw)
    dc.cached_tensor(("t", 2), _draw)
    assert len(list(cache.iterdir())) == 2
    # Another generator version (edited generator code, another numpy) must miss the old files.
    monkeypatch.setattr(dc, "_VERSION", "another generator")
    calls = []
    dc.cached_tensor(("t", 1), lambda: calls.append(1) or _draw())
    assert calls == [1] and len(list(cache.iterdir())) == 3


@pytest.mark.parametrize("damage", ["truncate", "garbage", "shape"])
def test_a_bad_file_is_drawn_again(cache, damage):
    dc.cached_tensor(("t", 1), _draw, (9, 7, 5))
    (path,) = cache.iterdir()
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "garbage":
        path.write_bytes(b"not a numpy file at all")
    else:
        np.save(path, np.zeros((2, 2), dtype=np.int16))
    b = dc.cached_tensor(("t", 1), _draw, (9, 7, 5))
    np.testing.assert_array_equal(b, _draw())
    np.testing.assert_array_equal(dc.cached_tensor(("t", 1), _fail, (9, 7, 5)), _draw())   # repaired on disk


def test_pickled_object_files_are_never_loaded(cache):
    dc.cached_tensor(("t", 1), _draw, (9, 7, 5))
    (path,) = cache.iterdir()
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.testing.assert_array_equal(dc.cached_tensor(("t", 1), _draw, None), _draw())


def test_off_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSESIM_CACHE_DIR", "off")
    a = dc.cached_tensor(("t", 1), _draw)
    assert not a.flags.writeable
    assert tensor_cache_info()["dir"] is None and clear_tensor_cache() == 0
    assert list(tmp_path.iterdir()) == []


def test_size_bound_drops_least_recently_used(cache, monkeypatch):
    big = lambda: np.ones(300 << 10, dtype=np.int16)   # 600 KiB each  # noqa: E731
    monkeypatch.setenv("SPARSESIM_CACHE_MAX_MIB", "1")
    dc.cached_tensor(("b", 1), big)
    os.utime(next(cache.iterdir()), (1, 1))             # makes the first file the oldest
    dc.cached_tensor(("b", 2), big)
    info = tensor_cache_info()
    assert info["files"] == 1 and info["bytes"] <= 1 << 20 and info["max_bytes"] == 1 << 20
    dc.cached_tensor(("b", 2), _fail)                     # the newest one stayed
    monkeypatch.setenv("SPARSESIM_CACHE_MAX_MIB", "0")  # larger than the bound: not stored at all
    dc.cached_tensor(("b", 3), big)
    assert tensor_cache_info()["files"] == 1


def test_unwritable_directory_does_not_fail_the_run(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("SPARSESIM_CACHE_DIR", str(blocker / "sub"))
    np.testing.assert_array_equal(dc.cached_tensor(("t", 1), _draw), _draw())


@pytest.mark.parametrize("var,value,msg", [
    ("SPARSESIM_CACHE_DIR", "  ", "SPARSESIM_CACHE_DIR must be a directory or 'off', got '  '"),
    ("SPARSESIM_CACHE_MAX_MIB", "lots", "SPARSESIM_CACHE_MAX_MIB must be a non-negative whole number of MiB, "
                                        "got 'lots'"),
    ("SPARSESIM_CACHE_MAX_MIB", "-5", "got '-5'"),
])
def test_bad_environment_is_a_config_error(cache, monkeypatch, var, value, msg):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        dc.cached_tensor(("t", 1), _draw)


def test_clear_and_info(cache):
    assert tensor_cache_info() == {"dir": str(cache), "files": 0, "bytes": 0, "max_bytes": dc.DEFAULT_MAX_MIB << 20}
    dc.cached_tensor(("t", 1), _draw)
    dc.cached_tensor(("t", 2), _draw)
    assert tensor_cache_info()["files"] == 2
    assert clear_tensor_cache() == 2 and tensor_cache_info()["files"] == 0


def test_runs_from_disk_equal_runs_that_draw(cache, monkeypatch):
    """The same results whether the tensors are drawn, read from disk, or the cache is off."""
    kw = dict(trace="synthetic", seed=5, profile="han2015_vgg16")
    monkeypatch.setattr(nr, "_SYNTHETIC", nr._SeedCache(1 << 30))
    drawn = simulate("roshambonet", "nullhop", **kw).to_dict()
    n_files = tensor_cache_info()["files"]
    assert n_files > 0
    monkeypatch.setattr(nr, "_SYNTHETIC", nr._SeedCache(1 << 30))     # a new process: only the disk is warm
    monkeypatch.setattr(nr, "synthetic_activation", lambda *a, **k: _fail())
    monkeypatch.setattr(nr, "synthetic_weights", lambda *a, **k: _fail())
    assert simulate("roshambonet", "nullhop", **kw).to_dict() == drawn
    assert tensor_cache_info()["files"] == n_files


def test_cli_cache_command(cache):
    env = {**os.environ, "SPARSESIM_CACHE_DIR": str(cache)}
    dc.cached_tensor(("t", 1), _draw)
    run = lambda *a: subprocess.run([sys.executable, "-m", "simulator", "cache", *a], env=env,  # noqa: E731
                                    capture_output=True, text=True, timeout=120)
    out = run()
    assert out.returncode == 0 and str(cache) in out.stdout and "1 file(s)" in out.stdout
    out = run("--clear")
    assert out.returncode == 0 and "deleted 1 cached tensor file(s)" in out.stdout
    assert list(cache.iterdir()) == []
    bad = subprocess.run([sys.executable, "-m", "simulator", "cache"], capture_output=True, text=True, timeout=120,
                         env={**env, "SPARSESIM_CACHE_MAX_MIB": "x"})
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "SPARSESIM_CACHE_MAX_MIB" in bad.stderr


def test_directory_listed_once_while_under_the_bound(cache, monkeypatch):
    listings = []
    real = dc._entries
    monkeypatch.setattr(dc, "_entries", lambda d: listings.append(d) or real(d))
    for i in range(20):
        dc.cached_tensor(("small", i), lambda: np.full(100, i, dtype=np.int16))
    assert len(listings) == 1 and tensor_cache_info()["files"] == 20


def test_a_dead_writers_temporary_file_is_removed(cache):
    dc.cached_tensor(("t", 1), _draw)
    stale, fresh = cache / ".tmp-dead.npy", cache / ".tmp-busy.npy"
    stale.write_bytes(b"half a file")
    fresh.write_bytes(b"being written")
    os.utime(stale, (1, 1))
    assert tensor_cache_info()["files"] == 1           # neither counts as a cached tensor
    assert not stale.exists() and fresh.exists()       # a writer may still own the recent one


def test_photo_input_is_read_from_disk_and_keyed_by_the_photo_file(cache, monkeypatch):
    """The network input made from the photo is cached like the synthetic tensors, under a key
    that names the photo file (its size and time): another photo is decoded again."""
    kw = dict(trace="propagated", seed=1)
    monkeypatch.setattr(nr, "_SYNTHETIC", nr._SeedCache(1 << 30))
    made = simulate("roshambonet", "nullhop", **kw).to_dict()
    monkeypatch.setattr(nr, "_SYNTHETIC", nr._SeedCache(1 << 30))     # a new process: only the disk is warm
    monkeypatch.setattr(nr, "image_input", lambda *a, **k: _fail())
    assert simulate("roshambonet", "nullhop", **kw).to_dict() == made
    monkeypatch.setattr(nr, "_SYNTHETIC", nr._SeedCache(1 << 30))
    monkeypatch.setattr(nr, "sample_photo_id", lambda: ("grace_hopper.jpg", 1, 2))
    with pytest.raises(AssertionError, match="drawn although"):
        simulate("roshambonet", "nullhop", **kw)
