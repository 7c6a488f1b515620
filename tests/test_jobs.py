"""Tests of backend.jobs: both queues coalesce refits and run embeds."""

import threading
import time

import pytest

from backend.jobs import TRAINING_NICE_INCREMENT, RQJobs, ThreadJobs
from backend.jobs._rq import run_worker
from backend.settings import Settings
from conftest import wait_until


class RecordingTrainer:
    """Stands in for backend.training.Trainer: records calls, can block inside a refit."""

    instances = []

    def __init__(self, settings, store):
        self.settings, self.store = settings, store
        self.refits, self.embeds = [], []
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()
        RecordingTrainer.instances.append(self)

    def refit(self, project_id, sync=False):
        self.syncs = getattr(self, "syncs", []) + ([project_id] if sync else [])
        self.entered.set()
        self.release.wait(10)
        if project_id == 666:
            raise RuntimeError("boom")
        self.refits.append(project_id)

    def embed_tasks(self, project_id, task_ids):
        self.embeds.append((project_id, list(task_ids)))

    def retry_version_pushes(self):
        self.push_runs = getattr(self, "push_runs", 0) + 1

    def next_push_in(self):
        return None


class StoreTrainer:
    """A trainer for the child process: it reports through the (SQLite) store."""

    def __init__(self, settings, store):
        self.store = store

    def refit(self, project_id, sync=False):
        import os

        if project_id == 666:
            os._exit(3)  # the training process dies
        self.store.put_project(
            project_id, {"pid": os.getpid(), "sync": sync, "niceness": os.getpriority(os.PRIO_PROCESS, 0)}
        )

    def embed_tasks(self, project_id, task_ids):
        self.store.put_tasks(project_id, {t: "done" for t in task_ids})

    def retry_version_pushes(self):
        pass

    def next_push_in(self):
        return None


@pytest.fixture
def thread_jobs(tmp_path):
    RecordingTrainer.instances.clear()
    jobs = ThreadJobs(Settings(model_dir=tmp_path), store=None, trainer_factory=RecordingTrainer)
    yield jobs
    jobs.close()


def test_thread_jobs_coalesce_labels_arriving_during_a_refit(thread_jobs):
    """Ten requests during a running refit lead to exactly one more refit."""
    assert thread_jobs.request_refit(1) is True
    trainer = None
    deadline = time.monotonic() + 10
    while not RecordingTrainer.instances and time.monotonic() < deadline:
        time.sleep(0.01)
    trainer = RecordingTrainer.instances[0]
    trainer.entered.wait(10)
    trainer.release.clear()  # the next refit blocks until released
    results = [thread_jobs.request_refit(1, sync=(i == 5)) for i in range(10)]
    assert results == [True] + [False] * 9
    trainer.release.set()
    assert thread_jobs.wait_idle(10)
    assert trainer.refits == [1, 1]
    assert trainer.syncs == [1]  # the coalesced refit kept the sync request


def test_thread_jobs_merge_embeds_and_survive_a_failing_job(thread_jobs):
    """Embed requests for one project merge; a failing refit is counted, the worker goes on."""
    thread_jobs.request_refit(666)
    thread_jobs.request_embed(2, [3, 1])
    thread_jobs.request_embed(2, [2, 3])
    thread_jobs.request_refit(2)
    assert thread_jobs.wait_idle(10)
    trainer = RecordingTrainer.instances[0]
    assert trainer.refits == [2]
    assert sorted(t for _, ids in trainer.embeds for t in ids) in ([1, 2, 3], [1, 2, 3, 2, 3], [1, 2, 3, 3])
    status = thread_jobs.status()
    assert status["failed"] == 1 and "boom" in status["last_error"]


def test_isolated_jobs_run_in_a_child_process_that_is_restarted(sqlite_store, tmp_path):
    """isolate=True: jobs run in another process, at a lower CPU priority; if it dies the job
    fails and the next one starts a fresh process."""
    import os

    jobs = ThreadJobs(Settings(model_dir=tmp_path), sqlite_store, trainer_factory=StoreTrainer, isolate=True)
    try:
        jobs.request_refit(1, sync=True)
        jobs.request_embed(2, [5, 6])
        assert jobs.wait_idle(60)
        record = sqlite_store.get_project(1)
        assert record["sync"] is True and record["pid"] != os.getpid()
        assert record["niceness"] == min(19, os.getpriority(os.PRIO_PROCESS, 0) + TRAINING_NICE_INCREMENT)
        assert set(sqlite_store.get_tasks(2)) == {5, 6}
        jobs.request_refit(666)
        assert jobs.wait_idle(60)
        assert jobs.status()["failed"] == 1 and "exited" in jobs.status()["last_error"]
        jobs.request_refit(3)
        assert jobs.wait_idle(60)
        assert sqlite_store.get_project(3)["pid"] not in (os.getpid(), record["pid"])
    finally:
        jobs.close()


def test_thread_jobs_start_no_thread_before_the_first_request(tmp_path):
    """Constructing the queue starts nothing (gunicorn may fork after building the app)."""
    jobs = ThreadJobs(Settings(model_dir=tmp_path), store=None, trainer_factory=RecordingTrainer)
    assert jobs._thread is None and jobs.status()["refits_queued"] == 0


@pytest.mark.redis
def test_rq_jobs_coalesce_and_run_in_a_worker(redis_store):
    """Many refit requests enqueue one RQ job; a burst worker runs it and the embeds."""
    RecordingTrainer.instances.clear()
    jobs = RQJobs(redis_store.connection)
    assert [jobs.request_refit(4, sync=(i == 3)) for i in range(20)] == [True] + [False] * 19
    jobs.request_embed(4, [1, 2])
    jobs.request_embed(4, [2, 3])
    assert jobs.status()["queued"] == 2
    settings = Settings(redis_url="redis://unused")
    assert run_worker(settings, redis_store, burst=True, trainer_factory=RecordingTrainer)
    trainer = RecordingTrainer.instances[0]
    assert trainer.refits == [4] and trainer.syncs == [4]
    assert trainer.embeds == [(4, [1, 2, 3])]
    assert jobs.request_refit(4) is True  # the flag was cleared when the job started


@pytest.mark.redis
def test_rq_push_job_scheduled_by_an_older_version_still_runs(redis_store):
    """A push_job carrying a project id (as older versions scheduled it) runs the trainer's
    push job instead of failing."""
    from rq import Queue
    from rq.registry import FailedJobRegistry

    from backend.jobs._rq import QUEUE_NAME

    RecordingTrainer.instances.clear()
    queue = Queue(QUEUE_NAME, connection=redis_store.connection)
    queue.enqueue("backend.jobs._rq.push_job", 4)
    assert run_worker(Settings(redis_url="redis://unused"), redis_store, burst=True, trainer_factory=RecordingTrainer)
    assert RecordingTrainer.instances[0].push_runs == 1
    assert FailedJobRegistry(queue=queue).count == 0


class PushTrainer:
    """A trainer whose refits leave a version Label Studio missed, and whose first push fails."""

    pushes = []

    def __init__(self, settings, store):
        self.unpushed = {}

    def refit(self, project_id, sync=False):
        self.unpushed[project_id] = 0.2  # Label Studio was down: try again in 0.2 s

    def embed_tasks(self, project_id, task_ids):
        pass

    def retry_version_pushes(self):
        for project_id in list(self.unpushed):
            PushTrainer.pushes.append(project_id)
            if len(PushTrainer.pushes) == 1:
                raise RuntimeError("the store hiccuped")
            self.unpushed.pop(project_id, None)

    def next_push_in(self):
        return min(self.unpushed.values()) if self.unpushed else None


def test_thread_worker_keeps_retrying_a_push_after_a_failed_try(tmp_path):
    """The timed push retry survives a push job that fails: the worker tries again, and stops
    once Label Studio has the version (no refit or embed in between)."""
    PushTrainer.pushes.clear()
    jobs = ThreadJobs(Settings(model_dir=tmp_path), store=None, trainer_factory=PushTrainer)
    try:
        jobs.request_refit(7)
        wait_until(lambda: len(PushTrainer.pushes) >= 2, 10, "the retried push", interval=0.05)
        assert PushTrainer.pushes == [7, 7]
        assert jobs.wait_idle(5)
        status = jobs.status()
        assert status["version_push_in_s"] is None and status["failed"] == 1
        time.sleep(0.5)
        assert PushTrainer.pushes == [7, 7]  # no more tries once it worked
    finally:
        jobs.close()
