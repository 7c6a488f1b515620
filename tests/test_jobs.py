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


class GatedTrainer:
    """Refits wait for their project's gate; records what ran at once."""

    gates: dict = {}
    lock = threading.Lock()
    running: list = []
    most_at_once = 0
    overlapped_itself = False
    done: list = []

    def __init__(self, settings, store):
        pass

    @classmethod
    def reset(cls, closed=()):
        cls.gates = {p: threading.Event() for p in range(1, 10)}
        for project_id, gate in cls.gates.items():
            if project_id not in closed:
                gate.set()
        cls.running, cls.done, cls.most_at_once, cls.overlapped_itself = [], [], 0, False

    def refit(self, project_id, sync=False):
        cls = GatedTrainer
        with cls.lock:
            cls.overlapped_itself |= project_id in cls.running
            cls.running.append(project_id)
            cls.most_at_once = max(cls.most_at_once, len(cls.running))
        cls.gates[project_id].wait(10)
        with cls.lock:
            cls.running.remove(project_id)
            cls.done.append(project_id)

    def embed_tasks(self, project_id, task_ids):
        self.refit(project_id)

    def retry_version_pushes(self):
        pass

    def next_push_in(self):
        return None


def test_thread_jobs_run_projects_side_by_side_one_job_each(tmp_path):
    """Project 1's refit is stuck: project 2's runs and ends meanwhile; a second refit of
    project 1 waits for the first; with 2 lanes, project 3 takes the other lane and project 4
    waits for one. Nothing of one project ever runs twice at once."""
    GatedTrainer.reset(closed=(1, 3))
    jobs = ThreadJobs(Settings(model_dir=tmp_path), store=None, trainer_factory=GatedTrainer, lanes=2)
    try:
        jobs.request_refit(1)
        wait_until(lambda: GatedTrainer.running == [1], 10, "project 1's refit")
        jobs.request_refit(2)
        wait_until(lambda: GatedTrainer.done == [2], 10, "project 2's refit, beside project 1's")
        assert jobs.request_refit(1) is True  # queued behind the running one, not beside it
        jobs.request_embed(1, [7])  # nor an embed of it
        jobs.request_refit(3)
        jobs.request_refit(4)
        wait_until(lambda: sorted(GatedTrainer.running) == [1, 3], 10, "projects 1 and 3 in the two lanes")
        time.sleep(0.3)
        status = jobs.status()
        assert status["running"] == "refit:1, refit:3" and status["refits_queued"] == 2, status
        assert GatedTrainer.done == [2]  # project 4 waits for a lane
        GatedTrainer.gates[3].set()
        wait_until(lambda: 4 in GatedTrainer.done, 10, "project 4 in the freed lane")
        GatedTrainer.gates[1].set()
        assert jobs.wait_idle(10)
        assert sorted(GatedTrainer.done) == [1, 1, 1, 2, 3, 4]  # refit, embed, refit of project 1
        assert GatedTrainer.most_at_once == 2 and not GatedTrainer.overlapped_itself
    finally:
        for gate in GatedTrainer.gates.values():
            gate.set()
        jobs.close()


def test_thread_jobs_refuse_no_lanes(tmp_path):
    """lanes=0 is a ValueError naming it."""
    with pytest.raises(ValueError, match="lanes=0"):
        ThreadJobs(Settings(model_dir=tmp_path), store=None, lanes=0)


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
def test_rq_refit_of_a_project_refitting_elsewhere_does_not_hold_its_worker(redis_store):
    """Two workers, one project: while one refits it, the other's refit job for it returns
    within a second (it would otherwise wait for the lock, held behind a slow project, instead
    of taking other projects' jobs), having requested the refit again; that refit runs once
    the first is done."""
    import contextvars

    from backend.jobs._rq import _trainer, refit_job

    RecordingTrainer.instances.clear()
    connection = redis_store.connection
    busy, other = RecordingTrainer(None, redis_store), RecordingTrainer(None, redis_store)
    busy.release.clear()  # its refit blocks until released

    def in_worker(trainer, project_id):
        context = contextvars.copy_context()
        context.run(_trainer.set, trainer)
        context.run(refit_job, project_id)

    first = threading.Thread(target=in_worker, args=(busy, 5), daemon=True)
    first.start()
    assert busy.entered.wait(10)
    started = time.monotonic()
    second = threading.Thread(target=in_worker, args=(other, 5), daemon=True)
    second.start()
    second.join(5)
    assert not second.is_alive() and time.monotonic() - started < 3  # did not wait for the lock
    jobs = RQJobs(connection)
    assert other.refits == [] and jobs.status()["queued"] == 1  # the refit, requested again
    assert jobs.request_refit(5) is False  # coalesced with it
    busy.release.set()
    first.join(10)
    assert busy.refits == [5]
    assert run_worker(Settings(redis_url="redis://unused"), redis_store, burst=True, trainer_factory=RecordingTrainer)
    assert RecordingTrainer.instances[-1].refits == [5]


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
