"""Tests of backend.store: the SQLite and the Redis store pass the same contract tests."""

import sqlite3

import numpy as np
import pytest

from backend.settings import Settings
from backend.store import RedisStore, SQLiteStore, open_store


@pytest.fixture(
    params=[pytest.param("sqlite", id="sqlite"), pytest.param("redis", id="redis", marks=pytest.mark.redis)]
)
def store(request):
    """Each store implementation, empty."""
    return request.getfixturevalue(f"{request.param}_store")


def test_project_records_round_trip(store):
    """A project's record comes back as stored; projects are isolated and listed."""
    assert store.get_project(1) is None
    store.put_project(1, {"label_config": "<View/>", "extra_params": {"target_auc": 0.92}})
    store.put_project(2, {"label_config": "<Other/>"})
    assert store.get_project(1) == {"label_config": "<View/>", "extra_params": {"target_auc": 0.92}}
    assert store.project_ids() == [1, 2]


def test_labels_keep_the_latest_annotation_per_task(store):
    """Two annotations of one task: the later one counts; deleting it brings back the earlier."""
    store.put_label(1, annotation_id=10, task_id=100, choices=["A"])
    store.put_label(1, annotation_id=11, task_id=100, choices=["B"])
    store.put_label(1, annotation_id=12, task_id=101, choices=["A"])
    store.put_label(2, annotation_id=13, task_id=100, choices=["C"])
    assert store.get_labels(1) == {100: ["B"], 101: ["A"]}
    assert store.delete_labels(1, [11, 999]) == 1
    assert store.get_labels(1) == {100: ["A"], 101: ["A"]}
    assert store.get_labels(2) == {100: ["C"]}


def test_task_hash_is_forgotten_when_the_image_changes(store):
    """A task's hash survives re-recording the same image but not a new image."""
    store.put_tasks(1, {5: "http://x/a.png", 6: "http://x/b.png"})
    store.set_task_hashes(1, {5: "aa", 6: "bb"})
    store.put_tasks(1, {5: "http://x/a.png", 6: "http://x/new.png"})
    assert store.get_tasks(1) == {
        5: {"image": "http://x/a.png", "sha": "aa"},
        6: {"image": "http://x/new.png", "sha": None},
    }
    assert store.get_tasks(1, [6, 7]) == {6: {"image": "http://x/new.png", "sha": None}}
    assert store.get_tasks(1, []) == {}


def test_embeddings_round_trip_per_encoder(store):
    """put_many/get_many keep float32 vectors per encoder; missing hashes are left out."""
    vectors = {"s1": np.arange(4, dtype=np.float32), "s2": np.ones(4, dtype=np.float32) / 2}
    store.put_many("enc-a", vectors)
    got = store.get_many("enc-a", ["s1", "s2", "s3"])
    assert set(got) == {"s1", "s2"}
    np.testing.assert_array_equal(got["s1"], vectors["s1"])
    assert got["s1"].dtype == np.float32
    assert store.get_many("enc-b", ["s1"]) == {}
    assert store.get_many("enc-a", []) == {}


def test_results_are_replaced_together(store):
    """put_result saves model, forecast and plots; the next one replaces all three."""
    assert store.get_model(1) is None and store.get_forecast(1) is None
    store.put_result(1, {"version": "v1"}, {"message": "m1"}, {"A": b"png1", "B": b"pngB"})
    store.put_result(1, {"version": "v2"}, {"message": "m2"}, {"A": b"png2"})
    assert store.get_model(1) == {"version": "v2"} and store.get_forecast(1) == {"message": "m2"}
    assert store.get_plot(1, "A") == b"png2" and store.get_plot(1, "B") is None


def test_many_tasks_in_one_lookup(store):
    """Lookups of more ids than SQLite binds per statement work."""
    store.put_tasks(1, {t: f"http://x/{t}.png" for t in range(1200)})
    assert len(store.get_tasks(1, range(0, 1200, 1))) == 1200


def test_sqlite_store_creates_its_folder_on_first_use(tmp_path):
    """Constructing a SQLiteStore touches nothing on disk; the first write creates the file."""
    path = tmp_path / "deep" / "store.sqlite3"
    store = SQLiteStore(path)
    assert not path.parent.exists()
    store.put_project(1, {"label_config": "x"})
    assert path.exists()
    assert SQLiteStore(path).get_project(1) == {"label_config": "x"}


def test_open_store_follows_the_settings(tmp_path):
    """open_store gives Redis with REDIS_URL and SQLite in MODEL_DIR otherwise."""
    assert isinstance(open_store(Settings(model_dir=tmp_path)), SQLiteStore)
    assert isinstance(open_store(Settings(redis_url="redis://127.0.0.1:1/0")), RedisStore)


@pytest.mark.redis
def test_redis_replies_are_parsed_by_hiredis(redis_store):
    """The Redis store's connections parse replies with hiredis (C), a dependency: the pure
    Python parser costs every webhook CPU on its two round trips."""
    import redis.utils

    assert redis.utils.HIREDIS_AVAILABLE, "hiredis is not installed (redis[hiredis] in pyproject.toml)"
    # redis-py gives every connection its default parser, hiredis when installed, unless the
    # pool is told otherwise; the store's pool is not.
    assert "parser_class" not in redis_store.connection.connection_pool.connection_kwargs
    assert redis_store.connection.ping()


def test_label_with_image_records_the_task(store):
    """put_label(image=...) records the task's image in the same write."""
    store.put_label(1, annotation_id=3, task_id=30, choices=["A"], image="http://x/30.png")
    assert store.get_tasks(1) == {30: {"image": "http://x/30.png", "sha": None}}
    assert store.get_labels(1) == {30: ["A"]}


def test_replace_labels_keeps_labels_newer_than_the_read(store):
    """replace_labels swaps in Label Studio's labels but keeps ones recorded after the read began."""
    import time

    store.put_label(1, annotation_id=1, task_id=10, choices=["A"])
    store.put_label(1, annotation_id=2, task_id=11, choices=["A"])
    started = time.time() + 1e-3
    time.sleep(0.01)
    store.put_label(1, annotation_id=3, task_id=12, choices=["B"])  # arrived by webhook meanwhile
    store.replace_labels(1, {2: (11, ["B"]), 4: (13, ["A"])}, older_than=started)
    assert store.get_labels(1) == {11: ["B"], 12: ["B"], 13: ["A"]}


# --- SQLite only: group commit and waiting for another process's transaction ------------------


def test_sqlite_group_commit_fails_only_the_bad_write(sqlite_store):
    """Writes committed as a group: when one of them fails, the others are still committed
    (each on its own) and only the failing caller gets the error."""
    from backend.store import _sqlite

    good = [("INSERT INTO projects (project_id, record) VALUES (?, ?)", (1, "{}"))]
    bad = [("INSERT INTO no_such_table VALUES (?)", (1,))]
    also_good = [("INSERT INTO projects (project_id, record) VALUES (?, ?)", (2, "{}"))]
    sqlite_store.project_ids()  # opens the connection and creates the schema
    errors = _sqlite._commit_members(sqlite_store._conn(), [good, bad, also_good])
    assert errors[0] is None and errors[2] is None
    assert isinstance(errors[1], sqlite3.OperationalError) and "no_such_table" in str(errors[1])
    assert sqlite_store.project_ids() == [1, 2]


def test_sqlite_concurrent_labels_are_each_committed_once(sqlite_store):
    """Sixteen threads posting labels at once (grouped commits): every label is there, with
    its task, and an update of the same annotation keeps the newest version."""
    import threading

    barrier = threading.Barrier(16)

    def post(worker):
        barrier.wait()
        for i in range(20):
            a = worker * 100 + i
            sqlite_store.put_label(1, a, a, ["Effusion"], image=f"http://x/{a}.png", updated_at=1.0)
            sqlite_store.put_label(1, a, a, ["No effusion"], updated_at=2.0)
            sqlite_store.put_label(1, a, a, ["Effusion"], updated_at=0.5)  # late, older: ignored

    threads = [threading.Thread(target=post, args=(w,)) for w in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    labels = sqlite_store.get_labels(1)
    assert len(labels) == 320 and set(map(tuple, labels.values())) == {("No effusion",)}
    assert len(sqlite_store.get_tasks(1)) == 320


def test_sqlite_writer_waits_for_another_process_transaction(tmp_path):
    """A write that meets another process's open write transaction waits for it to end
    (polling) instead of failing with 'database is locked'."""
    import subprocess
    import sys
    import time

    path = tmp_path / "locked.sqlite3"
    store = SQLiteStore(path)
    store.put_project(1, {"label_config": "x"})  # creates the database
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True)\n"
            "time.sleep(0.5); c.execute('COMMIT')\n",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    started = time.monotonic()
    store.put_label(1, 7, 70, ["Effusion"], image="http://x/70.png")
    waited = time.monotonic() - started
    holder.wait(timeout=10)
    assert store.get_labels(1) == {70: ["Effusion"]}
    assert waited > 0.2  # it did wait for the other transaction
    store.close()


def test_sqlite_writer_that_cannot_open_the_store_strands_no_one(tmp_path):
    """A label write that fails before it commits (here: the store's folder is a file) raises,
    and the writes after it raise too instead of waiting forever on its group."""
    import threading

    (tmp_path / "not-a-folder").write_text("")
    store = SQLiteStore(tmp_path / "not-a-folder" / "store.sqlite3")
    outcomes = []

    def write(a):
        try:
            store.put_label(1, a, a, ["Effusion"])
            outcomes.append("ok")
        except OSError:
            outcomes.append("error")

    threads = [threading.Thread(target=write, args=(a,), daemon=True) for a in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert outcomes == ["error"] * 4


def test_deleting_more_annotations_than_sqlite_binds_in_one_statement(store):
    """delete_labels with 260,000 ids (above SQLite's 32,766 bound variables) deletes the named
    labels, counts them, and leaves a tombstone for each id."""
    store.put_label(1, 7, 70, ["a"], updated_at=100.0)
    store.put_label(1, 259_999, 71, ["b"], updated_at=100.0)
    store.put_label(1, 300_000, 72, ["c"], updated_at=100.0)
    assert store.delete_labels(1, range(260_000)) == 2
    assert store.get_labels(1) == {72: ["c"]}
    store.put_label(1, 123_456, 73, ["d"], updated_at=200.0)  # deleted before it ever arrived
    assert store.get_labels(1) == {72: ["c"]}


def test_pool_embeddings_are_every_embedded_task_labeled_or_not(store):
    """get_pool_embeddings: each task with a vector for that encoder, labeled or not; tasks not
    embedded yet, and other encoders' vectors, are left out."""
    store.put_tasks(4, {1: "http://h/1.png", 2: "http://h/2.png", 3: "http://h/3.png"})
    store.put_label(4, annotation_id=10, task_id=1, choices=["Effusion"], image="http://h/1.png")
    store.set_task_hashes(4, {1: "a", 2: "b", 3: "c"})
    store.put_many("enc", {"a": np.zeros(3, np.float32), "b": np.ones(3, np.float32)})
    store.put_many("other", {"c": np.ones(3, np.float32)})
    pool = store.get_pool_embeddings(4, "enc")
    assert set(pool) == {1, 2}
    np.testing.assert_array_equal(pool[2], np.ones(3, np.float32))
    assert store.get_pool_embeddings(5, "enc") == {}


def test_cached_shas_names_the_hashes_embedded_for_that_encoder(store):
    """cached_shas: the given hashes that have a vector for that encoder, no others."""
    store.put_many("enc", {"a": np.zeros(3, np.float32), "b": np.ones(3, np.float32)})
    store.put_many("other", {"c": np.ones(3, np.float32)})
    assert store.cached_shas("enc", ["a", "c", "a", "zz"]) == {"a"}
    assert store.cached_shas("enc", []) == set()
    assert store.cached_shas("other", ["a", "b", "c"]) == {"c"}


def test_push_deadlines_are_set_replaced_and_cleared(store):
    """A missed version's push deadline is kept per project, replaced by a later one and
    removed once Label Studio has the version."""
    assert store.get_push_due() == {}
    store.set_push_due(3, 100.5)
    store.set_push_due(4, 200.0)
    store.set_push_due(3, 130.25)
    assert store.get_push_due() == {3: 130.25, 4: 200.0}
    store.set_push_due(3, None)
    store.set_push_due(5, None)  # clearing a project without a deadline is harmless
    assert store.get_push_due() == {4: 200.0}


def test_embedding_progress_round_trips(store):
    """The worker's progress record is replaced whole and read back per project."""
    assert store.get_embedding_progress(3) is None
    store.put_embedding_progress(3, {"tasks_embedded": 1, "tasks_total": 9})
    store.put_embedding_progress(3, {"tasks_embedded": 9, "tasks_total": 9, "errors": {"refused": 0}})
    assert store.get_embedding_progress(3) == {"tasks_embedded": 9, "tasks_total": 9, "errors": {"refused": 0}}
    assert store.get_embedding_progress(4) is None


@pytest.mark.redis
def test_redis_task_hash_write_does_not_undo_an_image_change_in_between(redis_store, monkeypatch):
    """set_task_hashes reads then writes the task: a new image stored by another process in
    between survives (the write is retried on the new record, as SQLite's UPDATE would be)."""
    import redis

    redis_store.put_tasks(1, {7: "http://h/a.png"})
    original = redis.client.Pipeline.hmget
    injected = []

    def hmget(pipe, *args, **kwargs):
        if not injected:
            injected.append(True)
            redis_store.connection.hset(
                redis_store.key("project", 1, "tasks"), "7", '{"image": "http://h/b.png", "sha": null}'
            )
        return original(pipe, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "hmget", hmget)
    redis_store.set_task_hashes(1, {7: "s1"})
    assert injected
    assert redis_store.get_tasks(1, [7])[7] == {"image": "http://h/b.png", "sha": "s1"}
