"""Tests of backend.embedding_cache: SQLite round trips, concurrency, and embed_cached."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading

import numpy as np
import pytest

from backend.embedding_cache import EmbeddingCache, SQLiteEmbeddingCache, embed_cached, sha256_hex
from backend.exceptions import ImageDecodeError


def _vectors(n: int, dim: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        sha256_hex(f"{seed}-{i}".encode()): rng.normal(size=dim).astype(np.float32)
        for i in range(n)
    }


def test_sha256_hex_known_value():
    """sha256_hex is the hex SHA-256 of the bytes."""
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_roundtrip_returns_exact_float32(tmp_path):
    """put_many then get_many returns the same float32 vectors; unknown hashes are absent."""
    cache = SQLiteEmbeddingCache(tmp_path / "e.sqlite")
    items = _vectors(5)
    cache.put_many("enc@1", items)
    got = cache.get_many("enc@1", list(items) + ["0" * 64])
    assert set(got) == set(items)
    for key, vector in items.items():
        assert got[key].dtype == np.float32
        np.testing.assert_array_equal(got[key], vector)


def test_encoders_do_not_share_entries(tmp_path):
    """The same image hash under another encoder id is a miss; dims may differ per encoder."""
    cache = SQLiteEmbeddingCache(tmp_path / "e.sqlite")
    items = _vectors(3, dim=4)
    cache.put_many("a@1", items)
    assert cache.get_many("b@1", list(items)) == {}
    cache.put_many("b@1", {key: np.ones(6) for key in items})
    assert {v.shape for v in cache.get_many("b@1", list(items)).values()} == {(6,)}
    assert cache.count("a@1") == 3 and cache.count() == 6


def test_put_replaces_existing(tmp_path):
    """Putting a hash again replaces its vector."""
    cache = SQLiteEmbeddingCache(tmp_path / "e.sqlite")
    cache.put_many("e", {"k": np.zeros(3)})
    cache.put_many("e", {"k": np.ones(3)})
    np.testing.assert_array_equal(cache.get_many("e", ["k"])["k"], np.ones(3, np.float32))


def test_many_hashes_are_queried_in_chunks(tmp_path):
    """Asking for more hashes than one SQL statement allows still finds them all."""
    cache = SQLiteEmbeddingCache(tmp_path / "e.sqlite")
    items = _vectors(1300, dim=2)
    cache.put_many("e", items)
    assert len(cache.get_many("e", list(items))) == 1300


@pytest.mark.parametrize(
    "vector",
    [pytest.param(np.array([1.0, np.nan]), id="nan"), pytest.param(np.ones((2, 2)), id="2d")],
)
def test_bad_vectors_are_refused(tmp_path, vector):
    """NaN and non-1-d vectors raise ValueError naming the hash, and nothing is stored."""
    cache = SQLiteEmbeddingCache(tmp_path / "e.sqlite")
    with pytest.raises(ValueError, match="'bad'"):
        cache.put_many("e", {"good": np.ones(2), "bad": vector})
    assert cache.get_many("e", ["good"]) == {}


def test_construction_touches_nothing(tmp_path):
    """Creating the cache object creates no file; the first call does, in WAL mode."""
    path = tmp_path / "e.sqlite"
    cache = SQLiteEmbeddingCache(path)
    assert not path.exists()
    cache.get_many("e", ["x"])
    assert path.exists()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_it_satisfies_the_protocol(tmp_path):
    """SQLiteEmbeddingCache is an EmbeddingCache (the protocol the Redis one also follows)."""
    assert isinstance(SQLiteEmbeddingCache(tmp_path / "e.sqlite"), EmbeddingCache)


def test_threads_write_and_read_concurrently(tmp_path):
    """Eight threads sharing one cache object write and read without errors or losses."""
    cache = SQLiteEmbeddingCache(tmp_path / "e.sqlite")
    errors = []

    def work(seed):
        try:
            items = _vectors(50, seed=seed)
            for key, vector in items.items():
                cache.put_many("e", {key: vector})
            assert len(cache.get_many("e", list(items))) == 50
        except Exception as exc:  # collected for the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and cache.count("e") == 400


def test_processes_write_concurrently(tmp_path):
    """Three processes writing the same file all land their entries."""
    path = tmp_path / "e.sqlite"
    code = (
        "import sys, numpy as np; from backend.embedding_cache import SQLiteEmbeddingCache;"
        "c = SQLiteEmbeddingCache(sys.argv[1]);"
        "[c.put_many('e', {f'{sys.argv[2]}-{i}': np.full(4, i, np.float32)}) for i in range(100)]"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), str(n)]) for n in range(3)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    assert SQLiteEmbeddingCache(path).count("e") == 300


class CountingEncoder:
    """A stand-in encoder: embeds bytes as (len, 1), refuses b'bad', counts what it saw."""

    id = "count@1"
    dim = 2

    def __init__(self):
        self.seen: list[bytes] = []

    def embed_bytes(self, datas, filenames=None, *, on_error=None):
        self.seen.extend(datas)
        out = np.full((len(datas), 2), np.nan, dtype=np.float32)
        for i, data in enumerate(datas):
            if data == b"bad":
                error = ImageDecodeError(f"{filenames[i]!r}: bad")
                if on_error is None:
                    raise error
                on_error(i, error)
            else:
                out[i] = [len(data), 1.0]
        return out


def test_embed_cached_embeds_each_image_once_across_runs(tmp_path):
    """Duplicates are embedded once, and a second run embeds nothing new."""
    cache = SQLiteEmbeddingCache(tmp_path / "e.sqlite")
    encoder = CountingEncoder()
    datas = [b"aa", b"bbb", b"aa", b"c"]
    first = embed_cached(encoder, cache, datas)
    assert encoder.seen == [b"aa", b"bbb", b"c"]
    np.testing.assert_array_equal(first[:, 0], [2, 3, 2, 1])
    again = CountingEncoder()
    np.testing.assert_array_equal(embed_cached(again, cache, datas), first)
    assert again.seen == []


def test_embed_cached_reports_every_failing_index_and_caches_nothing_for_them(tmp_path):
    """A bad image (twice) is reported at both indices, gives NaN rows and is not cached."""
    cache = SQLiteEmbeddingCache(tmp_path / "e.sqlite")
    errors = []
    out = embed_cached(
        CountingEncoder(),
        cache,
        [b"bad", b"ok", b"bad"],
        ["x", "y", "z"],
        on_error=lambda i, e: errors.append(i),
    )
    assert errors == [0, 2]
    assert np.isnan(out[[0, 2]]).all() and np.isfinite(out[1]).all()
    assert cache.count() == 1


def test_embed_cached_without_cache_or_handler_raises():
    """Without a cache it still embeds; without on_error a bad image raises."""
    np.testing.assert_array_equal(embed_cached(CountingEncoder(), None, [b"xyz"])[0], [3, 1])
    with pytest.raises(ImageDecodeError):
        embed_cached(CountingEncoder(), None, [b"bad"], ["f"])
