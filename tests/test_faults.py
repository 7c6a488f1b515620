"""Faults with real processes (issue 6): a worker killed mid-refit, Redis restarted while
annotations arrive, SQLite writers racing and crashing, Label Studio unreachable."""

import dataclasses
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from backend.app import EXTENSION, create_app
from backend.jobs import TRAINING_NICE_INCREMENT
from conftest import (
    ONE_FINDING,
    PROJECT_ROOT,
    annotation_event,
    data_uri,
    free_port,
    start_redis,
    wait_until,
    xray_image_server,
    xray_png,
)

CONFIG = ONE_FINDING
SLOW_S = 3.0  # seconds the slow image server takes per image (a batch fetches them side by side):
# a refit is surely running then


@pytest.fixture
def slow_images():
    """An HTTP server on 127.0.0.1 that answers ``/<seed>.png`` after SLOW_S seconds."""
    with xray_image_server(SLOW_S) as url:
        yield url


# --- kill -9 of the worker in the middle of a refit ------------------------------------------


def _start_worker(redis_url, encoder, log_path):
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "ENCODER": encoder,
        "MIN_LABELS": "10",
        "DEVICE": "cpu",
        "ALLOWED_IMAGE_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "INFO",
    }
    # Its own process group: `kill -9` below takes the worker with its RQ scheduler process,
    # as stopping a container would; the scheduler would otherwise outlive the test.
    return subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "worker"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=open(log_path, "ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _kill_worker(worker):
    try:
        os.killpg(worker.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    worker.wait(timeout=10)


@pytest.mark.redis
def test_rq_worker_killed_mid_refit_reruns_it_on_restart(redis_url, service_settings, slow_images, tmp_path):
    """kill -9 of `labelcast worker` (running at a lower CPU priority) during a refit: labels and
    embeddings stay in Redis, the restarted worker runs the refit again, the model version moves on."""
    settings = dataclasses.replace(service_settings, redis_url=redis_url)
    app = create_app({"LABELCAST_SETTINGS": settings})
    web, store = app.test_client(), app.extensions[EXTENSION].store
    log_path = tmp_path / "worker.log"
    worker = _start_worker(redis_url, settings.encoder, log_path)
    try:
        assert web.post("/setup", json={"project": 8, "schema": CONFIG}).status_code == 200
        for i in range(12):
            assert web.post("/webhook", json=annotation_event(8, i, 800 + i)).status_code == 200
        wait_until(lambda: (store.get_forecast(8) or {}).get("n_labels") == 12, 120, "the first refit")
        first_version = store.get_model(8)["version"]
        # The worker lowered its own CPU priority: web requests and Redis go first on shared cores.
        assert os.getpriority(os.PRIO_PROCESS, worker.pid) == min(
            19, os.getpriority(os.PRIO_PROCESS, 0) + TRAINING_NICE_INCREMENT
        )
        embedded = len(store.connection.hkeys(store.key("embeddings", store.get_model(8)["encoder"])))

        for i in range(12, 15):  # images behind the slow server: the refit takes >= SLOW_S
            body = annotation_event(8, i, 800 + i, image=f"{slow_images}/{i}.png")
            assert web.post("/webhook", json=body).status_code == 200
        wait_until(lambda: store.connection.exists("labelcast:project:8:refit-inflight"), 60, "the refit to start")
        time.sleep(0.5)
        _kill_worker(worker)

        assert len(store.get_labels(8)) == 15  # every label is still recorded
        encoder_id = store.get_model(8)["encoder"]
        assert len(store.connection.hkeys(store.key("embeddings", encoder_id))) >= embedded
        assert store.get_model(8)["version"] == first_version  # the killed refit saved nothing

        worker = _start_worker(redis_url, settings.encoder, log_path)
        wait_until(lambda: (store.get_forecast(8) or {}).get("n_labels") == 15, 120 + 6 * SLOW_S, "the rerun refit")
        assert store.get_model(8)["version"] != first_version and store.get_model(8)["version"].endswith("-n15")
        assert not store.connection.exists("labelcast:project:8:refit-inflight")
        assert "interrupted" in log_path.read_text()
    finally:
        _kill_worker(worker)
        app.extensions[EXTENSION].jobs.close()


def test_embedded_training_process_killed_mid_refit_reruns_it(service_settings, sqlite_store, slow_images):
    """kill -9 of the embedded mode's training child during a refit: the worker thread starts a
    new child, runs the refit again, and nothing counts as failed."""
    from backend.jobs import ThreadJobs

    settings = dataclasses.replace(service_settings, allowed_image_hosts=("127.0.0.1",))
    jobs = ThreadJobs(settings, sqlite_store, isolate=True)
    app = create_app({"LABELCAST_SETTINGS": settings, "LABELCAST_STORE": sqlite_store, "LABELCAST_JOBS": jobs})
    web = app.test_client()
    try:
        assert web.post("/setup", json={"project": 9, "schema": CONFIG}).status_code == 200
        for i in range(12):
            web.post("/webhook", json=annotation_event(9, i, 900 + i))
        assert jobs.wait_idle(180)
        assert sqlite_store.get_forecast(9)["n_labels"] == 12
        for i in range(12, 15):
            web.post("/webhook", json=annotation_event(9, i, 900 + i, image=f"{slow_images}/{i}.png"))
        wait_until(lambda: jobs.status()["running"] == "refit:9" and jobs._child is not None, 30, "the refit")
        time.sleep(1.0)
        os.kill(jobs._child.process.pid, signal.SIGKILL)
        assert jobs.wait_idle(180)
        assert sqlite_store.get_forecast(9)["n_labels"] == 15
        assert sqlite_store.get_model(9)["version"].endswith("-n15")
        assert jobs.status()["failed"] == 0
    finally:
        jobs.close()


# --- Redis restarted (AOF) while annotations arrive -------------------------------------------


def _start_redis(port, folder):
    """redis-server on ``port`` with an append-only file synced at every write (a -9 loses nothing)."""
    return start_redis(folder, appendonly=True, port=port, appendfsync="always")[1]


@pytest.mark.redis
def test_redis_restart_while_annotations_arrive(service_settings, tmp_path):
    """Annotations keep arriving while Redis is killed (-9) and restarted with its AOF: the web
    process answers 503 with a clear message meanwhile (never 500), a sender that retries on
    503 gets every label recorded, and no acknowledged label is lost."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    redis_process = _start_redis(port, tmp_path)
    url = f"redis://127.0.0.1:{port}/0"
    settings = dataclasses.replace(service_settings, redis_url=url)
    app = create_app({"LABELCAST_SETTINGS": settings})
    web, store = app.test_client(), app.extensions[EXTENSION].store
    assert web.post("/setup", json={"project": 3, "schema": CONFIG}).status_code == 200

    statuses, messages = {}, set()
    acknowledged = []
    restarted = False
    try:
        for i in range(60):
            if i == 20:
                redis_process.send_signal(signal.SIGKILL)
                redis_process.wait(timeout=10)
            body = annotation_event(3, i, 300 + i)
            for attempt in range(100):  # Label Studio's annotator retries a failed save by hand
                response = web.post("/webhook", json=body)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code == 200:
                    acknowledged.append(300 + i)
                    break
                assert response.status_code == 503, response.get_data(as_text=True)
                messages.add(response.json["message"])
                if not restarted and attempt == 5:
                    redis_process = _start_redis(port, tmp_path)
                    restarted = True
                time.sleep(0.05)
        assert restarted and statuses.get(503, 0) >= 5 and 500 not in statuses
        assert any("Redis" in m and "unreachable" in m for m in messages), messages
        assert len(acknowledged) == 60
        assert len(store.get_labels(3)) == 60  # every acknowledged label, including those before the kill
        redis_process.send_signal(signal.SIGKILL)  # and once more: the AOF has them all
        redis_process.wait(timeout=10)
        redis_process = _start_redis(port, tmp_path)
        assert len(store.get_labels(3)) == 60
    finally:
        redis_process.kill()
        redis_process.wait(timeout=10)


# --- SQLite: concurrent writers and a crash mid-write -----------------------------------------


def test_sqlite_concurrent_writers_lose_nothing(sqlite_store):
    """Eight threads writing labels, tasks and embeddings at once: every write is there after."""
    import numpy as np

    errors = []

    def write(worker):
        try:
            for i in range(50):
                a = worker * 1000 + i
                sqlite_store.put_label(1, a, a, ["Effusion"], image=f"data:{a}", updated_at=float(i))
                sqlite_store.put_many("enc", {f"{a:064x}": np.full(8, a, np.float32)})
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(sqlite_store.get_labels(1)) == 400 and len(sqlite_store.get_tasks(1)) == 400
    assert len(sqlite_store.get_many("enc", [f"{w * 1000 + i:064x}" for w in range(8) for i in range(50)])) == 400


_WRITER = """
import sys
from backend.store import SQLiteStore
store = SQLiteStore(sys.argv[1])
for i in range(100000):
    store.put_label(1, i, i, ["Effusion"], image="data:" + "x" * 2000, updated_at=float(i))
    print(i, flush=True)
"""


def test_sqlite_crash_mid_write_leaves_a_consistent_store(tmp_path):
    """kill -9 of a process in the middle of a stream of writes: the database passes
    integrity_check, and holds every write acknowledged before the kill (at most one more)."""
    from backend.store import SQLiteStore

    path = tmp_path / "crash.sqlite3"
    process = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True
    )
    acknowledged = -1
    deadline = time.monotonic() + 30
    while acknowledged < 300 and time.monotonic() < deadline:
        acknowledged = int(process.stdout.readline())
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    for line in process.stdout.read().split():  # written before the kill, read after
        acknowledged = int(line)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = SQLiteStore(path)
    labels, tasks = store.get_labels(1), store.get_tasks(1)
    assert acknowledged + 1 <= len(labels) <= acknowledged + 2
    assert set(labels) == set(range(len(labels))) and set(tasks) == set(labels)  # label and task together
    store.close()


# --- Label Studio unreachable when the version is pushed --------------------------------------


class _FlakyLabelStudio:
    """A Label Studio client factory whose first model-version push meets a server that is not
    there (connection refused, through the real client's code) and whose later pushes work."""

    def __init__(self):
        from backend.labelstudio.client import LabelStudioClient

        self.pushes = []
        pushes = self.pushes

        class Client(LabelStudioClient):
            def set_model_version(self, project_id, version, **kwargs):
                if not pushes:
                    pushes.append(("failed", version))
                    return super().set_model_version(project_id, version, **kwargs)
                pushes.append(("ok", version))
                return 1

        self.client = Client

    def settings(self, settings):
        """``settings`` pointing at a port where nothing listens, like a stopped Label Studio."""
        return dataclasses.replace(
            settings, label_studio_url=f"http://127.0.0.1:{free_port()}", label_studio_api_key="k"
        )


def _labeled_project(store, pid):
    store.put_project(pid, {"label_config": CONFIG})
    for i in range(12):
        store.put_label(
            pid, 200 + i, i, ["Effusion" if i % 2 else "No effusion"], image=data_uri(xray_png(i, i % 2 == 1))
        )


def test_label_studio_unreachable_does_not_block_and_a_later_job_pushes(service_settings, sqlite_store):
    """With Label Studio down, a refit still saves its forecast promptly; once Label Studio
    answers, the next job of the worker (here an embed, not a refit) pushes the version."""
    from backend.jobs._thread import _run as run_job  # how the embedded worker runs a job
    from backend.training import Trainer

    flaky = _FlakyLabelStudio()
    trainer = Trainer(flaky.settings(service_settings), sqlite_store, client_factory=flaky.client)
    _labeled_project(sqlite_store, 2)
    started = time.monotonic()
    record = trainer.refit(2)
    assert time.monotonic() - started < 20
    assert sqlite_store.get_forecast(2)["version"] == record["version"] and flaky.pushes[0][0] == "failed"
    assert set(trainer.publisher.pending()) == {2} and set(sqlite_store.get_push_due()) == {2}
    sqlite_store.set_push_due(2, 0.0)  # the retry is due (PUSH_RETRY_S later in real life)
    run_job(trainer, ("embed", 2, [0]))  # any later job retries the push, no new refit needed
    assert flaky.pushes[-1] == ("ok", record["version"]) and not trainer.publisher.pending()


def test_a_refit_after_setup_is_pushed_again_soon(service_settings, sqlite_store):
    """A refit asked for by /setup (sync) is told to Label Studio once more SETUP_REPUSH_S later,
    since Label Studio saves its old description after /setup returns; a plain refit whose
    push failed keeps the usual retry deadline (PUSH_RETRY_S)."""
    from backend.publish import PUSH_RETRY_S, SETUP_REPUSH_S
    from backend.training import Trainer

    flaky = _FlakyLabelStudio()  # Label Studio not there: the sync and the first push fail
    trainer = Trainer(flaky.settings(service_settings), sqlite_store, client_factory=flaky.client)
    _labeled_project(sqlite_store, 2)
    _labeled_project(sqlite_store, 3)
    trainer.refit(2)
    trainer.refit(3, sync=True)
    due = {pid: at - time.time() for pid, at in sqlite_store.get_push_due().items()}
    assert SETUP_REPUSH_S < due[2] <= PUSH_RETRY_S, due
    assert 0 < due[3] <= SETUP_REPUSH_S, due


def test_embedded_worker_retries_a_missed_push_on_a_timer(service_settings, sqlite_store):
    """Embedded worker: a version Label Studio missed is pushed again PUSH_RETRY_S later by
    the worker thread itself, with no label, refit or embed coming after."""
    from backend import training
    from backend.jobs import ThreadJobs
    from backend.publish import Retry

    flaky = _FlakyLabelStudio()
    settings = flaky.settings(service_settings)

    def trainer_factory(s, st):
        return training.Trainer(s, st, client_factory=flaky.client, retry=Retry(interval_s=0.5))

    jobs = ThreadJobs(settings, sqlite_store, trainer_factory=trainer_factory)
    try:
        _labeled_project(sqlite_store, 3)
        jobs.request_refit(3)
        wait_until(lambda: len(flaky.pushes) >= 2, 60, "the timed retry of the push")
        version = sqlite_store.get_model(3)["version"]
        assert flaky.pushes == [("failed", version), ("ok", version)]
        assert jobs.status()["version_push_in_s"] is None and jobs.status()["failed"] == 0
        assert sqlite_store.get_push_due() == {}
    finally:
        jobs.close()


@pytest.mark.redis
def test_rq_worker_schedules_a_push_for_a_missed_version(service_settings, redis_store):
    """Redis mode: a failed push puts a push_job on RQ's schedule; the next worker run (its
    scheduler) runs it, with no other job, and Label Studio gets the version."""
    from rq import Queue
    from rq.registry import ScheduledJobRegistry

    from backend import training
    from backend.jobs import RQJobs
    from backend.jobs._rq import QUEUE_NAME, run_worker
    from backend.publish import Retry

    flaky = _FlakyLabelStudio()
    settings = flaky.settings(service_settings)

    def trainer_factory(s, st):
        return training.Trainer(s, st, client_factory=flaky.client, retry=Retry(interval_s=0.0))

    _labeled_project(redis_store, 4)
    RQJobs(redis_store.connection).request_refit(4)
    assert run_worker(settings, redis_store, burst=True, trainer_factory=trainer_factory)
    registry = ScheduledJobRegistry(queue=Queue(QUEUE_NAME, connection=redis_store.connection))
    assert [job.func_name for job in map(registry.get_queue().fetch_job, registry.get_job_ids())] == [
        "backend.jobs._rq.push_job"
    ]
    # The next worker run moves the due job to the queue and runs it.
    wait_until(
        lambda: run_worker(settings, redis_store, burst=True, trainer_factory=trainer_factory),
        15,
        "a worker run that runs the scheduled push_job",
    )
    version = redis_store.get_model(4)["version"]
    assert flaky.pushes == [("failed", version), ("ok", version)]
    assert registry.count == 0


def test_embedded_serve_killed_mid_refit_refits_on_restart(tmp_path, tiny_encoder_spec, slow_images):
    """kill -9 of the whole `labelcast serve` (gunicorn, worker thread, training child) during a
    refit: the restarted backend finds labels newer than its forecast and refits by itself."""
    import requests

    from conftest import wait_http

    env = {
        **os.environ,
        "MODEL_DIR": str(tmp_path / "model"),
        "ENCODER": tiny_encoder_spec,
        "MIN_LABELS": "10",
        "DEVICE": "cpu",
        "LOG_LEVEL": "WARNING",
        "ALLOWED_IMAGE_HOSTS": "127.0.0.1",
    }
    for name in ("REDIS_URL", "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"):
        env.pop(name, None)

    def serve(port):
        process = subprocess.Popen(
            [sys.executable, "-m", "backend.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            start_new_session=True,
            stdout=open(tmp_path / "serve.log", "ab"),
            stderr=subprocess.STDOUT,
        )
        wait_http(f"http://127.0.0.1:{port}/health", 60, process)
        return process

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = serve(port)
    try:
        requests.post(f"{url}/setup", json={"project": 6, "schema": CONFIG}, timeout=10).raise_for_status()
        for i in range(12):
            body = annotation_event(6, i, 600 + i, image=f"{slow_images}/{i}.png" if i >= 9 else None)
            requests.post(f"{url}/webhook", json=body, timeout=10).raise_for_status()
        wait_until(
            lambda: requests.get(f"{url}/metrics", timeout=10).json()["jobs"]["running"] == "refit:6",
            60,
            "the refit to run",
        )
        time.sleep(1.0)
        os.killpg(process.pid, signal.SIGKILL)  # the server's own process group: master, worker, child
        process.wait(timeout=10)

        process = serve(port)  # no new label: the restart alone must bring the forecast up to date
        wait_until(
            lambda: (
                requests.get(f"{url}/forecast", params={"project": 6}, timeout=10).status_code == 200
                and requests.get(f"{url}/forecast", params={"project": 6}, timeout=10).json()["n_labels"] == 12
            ),
            60 + 6 * SLOW_S,
            "the refit after the restart",
        )
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        process.wait(timeout=20)


# --- a trickling image host (issue 13, item 5) -------------------------------------------------


TRICKLE_S = 20.0  # how long project 1's image host trickles each download


@pytest.mark.parametrize(
    "isolate", [pytest.param(False, id="lanes-in-threads"), pytest.param(True, id="training-process")]
)
def test_a_trickling_image_host_does_not_hold_another_projects_refit(service_settings, sqlite_store, isolate):
    """Project 1's newest labels point at a host that trickles a byte every 0.25 s for 20 s;
    project 2's labels, sent once project 1's refit is downloading them, get their forecast
    while that download still runs (its own lane; before, it waited behind project 1's refit,
    up to the 120-s download budget). Project 1's refit then ends with the trickled images as
    image errors."""
    from backend.jobs import ThreadJobs

    settings = dataclasses.replace(service_settings, allowed_image_hosts=("127.0.0.1",))
    jobs = ThreadJobs(settings, sqlite_store, isolate=isolate)
    app = create_app({"LABELCAST_SETTINGS": settings, "LABELCAST_STORE": sqlite_store, "LABELCAST_JOBS": jobs})
    web = app.test_client()
    seen: list[str] = []
    try:
        with xray_image_server(trickle_s=TRICKLE_S, seen=seen) as images:
            for pid in (1, 2):
                assert web.post("/setup", json={"project": pid, "schema": CONFIG}).status_code == 200
            assert jobs.wait_idle(120)
            for i in range(12):
                assert web.post("/webhook", json=annotation_event(1, i, 100 + i)).status_code == 200
            for i in range(3):
                body = annotation_event(1, 90 + i, 190 + i, image=f"{images}/trickle/{i}")
                assert web.post("/webhook", json=body).status_code == 200
            wait_until(lambda: any(p.startswith("/trickle") for p in seen), 60, "project 1's trickling download")
            started = time.monotonic()
            for i in range(20):  # other images than project 1's (not in the cache), a forecast past collecting
                assert web.post("/webhook", json=annotation_event(2, 40 + i, 200 + i)).status_code == 200
            wait_until(lambda: (sqlite_store.get_forecast(2) or {}).get("n_labels") == 20, 60, "project 2's forecast")
            seconds = time.monotonic() - started
            running = jobs.status()["running"] or ""
            first = sqlite_store.get_forecast(1) or {}
            assert sqlite_store.get_forecast(2)["findings"]["Effusion"]["status"] != "collecting"
            assert "refit:1" in running, running  # project 1 is still downloading
            assert not {"90", "91", "92"} & set(first.get("image_errors") or {}), first
            assert seconds < TRICKLE_S - 5, seconds
            assert jobs.wait_idle(120)
        record = sqlite_store.get_forecast(1)
        assert record["n_labels"] == 12 and sorted(record["image_errors"]) == ["90", "91", "92"]
        assert jobs.status()["failed"] == 0
    finally:
        jobs.close()
