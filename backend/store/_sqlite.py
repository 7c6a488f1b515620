"""SQLite store: one file, WAL journal, one connection per thread, opened on first use."""

from __future__ import annotations

import json
import pathlib
import sqlite3
import threading
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from backend.sqlite_busy import is_busy, retry_busy
from backend.store._base import HISTORY_LIMIT, Store, bytes_to_vector, history_entry, vector_to_bytes

_SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
    project_id INTEGER PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    project_id INTEGER NOT NULL, task_id INTEGER NOT NULL, image TEXT NOT NULL, sha TEXT,
    PRIMARY KEY (project_id, task_id));
CREATE TABLE IF NOT EXISTS labels (
    project_id INTEGER NOT NULL, annotation_id INTEGER NOT NULL, task_id INTEGER NOT NULL,
    choices TEXT NOT NULL, updated_at REAL NOT NULL, source_at REAL,
    PRIMARY KEY (project_id, annotation_id));
CREATE TABLE IF NOT EXISTS deleted_annotations (
    project_id INTEGER NOT NULL, annotation_id INTEGER NOT NULL, deleted_at REAL NOT NULL,
    PRIMARY KEY (project_id, annotation_id));
CREATE TABLE IF NOT EXISTS embeddings (
    encoder_id TEXT NOT NULL, sha TEXT NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY (encoder_id, sha));
CREATE TABLE IF NOT EXISTS results (
    project_id INTEGER PRIMARY KEY, model TEXT NOT NULL, forecast TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history (
    project_id INTEGER NOT NULL, seq INTEGER PRIMARY KEY AUTOINCREMENT, entry TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS embedding_progress (
    project_id INTEGER PRIMARY KEY, progress TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS push_due (
    project_id INTEGER PRIMARY KEY, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS plots (
    project_id INTEGER NOT NULL, finding TEXT NOT NULL, png BLOB NOT NULL,
    PRIMARY KEY (project_id, finding));
"""

_NOT_DELETED = "NOT EXISTS (SELECT 1 FROM deleted_annotations WHERE project_id = ? AND annotation_id = ?)"
"""SQL condition: the annotation (project_id, annotation_id) has no tombstone."""

_NO_LABEL = "null"
"""``labels.choices`` of an annotation that has no label (put_label with choices None)."""

# SQLite caps the number of bound parameters per statement; look up hashes in chunks.
_CHUNK = 500

AUTOCHECKPOINT_PAGES = 10_000
"""WAL size (pages of 4 KiB) at which a commit folds the log into the database itself.

SQLite's default (1,000) made a webhook's commit run the checkpoint now and then: tens of
milliseconds with every other writer queued behind it. The trainer's writes (``put_result``,
``put_many``) checkpoint instead, after their commit; this larger threshold is only a backstop
for a store that receives labels but never a refit."""


class SQLiteStore(Store):
    """The embedded store.

    Parameters
    ----------
    path : path-like
        Database file; its folder is created on first use, not at construction.
    """

    def __init__(self, path: str | pathlib.Path) -> None:
        self.path = pathlib.Path(path)
        self._local = threading.local()
        self._init_lock = threading.Lock()
        # Writers of this process queue here; writers of other processes (the trainer) are
        # waited for by polling (retry_busy), not by SQLite's busy handler.
        self._write_lock = threading.Lock()
        self._group_lock = threading.Lock()  # guards _group, held only to read or swap it
        self._group: _Group | None = None  # labels waiting to be committed together
        self._initialised = False

    def __reduce__(self):
        """Pickle as the path: a child process opens its own connections."""
        return (type(self), (self.path,))

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # timeout=0: no busy handler; retry_busy polls instead (see BUSY_POLL_S).
            conn = sqlite3.connect(self.path, timeout=0, isolation_level=None)
            retry_busy(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchall())
            # NORMAL in WAL mode: a committed label survives a crash of the backend; only an
            # OS crash or power cut can lose the last commits. FULL (an fsync per label) made
            # webhook p99 ~10x worse under concurrent saves, and Label Studio keeps every
            # annotation anyway: "Start training" re-reads them all (Trainer.sync_labels).
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
            with self._init_lock:
                if not self._initialised:
                    with self._write_lock:
                        retry_busy(lambda: _create_schema(conn))
                    self._initialised = True
            self._local.conn = conn
        return conn

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one query."""
        conn = self._conn()
        return retry_busy(lambda: conn.execute(sql, tuple(params)).fetchall())

    def _write(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one statement in its own transaction; returns the rows it changed."""
        return self._write_many([(sql, tuple(params))])[0]

    def _write_many(self, statements: list[tuple[str, tuple[Any, ...]]]) -> list[int]:
        """Run the statements in one transaction; returns the rows each changed."""
        if not statements:
            return []
        conn = self._conn()  # before the lock: opening the first connection takes it too
        with self._write_lock:
            return retry_busy(lambda: _transaction(conn, statements))

    def _write_grouped(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        """Commit the statements as one unit, together with those of concurrent callers.

        Group commit: the first caller of a group waits for the write lock, and callers that
        come meanwhile join its group instead of queueing for the lock one by one; the group
        is then one transaction. Under a burst of webhooks this replaces a convoy of
        transactions (each waiting for the GIL at every statement) with one or two. Returns
        once this caller's statements are committed; if the group's transaction fails, each
        caller's statements are committed on their own, so one bad write fails only itself.
        """
        conn = self._conn()  # first: opening it can fail, and it takes the write lock once
        with self._group_lock:
            group = self._group
            leader = group is None
            if leader:
                group = self._group = _Group()
            assert group is not None
            index = len(group.members)
            group.members.append(statements)
        if leader:
            with self._write_lock:
                with self._group_lock:
                    self._group = None  # callers from now on start the next group
                try:
                    group.errors = _commit_members(conn, group.members)
                except BaseException as exc:
                    group.errors = [exc] * len(group.members)
                    raise
                finally:
                    group.done.set()
        else:
            group.done.wait()
        error = group.errors[index] if group.errors else None
        if error is not None:
            raise error

    # --- projects ---------------------------------------------------------------------------
    def put_project(self, project_id, record):
        self._write(
            "INSERT OR REPLACE INTO projects (project_id, record) VALUES (?, ?)",
            (int(project_id), json.dumps(dict(record))),
        )

    def get_project(self, project_id):
        rows = self._read("SELECT record FROM projects WHERE project_id = ?", (int(project_id),))
        return json.loads(rows[0][0]) if rows else None

    def project_ids(self):
        return [r[0] for r in self._read("SELECT project_id FROM projects ORDER BY project_id")]

    # --- tasks ------------------------------------------------------------------------------
    def put_tasks(self, project_id, images):
        self._write_many(_task_upserts(project_id, images))

    def set_task_hashes(self, project_id, hashes):
        self._write_many(
            [
                ("UPDATE tasks SET sha = ? WHERE project_id = ? AND task_id = ?", (sha, int(project_id), int(t)))
                for t, sha in hashes.items()
            ]
        )

    def get_tasks(self, project_id, task_ids=None):
        if task_ids is None:
            rows = self._read("SELECT task_id, image, sha FROM tasks WHERE project_id = ?", (int(project_id),))
        else:
            ids = [int(t) for t in task_ids]
            rows = []
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                rows += self._read(
                    f"SELECT task_id, image, sha FROM tasks WHERE project_id = ? "
                    f"AND task_id IN ({','.join('?' * len(chunk))})",
                    (int(project_id), *chunk),
                )
        return {t: {"image": image, "sha": sha} for t, image, sha in rows}

    # --- labels -----------------------------------------------------------------------------
    def put_label(self, project_id, annotation_id, task_id, choices, image=None, updated_at=None):
        statements = _task_upserts(project_id, {task_id: image}) if image is not None else []
        source_at = None if updated_at is None else float(updated_at)
        statements.append(
            (
                # Not for a deleted annotation (a tombstone); not over a newer version of it.
                "INSERT INTO labels (project_id, annotation_id, task_id, choices, updated_at, source_at) "
                f"SELECT ?, ?, ?, ?, ?, ? WHERE {_NOT_DELETED} "
                "ON CONFLICT (project_id, annotation_id) DO UPDATE SET "
                "task_id = excluded.task_id, choices = excluded.choices, updated_at = excluded.updated_at, "
                "source_at = excluded.source_at WHERE labels.source_at IS NULL "
                "OR excluded.source_at IS NULL OR excluded.source_at >= labels.source_at",
                (
                    int(project_id),
                    int(annotation_id),
                    int(task_id),
                    json.dumps(None if choices is None else list(choices)),
                    time.time(),
                    source_at,
                    int(project_id),
                    int(annotation_id),
                ),
            )
        )
        self._write_grouped(statements)

    def delete_labels(self, project_id, annotation_ids):
        ids = [int(a) for a in annotation_ids]
        if not ids:
            return 0
        pid, now = int(project_id), time.time()
        statements = []
        for start in range(0, len(ids), _CHUNK):  # one transaction, in chunks of bound parameters
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            statements += [
                (
                    f"DELETE FROM labels WHERE project_id = ? AND annotation_id IN ({marks}) "
                    f"AND choices != '{_NO_LABEL}'",
                    (pid, *chunk),
                ),
                (f"DELETE FROM labels WHERE project_id = ? AND annotation_id IN ({marks})", (pid, *chunk)),
            ]
        statements += [
            (
                "INSERT OR IGNORE INTO deleted_annotations (project_id, annotation_id, deleted_at) VALUES (?, ?, ?)",
                (pid, a, now),
            )
            for a in ids
        ]
        counts = self._write_many(statements)
        return sum(counts[0 : 2 * ((len(ids) + _CHUNK - 1) // _CHUNK) : 2])

    def replace_labels(self, project_id, labels, older_than=None):
        pid = int(project_id)
        cutoff = time.time() if older_than is None else float(older_than)
        # "No label" records (skips) stay: Label Studio's list does not carry them, and they keep
        # a late, older version of a skipped annotation from coming back.
        statements = [
            (f"DELETE FROM labels WHERE project_id = ? AND updated_at < ? AND choices != '{_NO_LABEL}'", (pid, cutoff))
        ]
        now = time.time()
        statements += [
            (
                "INSERT INTO labels (project_id, annotation_id, task_id, choices, updated_at, source_at) "
                f"SELECT ?, ?, ?, ?, ?, ? WHERE {_NOT_DELETED} "
                "ON CONFLICT (project_id, annotation_id) DO UPDATE SET task_id = excluded.task_id, "
                "choices = excluded.choices, updated_at = excluded.updated_at, source_at = excluded.source_at "
                "WHERE labels.source_at IS NULL OR excluded.source_at IS NULL "
                "OR excluded.source_at >= labels.source_at",
                (pid, int(a), task_id, json.dumps(list(choices)), now, source_at, pid, int(a)),
            )
            for a, (task_id, choices, source_at) in map(_label_entry, labels.items())
        ]
        self._write_many(statements)

    def has_label(self, project_id, annotation_id):
        rows = self._read(
            f"SELECT 1 FROM labels WHERE project_id = ? AND annotation_id = ? AND choices != '{_NO_LABEL}'",
            (int(project_id), int(annotation_id)),
        )
        return bool(rows)

    def get_labels(self, project_id):
        rows = self._read(
            f"SELECT task_id, choices FROM labels WHERE project_id = ? AND choices != '{_NO_LABEL}' "
            "ORDER BY annotation_id",
            (int(project_id),),
        )
        return {task_id: json.loads(choices) for task_id, choices in rows}

    # --- embeddings -------------------------------------------------------------------------
    def get_many(self, encoder_id, sha256_list):
        shas = list(dict.fromkeys(sha256_list))
        out: dict[str, np.ndarray] = {}
        for start in range(0, len(shas), _CHUNK):
            chunk = shas[start : start + _CHUNK]
            for sha, blob in self._read(
                f"SELECT sha, vector FROM embeddings WHERE encoder_id = ? AND sha IN ({','.join('?' * len(chunk))})",
                (encoder_id, *chunk),
            ):
                out[sha] = bytes_to_vector(blob)
        return out

    def cached_shas(self, encoder_id, sha256_list):
        shas = list(dict.fromkeys(sha256_list))
        out: set[str] = set()
        for start in range(0, len(shas), _CHUNK):
            chunk = shas[start : start + _CHUNK]
            out.update(
                sha
                for (sha,) in self._read(
                    f"SELECT sha FROM embeddings WHERE encoder_id = ? AND sha IN ({','.join('?' * len(chunk))})",
                    (encoder_id, *chunk),
                )
            )
        return out

    def put_many(self, encoder_id, vectors):
        self._write_many(
            [
                (
                    "INSERT OR REPLACE INTO embeddings (encoder_id, sha, vector) VALUES (?, ?, ?)",
                    (encoder_id, sha, vector_to_bytes(vec)),
                )
                for sha, vec in vectors.items()
            ]
        )
        self.checkpoint()

    def put_embedding_progress(self, project_id, progress):
        self._write(
            "INSERT OR REPLACE INTO embedding_progress (project_id, progress) VALUES (?, ?)",
            (int(project_id), json.dumps(dict(progress))),
        )

    def get_embedding_progress(self, project_id):
        rows = self._read("SELECT progress FROM embedding_progress WHERE project_id = ?", (int(project_id),))
        return json.loads(rows[0][0]) if rows else None

    def set_push_due(self, project_id, at):
        if at is None:
            self._write("DELETE FROM push_due WHERE project_id = ?", (int(project_id),))
        else:
            self._write("INSERT OR REPLACE INTO push_due (project_id, at) VALUES (?, ?)", (int(project_id), float(at)))

    def get_push_due(self):
        return {int(project_id): float(at) for project_id, at in self._read("SELECT project_id, at FROM push_due")}

    # --- results ----------------------------------------------------------------------------
    def put_result(self, project_id, model, forecast, plots):
        pid = int(project_id)
        statements = [
            (
                "INSERT OR REPLACE INTO results (project_id, model, forecast) VALUES (?, ?, ?)",
                (pid, json.dumps(dict(model)), json.dumps(dict(forecast))),
            ),
            ("DELETE FROM plots WHERE project_id = ?", (pid,)),
            ("INSERT INTO history (project_id, entry) VALUES (?, ?)", (pid, json.dumps(history_entry(forecast)))),
            (
                "DELETE FROM history WHERE project_id = ? AND seq NOT IN (SELECT seq FROM history "
                "WHERE project_id = ? ORDER BY seq DESC LIMIT ?)",
                (pid, pid, HISTORY_LIMIT),
            ),
        ]
        statements += [
            ("INSERT INTO plots (project_id, finding, png) VALUES (?, ?, ?)", (pid, finding, png))
            for finding, png in plots.items()
        ]
        self._write_many(statements)
        self.checkpoint()

    def _result(self, project_id: int, column: str) -> dict[str, Any] | None:
        rows = self._read(f"SELECT {column} FROM results WHERE project_id = ?", (int(project_id),))
        return json.loads(rows[0][0]) if rows else None

    def get_model(self, project_id):
        return self._result(project_id, "model")

    def get_forecast(self, project_id):
        return self._result(project_id, "forecast")

    def get_plot(self, project_id, finding):
        rows = self._read("SELECT png FROM plots WHERE project_id = ? AND finding = ?", (int(project_id), finding))
        return bytes(rows[0][0]) if rows else None

    def get_history(self, project_id):
        rows = self._read("SELECT entry FROM history WHERE project_id = ? ORDER BY seq", (int(project_id),))
        return [json.loads(row[0]) for row in rows]

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database without blocking readers or writers."""
        self._read("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self):
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _task_upserts(project_id, images) -> list[tuple[str, tuple[Any, ...]]]:
    """Statements recording ``{task_id: image}``; a changed image forgets the old hash."""
    return [
        (
            "INSERT INTO tasks (project_id, task_id, image, sha) VALUES (?, ?, ?, NULL) "
            "ON CONFLICT (project_id, task_id) DO UPDATE SET image = excluded.image, "
            "sha = CASE WHEN tasks.image = excluded.image THEN tasks.sha ELSE NULL END",
            (int(project_id), int(task_id), str(image)),
        )
        for task_id, image in images.items()
    ]


def _label_entry(item) -> tuple[int, tuple[int, list[str], float | None]]:
    """``(annotation_id, (task_id, choices[, updated_at]))`` as ``(id, (task_id, choices, time))``."""
    annotation_id, (task_id, choices, *rest) = item
    return annotation_id, (int(task_id), choices, float(rest[0]) if rest and rest[0] is not None else None)


def _transaction(conn: sqlite3.Connection, statements: list[tuple[str, tuple[Any, ...]]]) -> list[int]:
    """Run the statements in one transaction (the caller holds the write lock); the rows
    each changed."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        counts = [conn.execute(sql, params).rowcount for sql, params in statements]
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return counts


def _commit_members(
    conn: sqlite3.Connection, members: list[list[tuple[str, tuple[Any, ...]]]]
) -> list[BaseException | None]:
    """Commit every member's statements, in one transaction if they all succeed, else each
    on its own (the caller holds the write lock); returns each member's error or None."""
    try:
        retry_busy(lambda: _transaction(conn, [s for member in members for s in member]))
        return [None] * len(members)
    except Exception as exc:
        if len(members) == 1 or is_busy(exc):  # still locked after BUSY_TIMEOUT_S: all fail now
            raise
    errors: list[BaseException | None] = []
    for member in members:
        try:
            retry_busy(lambda member=member: _transaction(conn, member))
            errors.append(None)
        except Exception as exc:
            errors.append(exc)
    return errors


class _Group:
    """Writes of concurrent callers committed in one transaction (SQLiteStore._write_grouped)."""

    def __init__(self) -> None:
        self.members: list[list[tuple[str, tuple[Any, ...]]]] = []
        self.done = threading.Event()
        self.errors: list[BaseException | None] = []


def _create_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(_SCHEMA)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(labels)")}
    if "source_at" not in columns:  # a store written before out-of-order handling
        conn.execute("ALTER TABLE labels ADD COLUMN source_at REAL")
