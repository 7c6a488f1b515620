"""Redis store: every key under one prefix, built by this class; the connection is passed in."""

from __future__ import annotations

import json
import time
from typing import Any

from backend.store._base import HISTORY_LIMIT, Store, bytes_to_vector, history_entry, vector_to_bytes

DEFAULT_PREFIX = "labelcast"
"""Prefix of every key LabelCast writes, so one Redis can hold other data too."""

# Lua scripts run atomically in Redis: a delete cannot slip between a check and a write.
# KEYS: the project's labels hash, its set of deleted annotation ids (tombstones) and, for
# _PUT_LABEL_IF_NEWER, its tasks hash (the task's image is recorded in the same step).

_PUT_LABEL_IF_NEWER = """
if ARGV[5] ~= '' then
  local previous = redis.call('HGET', KEYS[3], ARGV[4])
  local sha = cjson.null
  if previous then
    local record = cjson.decode(previous)
    if record['image'] == ARGV[5] then sha = record['sha'] end
  end
  redis.call('HSET', KEYS[3], ARGV[4], cjson.encode({image = ARGV[5], sha = sha}))
end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 0 end
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and ARGV[3] ~= '' then
  local stored = cjson.decode(current)['source_at']
  if type(stored) == 'number' and tonumber(ARGV[3]) < stored then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

_DELETE_LABELS = """
local labels = 0
for _, id in ipairs(ARGV) do
  local current = redis.call('HGET', KEYS[1], id)
  if current then
    if type(cjson.decode(current)['choices']) == 'table' then labels = labels + 1 end
    redis.call('HDEL', KEYS[1], id)
  end
  redis.call('SADD', KEYS[2], id)
end
return labels
"""

_REPLACE_LABELS = """
local cutoff = tonumber(ARGV[1])
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local record = cjson.decode(all[i + 1])
  if record['choices'] ~= cjson.null and record['updated_at'] < cutoff then redis.call('HDEL', KEYS[1], all[i]) end
end
for i = 2, #ARGV, 2 do
  if redis.call('SISMEMBER', KEYS[2], ARGV[i]) == 0 then
    local current = redis.call('HGET', KEYS[1], ARGV[i])
    local newer = true
    if current then
      local stored = cjson.decode(current)['source_at']
      local given = cjson.decode(ARGV[i + 1])['source_at']
      if type(stored) == 'number' and type(given) == 'number' and given < stored then newer = false end
    end
    if newer then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
  end
end
return 0
"""


class RedisStore(Store):
    """The shared store for several web and worker processes.

    Parameters
    ----------
    connection : redis.Redis
        A client (``redis.Redis.from_url(REDIS_URL)``); it connects on first command.
    prefix : str
        Key prefix.

    Durability is Redis's: run it with ``appendonly yes`` so a recorded label survives a
    restart.
    """

    def __init__(self, connection, prefix: str = DEFAULT_PREFIX) -> None:
        self.connection = connection
        self.prefix = prefix
        # Sent by hash (EVALSHA) after the first call, not as the whole script every time.
        self._put_label = connection.register_script(_PUT_LABEL_IF_NEWER)
        self._delete_labels = connection.register_script(_DELETE_LABELS)
        self._replace_labels = connection.register_script(_REPLACE_LABELS)

    def key(self, *parts: Any) -> str:
        """The key ``prefix:part1:part2...``."""
        return ":".join([self.prefix, *map(str, parts)])

    # --- projects ---------------------------------------------------------------------------
    def put_project(self, project_id, record):
        pipe = self.connection.pipeline()
        pipe.set(self.key("project", int(project_id)), json.dumps(dict(record)))
        pipe.sadd(self.key("projects"), int(project_id))
        pipe.execute()

    def get_project(self, project_id):
        raw = self.connection.get(self.key("project", int(project_id)))
        return json.loads(raw) if raw else None

    def project_ids(self):
        return sorted(int(p) for p in self.connection.smembers(self.key("projects")))

    # --- tasks ------------------------------------------------------------------------------
    def put_tasks(self, project_id, images):
        if not images:
            return
        key = self.key("project", int(project_id), "tasks")
        ids = [str(int(t)) for t in images]

        def write(pipe) -> None:  # read, then write only if no one wrote the tasks in between
            old = dict(zip(ids, pipe.hmget(key, ids)))
            mapping = {}
            for task_id, image in images.items():
                prev = json.loads(old[str(int(task_id))]) if old[str(int(task_id))] else None
                sha = prev["sha"] if prev and prev["image"] == image else None
                mapping[str(int(task_id))] = json.dumps({"image": str(image), "sha": sha})
            pipe.multi()
            pipe.hset(key, mapping=mapping)

        self.connection.transaction(write, key)

    def set_task_hashes(self, project_id, hashes):
        if not hashes:
            return
        key = self.key("project", int(project_id), "tasks")
        hashes = {str(int(t)): sha for t, sha in hashes.items()}
        ids = list(hashes)

        def write(pipe) -> None:  # as put_tasks: a task's image changed meanwhile is not overwritten
            mapping = {}
            for task_id, raw in zip(ids, pipe.hmget(key, ids)):
                if raw:
                    record = json.loads(raw)
                    record["sha"] = hashes[task_id]
                    mapping[task_id] = json.dumps(record)
            pipe.multi()
            if mapping:
                pipe.hset(key, mapping=mapping)

        self.connection.transaction(write, key)

    def get_tasks(self, project_id, task_ids=None):
        key = self.key("project", int(project_id), "tasks")
        if task_ids is None:
            items = self.connection.hgetall(key).items()
        else:
            ids = [str(int(t)) for t in task_ids]
            items = zip(ids, self.connection.hmget(key, ids)) if ids else ()
        return {int(t): json.loads(raw) for t, raw in items if raw}

    # --- labels -----------------------------------------------------------------------------
    def put_label(self, project_id, annotation_id, task_id, choices, image=None, updated_at=None):
        record = {
            "task_id": int(task_id),
            "choices": None if choices is None else list(choices),
            "updated_at": time.time(),
        }
        if updated_at is not None:
            record["source_at"] = float(updated_at)
        # One script, one round trip: the task's image, the checks (tombstone, the stored
        # annotation's time) and the write of the label happen atomically.
        pid = int(project_id)
        self._put_label(
            keys=[
                self.key("project", pid, "labels"),
                self.key("project", pid, "deleted"),
                self.key("project", pid, "tasks"),
            ],
            args=[
                str(int(annotation_id)),
                json.dumps(record),
                "" if updated_at is None else repr(float(updated_at)),
                str(int(task_id)),
                "" if image is None else str(image),
            ],
        )

    def delete_labels(self, project_id, annotation_ids):
        ids = [str(int(a)) for a in annotation_ids]
        if not ids:
            return 0
        pid = int(project_id)
        return int(
            self._delete_labels(
                keys=[self.key("project", pid, "labels"), self.key("project", pid, "deleted")], args=ids
            )
        )

    def replace_labels(self, project_id, labels, older_than=None):
        pid = int(project_id)
        now = time.time()
        cutoff = now if older_than is None else float(older_than)
        pairs = []
        for a, (t, c, *rest) in labels.items():
            record = {"task_id": int(t), "choices": list(c), "updated_at": now}
            if rest and rest[0] is not None:
                record["source_at"] = float(rest[0])
            pairs += [str(int(a)), json.dumps(record)]
        self._replace_labels(
            keys=[self.key("project", pid, "labels"), self.key("project", pid, "deleted")],
            args=[repr(cutoff), *pairs],
        )

    def has_label(self, project_id, annotation_id):
        raw = self.connection.hget(self.key("project", int(project_id), "labels"), str(int(annotation_id)))
        return raw is not None and json.loads(raw)["choices"] is not None

    def get_labels(self, project_id):
        raw = self.connection.hgetall(self.key("project", int(project_id), "labels"))
        out: dict[int, list[str]] = {}
        for _, value in sorted(raw.items(), key=lambda kv: int(kv[0])):
            record = json.loads(value)
            if record["choices"] is not None:  # None: the annotation has no label (a skip)
                out[record["task_id"]] = record["choices"]
        return out

    # --- embeddings -------------------------------------------------------------------------
    def get_many(self, encoder_id, sha256_list):
        shas = list(dict.fromkeys(sha256_list))
        if not shas:
            return {}
        values = self.connection.hmget(self.key("embeddings", encoder_id), shas)
        return {sha: bytes_to_vector(v) for sha, v in zip(shas, values) if v is not None}

    def cached_shas(self, encoder_id, sha256_list):
        shas = list(dict.fromkeys(sha256_list))
        if not shas:
            return set()
        pipe = self.connection.pipeline(transaction=False)
        key = self.key("embeddings", encoder_id)
        for sha in shas:
            pipe.hexists(key, sha)
        return {sha for sha, present in zip(shas, pipe.execute()) if present}

    def put_many(self, encoder_id, vectors):
        if vectors:
            self.connection.hset(
                self.key("embeddings", encoder_id),
                mapping={sha: vector_to_bytes(v) for sha, v in vectors.items()},
            )

    def put_embedding_progress(self, project_id, progress):
        self.connection.set(self.key("project", int(project_id), "embedding"), json.dumps(dict(progress)))

    def get_embedding_progress(self, project_id):
        raw = self.connection.get(self.key("project", int(project_id), "embedding"))
        return json.loads(raw) if raw else None

    def set_push_due(self, project_id, at):
        if at is None:
            self.connection.hdel(self.key("push-due"), int(project_id))
        else:
            self.connection.hset(self.key("push-due"), int(project_id), float(at))

    def get_push_due(self):
        return {int(project_id): float(at) for project_id, at in self.connection.hgetall(self.key("push-due")).items()}

    # --- results ----------------------------------------------------------------------------
    def put_result(self, project_id, model, forecast, plots):
        pid = int(project_id)
        pipe = self.connection.pipeline(transaction=True)
        pipe.set(self.key("project", pid, "model"), json.dumps(dict(model)))
        pipe.set(self.key("project", pid, "forecast"), json.dumps(dict(forecast)))
        pipe.delete(self.key("project", pid, "plots"))
        if plots:
            pipe.hset(self.key("project", pid, "plots"), mapping=dict(plots))
        pipe.rpush(self.key("project", pid, "history"), json.dumps(history_entry(forecast)))
        pipe.ltrim(self.key("project", pid, "history"), -HISTORY_LIMIT, -1)
        pipe.execute()

    def get_model(self, project_id):
        raw = self.connection.get(self.key("project", int(project_id), "model"))
        return json.loads(raw) if raw else None

    def get_forecast(self, project_id):
        raw = self.connection.get(self.key("project", int(project_id), "forecast"))
        return json.loads(raw) if raw else None

    def get_plot(self, project_id, finding):
        return self.connection.hget(self.key("project", int(project_id), "plots"), finding)

    def get_history(self, project_id):
        return [
            json.loads(raw) for raw in self.connection.lrange(self.key("project", int(project_id), "history"), 0, -1)
        ]

    def close(self):
        self.connection.close()
