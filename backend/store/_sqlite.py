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
CREATE TABLE IF NOT EXISTS embeddings (
    encoder_id TEXT NOT NULL, sha TEXT NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY (encoder_id, sha));
CREATE TABLE IF NOT EXISTS results (
    project_id INTEGER PRIMARY KEY, model TEXT NOT NULL, forecast TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history (
    project_id INTEGER NOT NULL, seq INTEGER PRIMARY KEY AUTOINCREMENT, entry TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS plots (
    project_id INTEGER NOT NULL, finding TEXT NOT NULL, png BLOB NOT NULL,
    PRIMARY KEY (project_id, finding));
"""

# SQLite caps the number of bound parameters per statement; look up hashes in chunks.
_CHUNK = 500


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
        # Writers of this process queue here instead of in SQLite's busy handler, whose
        # sleeps (up to 100 ms each) would dominate webhook latency under concurrent saves.
        self._write_lock = threading.Lock()
        self._initialised = False

    def __reduce__(self):
        """Pickle as the path: a child process opens its own connections."""
        return (type(self), (self.path,))

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed label survives a crash of the backend; only an
            # OS crash or power cut can lose the last commits. FULL (an fsync per label) made
            # webhook p99 ~10x worse under concurrent saves, and Label Studio keeps every
            # annotation anyway: "Start training" re-reads them all (Trainer.sync_labels).
            conn.execute("PRAGMA synchronous=NORMAL")
            with self._init_lock:
                if not self._initialised:
                    conn.executescript(_SCHEMA)
                    columns = {row[1] for row in conn.execute("PRAGMA table_info(labels)")}
                    if "source_at" not in columns:  # a store written before out-of-order handling
                        conn.execute("ALTER TABLE labels ADD COLUMN source_at REAL")
                    self._initialised = True
            self._local.conn = conn
        return conn

    def _write(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        conn = self._conn()
        with self._write_lock:
            return conn.execute(sql, tuple(params))

    def _write_many(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        if not statements:
            return
        conn = self._conn()
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    conn.execute(sql, params)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # --- projects ---------------------------------------------------------------------------
    def put_project(self, project_id, record):
        self._write(
            "INSERT OR REPLACE INTO projects (project_id, record) VALUES (?, ?)",
            (int(project_id), json.dumps(dict(record))),
        )

    def get_project(self, project_id):
        row = self._conn().execute(
            "SELECT record FROM projects WHERE project_id = ?", (int(project_id),)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def project_ids(self):
        return [r[0] for r in self._conn().execute("SELECT project_id FROM projects ORDER BY project_id")]

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
        conn = self._conn()
        if task_ids is None:
            rows = conn.execute(
                "SELECT task_id, image, sha FROM tasks WHERE project_id = ?", (int(project_id),)
            ).fetchall()
        else:
            ids = [int(t) for t in task_ids]
            rows = []
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                rows += conn.execute(
                    f"SELECT task_id, image, sha FROM tasks WHERE project_id = ? "
                    f"AND task_id IN ({','.join('?' * len(chunk))})",
                    (int(project_id), *chunk),
                ).fetchall()
        return {t: {"image": image, "sha": sha} for t, image, sha in rows}

    # --- labels -----------------------------------------------------------------------------
    def put_label(self, project_id, annotation_id, task_id, choices, image=None, updated_at=None):
        statements = _task_upserts(project_id, {task_id: image}) if image is not None else []
        source_at = None if updated_at is None else float(updated_at)
        statements.append(
            (
                "INSERT INTO labels (project_id, annotation_id, task_id, choices, updated_at, source_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (project_id, annotation_id) DO UPDATE SET "
                "task_id = excluded.task_id, choices = excluded.choices, updated_at = excluded.updated_at, "
                "source_at = excluded.source_at WHERE labels.source_at IS NULL "
                "OR excluded.source_at IS NULL OR excluded.source_at >= labels.source_at",
                (int(project_id), int(annotation_id), int(task_id), json.dumps(list(choices)), time.time(),
                 source_at),
            )
        )
        self._write_many(statements)

    def delete_labels(self, project_id, annotation_ids):
        ids = [int(a) for a in annotation_ids]
        if not ids:
            return 0
        cur = self._write(
            f"DELETE FROM labels WHERE project_id = ? AND annotation_id IN ({','.join('?' * len(ids))})",
            (int(project_id), *ids),
        )
        return cur.rowcount

    def replace_labels(self, project_id, labels, older_than=None):
        pid = int(project_id)
        cutoff = time.time() if older_than is None else float(older_than)
        statements = [("DELETE FROM labels WHERE project_id = ? AND updated_at < ?", (pid, cutoff))]
        now = time.time()
        statements += [
            (
                "INSERT OR REPLACE INTO labels (project_id, annotation_id, task_id, choices, updated_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (pid, int(a), int(t), json.dumps(list(c)), now),
            )
            for a, (t, c) in labels.items()
        ]
        self._write_many(statements)

    def get_labels(self, project_id):
        rows = self._conn().execute(
            "SELECT task_id, choices FROM labels WHERE project_id = ? ORDER BY annotation_id",
            (int(project_id),),
        )
        return {task_id: json.loads(choices) for task_id, choices in rows}

    # --- embeddings -------------------------------------------------------------------------
    def get_many(self, encoder_id, sha256_list):
        shas = list(dict.fromkeys(sha256_list))
        out: dict[str, np.ndarray] = {}
        conn = self._conn()
        for start in range(0, len(shas), _CHUNK):
            chunk = shas[start : start + _CHUNK]
            for sha, blob in conn.execute(
                f"SELECT sha, vector FROM embeddings WHERE encoder_id = ? AND sha IN ({','.join('?' * len(chunk))})",
                (encoder_id, *chunk),
            ):
                out[sha] = bytes_to_vector(blob)
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

    # --- results ----------------------------------------------------------------------------
    def put_result(self, project_id, model, forecast, plots):
        pid = int(project_id)
        statements = [
            (
                "INSERT OR REPLACE INTO results (project_id, model, forecast) VALUES (?, ?, ?)",
                (pid, json.dumps(dict(model)), json.dumps(dict(forecast))),
            ),
            ("DELETE FROM plots WHERE project_id = ?", (pid,)),
            ("INSERT INTO history (project_id, entry) VALUES (?, ?)",
             (pid, json.dumps(history_entry(forecast)))),
            ("DELETE FROM history WHERE project_id = ? AND seq NOT IN (SELECT seq FROM history "
             "WHERE project_id = ? ORDER BY seq DESC LIMIT ?)", (pid, pid, HISTORY_LIMIT)),
        ]
        statements += [
            ("INSERT INTO plots (project_id, finding, png) VALUES (?, ?, ?)", (pid, finding, png))
            for finding, png in plots.items()
        ]
        self._write_many(statements)

    def _result(self, project_id: int, column: str) -> dict[str, Any] | None:
        row = self._conn().execute(
            f"SELECT {column} FROM results WHERE project_id = ?", (int(project_id),)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def get_model(self, project_id):
        return self._result(project_id, "model")

    def get_forecast(self, project_id):
        return self._result(project_id, "forecast")

    def get_plot(self, project_id, finding):
        row = self._conn().execute(
            "SELECT png FROM plots WHERE project_id = ? AND finding = ?", (int(project_id), finding)
        ).fetchone()
        return bytes(row[0]) if row else None

    def get_history(self, project_id):
        rows = self._conn().execute(
            "SELECT entry FROM history WHERE project_id = ? ORDER BY seq", (int(project_id),)
        ).fetchall()
        return [json.loads(row[0]) for row in rows]

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
