"""Embeddings cached by (encoder id, SHA-256 of the image bytes), across restarts.

:class:`EmbeddingCache` is the protocol the CLI and the service share; :class:`SQLiteEmbeddingCache`
is the file-backed implementation (the service adds a Redis one). The same image is never
embedded twice by the same encoder: callers hash the bytes with :func:`sha256_hex`, ask
:meth:`~EmbeddingCache.get_many`, embed only what is missing and :meth:`~EmbeddingCache.put_many`
the result.

SQLite details: one connection per call (safe from any thread and any number of processes),
WAL journal so readers never block the writer, a busy timeout for concurrent writers, vectors
stored as little-endian float32 blobs with their length.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from typing import Protocol, runtime_checkable

import numpy as np

from backend.sqlite_busy import retry_busy

BUSY_TIMEOUT_S = 30.0
"""Seconds a writer waits for another process's write to finish before giving up."""

SQL_VARIABLES_PER_QUERY = 500
"""Hashes per ``SELECT ... IN (...)`` (below every SQLite build's variable limit)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    encoder_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (encoder_id, sha256)
) WITHOUT ROWID
"""


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of image bytes: the cache key of an image."""
    return hashlib.sha256(data).hexdigest()


@runtime_checkable
class EmbeddingCache(Protocol):
    """Where embeddings are kept, keyed by encoder id and image hash."""

    def get_many(self, encoder_id: str, sha256_hexes: list[str]) -> dict[str, np.ndarray]:
        """The cached embeddings among ``sha256_hexes``: hash → float32 array of shape (dim,).
        Hashes not cached are absent from the result."""
        ...

    def put_many(self, encoder_id: str, items: dict[str, np.ndarray]) -> None:
        """Store embeddings (hash → array of shape (dim,)); existing entries are replaced."""
        ...


class SQLiteEmbeddingCache:
    """An :class:`EmbeddingCache` in one SQLite file.

    Parameters
    ----------
    path : str or os.PathLike
        The database file; its folder must exist. Nothing is opened until the first call.
    timeout : float, default=BUSY_TIMEOUT_S
        Seconds to wait on a lock held by another writer.
    """

    def __init__(self, path: str | os.PathLike, *, timeout: float = BUSY_TIMEOUT_S):
        self.path = os.fspath(path)
        self.timeout = float(timeout)
        self._ready = False
        self._setup_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SQLiteEmbeddingCache({self.path!r})"

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        if not self._ready:
            with self._setup_lock:  # one thread of this process sets the file up
                if not self._ready:
                    self._set_up(connection)
                    self._ready = True
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    def _set_up(self, connection: sqlite3.Connection) -> None:
        """WAL mode and the table. Switching a new file to WAL needs it to itself, and SQLite
        can answer "database is locked" at once, without waiting its busy timeout, while another
        connection has it open (seen with eight threads opening a new file together): so poll
        until ``timeout``."""
        retry_busy(lambda: connection.execute("PRAGMA journal_mode=WAL").fetchall(), self.timeout)
        connection.execute(_SCHEMA)

    def get_many(self, encoder_id: str, sha256_hexes: list[str]) -> dict[str, np.ndarray]:
        """The cached embeddings among ``sha256_hexes``.

        Parameters
        ----------
        encoder_id : str
            :attr:`Encoder.id` of the encoder that made them.
        sha256_hexes : list of str
            Image hashes (:func:`sha256_hex`).

        Returns
        -------
        dict of str to ndarray of shape (dim,), float32
            Only the hashes found.
        """
        wanted = list(dict.fromkeys(sha256_hexes))
        found: dict[str, np.ndarray] = {}
        if not wanted:
            return found
        connection = self._connect()
        try:
            for start in range(0, len(wanted), SQL_VARIABLES_PER_QUERY):
                chunk = wanted[start : start + SQL_VARIABLES_PER_QUERY]
                rows = connection.execute(
                    "SELECT sha256, dim, vector FROM embeddings WHERE encoder_id = ? AND sha256 IN "
                    f"({','.join('?' * len(chunk))})",
                    [encoder_id, *chunk],
                )
                for sha, dim, blob in rows:
                    vector = np.frombuffer(blob, dtype="<f4")
                    if vector.shape == (dim,):
                        found[sha] = vector.astype(np.float32)
        finally:
            connection.close()
        return found

    def put_many(self, encoder_id: str, items: dict[str, np.ndarray]) -> None:
        """Store embeddings in one transaction.

        Parameters
        ----------
        encoder_id : str
            :attr:`Encoder.id` of the encoder that made them.
        items : dict of str to array-like of shape (dim,)
            Image hash → embedding. Non-finite vectors are refused.

        Raises
        ------
        ValueError
            If a vector is not one-dimensional or holds NaN or infinity.
        """
        rows = []
        for sha, vector in items.items():
            vector = np.asarray(vector, dtype="<f4")
            if vector.ndim != 1 or not np.isfinite(vector).all():
                raise ValueError(
                    f"embedding for {sha!r} has shape {vector.shape} or non-finite values; "
                    "expected a finite 1-d vector"
                )
            rows.append((encoder_id, sha, int(vector.shape[0]), vector.tobytes()))
        if not rows:
            return
        connection = self._connect()
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(
                "INSERT OR REPLACE INTO embeddings (encoder_id, sha256, dim, vector) VALUES (?, ?, ?, ?)",
                rows,
            )
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        finally:
            connection.close()

    def count(self, encoder_id: str | None = None) -> int:
        """Number of cached embeddings (of one encoder, or all)."""
        connection = self._connect()
        try:
            if encoder_id is None:
                return int(connection.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])
            return int(
                connection.execute(
                    "SELECT COUNT(*) FROM embeddings WHERE encoder_id = ?", (encoder_id,)
                ).fetchone()[0]
            )
        finally:
            connection.close()


def embed_cached(
    encoder, cache: EmbeddingCache | None, datas: list[bytes], filenames=None, *, on_error=None
) -> np.ndarray:
    """Embed image bytes, taking what the cache has and storing what it lacked.

    Parameters
    ----------
    encoder : Encoder
        Anything with ``id``, ``dim`` and ``embed_bytes(datas, filenames, on_error=...)``
        (see :class:`backend.encoders.Encoder`).
    cache : EmbeddingCache or None
        None embeds everything.
    datas : list of bytes
        Encoded images.
    filenames : list of str or None, optional
        Their names, for error messages and DICOM detection.
    on_error : callable(index, ImageDecodeError), optional
        As in ``Encoder.embed_bytes``: undecodable images give NaN rows instead of raising.

    Returns
    -------
    ndarray of shape (len(datas), encoder.dim), float32
        Rows in input order; identical bytes are embedded once.
    """
    names = list(filenames) if filenames is not None else [None] * len(datas)
    hashes = [sha256_hex(data) for data in datas]
    found = cache.get_many(encoder.id, hashes) if cache is not None else {}
    todo: dict[str, int] = {}
    for index, sha in enumerate(hashes):
        if sha not in found and sha not in todo:
            todo[sha] = index
    fresh: dict[str, np.ndarray] = {}
    failed: dict[str, Exception] = {}
    if todo:
        pending = list(todo)

        def report(position, error):
            failed[pending[position]] = error

        vectors = encoder.embed_bytes(
            [datas[todo[sha]] for sha in pending],
            [names[todo[sha]] for sha in pending],
            on_error=report if on_error is not None else None,
        )
        fresh = {sha: vectors[row] for row, sha in enumerate(pending) if sha not in failed}
        if cache is not None and fresh:
            cache.put_many(encoder.id, fresh)
    out = np.full((len(datas), int(encoder.dim)), np.nan, dtype=np.float32)
    for index, sha in enumerate(hashes):
        vector = found.get(sha, fresh.get(sha))
        if vector is not None:
            out[index] = vector
        elif on_error is not None:
            on_error(index, failed[sha])
    return out
