"""Where LabelCast's state lives: labels, task images, embeddings, models, forecasts.

Two implementations of one interface, :class:`Store`: :class:`SQLiteStore` (embedded default,
a file in ``MODEL_DIR``) and :class:`RedisStore` (``REDIS_URL``; shared by any number of web
and worker processes). Both also implement the embedding-cache protocol
(``get_many`` / ``put_many``). :func:`open_store` picks one from the settings.
"""

from __future__ import annotations

from backend.store._base import Store
from backend.store._redis import RedisStore
from backend.store._sqlite import SQLiteStore

__all__ = ["Store", "SQLiteStore", "RedisStore", "open_store"]

SQLITE_FILENAME = "labelcast.sqlite3"
"""Name of the SQLite store's file inside ``MODEL_DIR``."""


def open_store(settings) -> Store:
    """The store the settings ask for: Redis when ``redis_url`` is set, else SQLite in model_dir."""
    if settings.redis_url:
        import redis

        return RedisStore(redis.Redis.from_url(settings.redis_url))
    return SQLiteStore(settings.model_dir / SQLITE_FILENAME)
