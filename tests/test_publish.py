"""Tests of backend.publish: the retry policy and the push deadlines kept in the store."""

import sqlite3
import time
from types import SimpleNamespace

import pytest

from backend.exceptions import LabelStudioError
from backend.publish import PUSH_RETRY_S, SETUP_REPUSH_S, Publisher, Retry


class DownThenUpClient:
    """A Label Studio that is unreachable until ``up`` is set; records the versions it got."""

    url, api_key = "http://ls", "k"

    def __init__(self):
        self.up, self.versions = False, []

    def set_model_version(self, project_id, version, status=None, basic_auth=None):
        if not self.up:
            raise LabelStudioError("Label Studio is unreachable")
        self.versions.append((project_id, version, status))
        return 1


SETTINGS = SimpleNamespace(basic_auth_user=None, basic_auth_pass=None)


def _saved_version(store, project_id):
    store.put_project(project_id, {"label_config": "<View/>"})
    store.put_result(project_id, {"version": "v-n3", "probes": {}}, {"version": "v-n3", "message": "hi"}, {})


@pytest.mark.parametrize(
    "exc, expected",
    [
        pytest.param(LabelStudioError("down"), True, id="label-studio-unreachable"),
        pytest.param(sqlite3.OperationalError("disk I/O error"), True, id="store-unreachable"),
        pytest.param(TypeError("unexpected answer"), False, id="bug"),
    ],
)
def test_retry_covers_only_expected_errors(exc, expected):
    """Label Studio or the store away is retried; a TypeError is a bug, not a retry."""
    assert Retry().covers(exc) is expected


def test_retry_interval_is_checked_and_added():
    """The next try is interval_s later; a negative interval is refused with its value."""
    assert Retry(interval_s=5).next_try(100.0) == 105.0 and Retry().interval_s == PUSH_RETRY_S
    with pytest.raises(ValueError, match="-1"):
        Retry(interval_s=-1)


def test_a_missed_push_is_kept_in_the_store_for_another_publisher(sqlite_store):
    """Label Studio down: the deadline goes to the store, so a publisher of another process
    (a new training process) pushes the version once it is due, and clears the deadline."""
    _saved_version(sqlite_store, 1)
    client = DownThenUpClient()
    first = Publisher(SETTINGS, sqlite_store, lambda project: client, Retry(interval_s=60))
    first.push(1)
    assert 55 < sqlite_store.get_push_due()[1] - time.time() <= 60
    assert 55 < first.next_push_in() <= 60
    client.up = True
    second = Publisher(SETTINGS, sqlite_store, lambda project: client, Retry(interval_s=60))
    second.push_due()
    assert client.versions == []  # not due yet
    sqlite_store.set_push_due(1, time.time() - 1)
    second.push_due()
    assert client.versions == [(1, "v-n3", "hi")]
    assert sqlite_store.get_push_due() == {} and second.next_push_in() is None


def test_next_push_in_with_the_store_away_looks_again_after_the_interval(sqlite_store, monkeypatch):
    """The store unreachable while asking for deadlines: the queue is told to ask again after
    the retry interval, not to stop pushing."""

    def unreachable():
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(sqlite_store, "get_push_due", unreachable)
    assert Publisher(SETTINGS, sqlite_store, lambda project: None, Retry(interval_s=7)).next_push_in() == 7


def test_jobs_side_by_side_push_a_missed_version_once(sqlite_store):
    """Two jobs start at once while a version is due (lanes of the embedded worker): one
    pushes it, the other goes on without waiting or pushing it again."""
    import threading

    _saved_version(sqlite_store, 1)
    sqlite_store.set_push_due(1, time.time() - 1)
    entered, release = threading.Event(), threading.Event()

    class SlowClient(DownThenUpClient):
        def set_model_version(self, project_id, version, status=None, basic_auth=None):
            entered.set()
            release.wait(10)
            return super().set_model_version(project_id, version, status, basic_auth)

    client = SlowClient()
    client.up = True
    publisher = Publisher(SETTINGS, sqlite_store, lambda project: client)
    first = threading.Thread(target=publisher.push_due)
    first.start()
    assert entered.wait(10)
    started = time.monotonic()
    publisher.push_due()  # the second job: returns at once
    assert time.monotonic() - started < 1.0
    release.set()
    first.join(10)
    assert client.versions == [(1, "v-n3", "hi")]


def test_a_late_push_of_an_older_version_never_lands_after_a_newer_one(sqlite_store):
    """A due push reads version n3 and Label Studio is slow to answer; meanwhile a refit saves
    n4 and tells it. Label Studio must end on n4 (pushes of one project take turns)."""
    import threading

    class SlowFirstClient:
        """Label Studio answering the first call only when ``release`` is set (a test double:
        the interleaving of two pushes cannot be arranged with a real server)."""

        url, api_key = "http://ls", "k"

        def __init__(self):
            self.release, self.entered, self.versions, self.calls = threading.Event(), threading.Event(), [], 0

        def set_model_version(self, project_id, version, status=None, basic_auth=None):
            self.calls += 1
            if self.calls == 1:
                self.entered.set()
                assert self.release.wait(10)
            self.versions.append(version)
            return 1

    _saved_version(sqlite_store, 1)
    client = SlowFirstClient()
    publisher = Publisher(SETTINGS, sqlite_store, lambda project: client)
    late = threading.Thread(target=publisher.push, args=(1,))
    late.start()
    assert client.entered.wait(10)
    sqlite_store.put_result(1, {"version": "v-n4", "probes": {}}, {"version": "v-n4", "message": "new"}, {})
    newer = threading.Thread(target=publisher.tell, args=(1, sqlite_store.get_project(1), "v-n4", "new"))
    newer.start()
    time.sleep(0.3)  # the newer push has had time to overtake, were it allowed to
    client.release.set()
    late.join(10)
    newer.join(10)
    assert not late.is_alive() and not newer.is_alive()
    assert client.versions == ["v-n3", "v-n4"]  # both answered (the slow one was released in time)


def test_push_again_in_tells_the_same_version_once_more(sqlite_store):
    """After a push Label Studio took, push_again_in keeps a deadline (never later than one
    already due) and, when it comes, the same version and message are told again."""
    _saved_version(sqlite_store, 1)
    client = DownThenUpClient()
    client.up = True
    publisher = Publisher(SETTINGS, sqlite_store, lambda project: client, Retry(interval_s=60))
    publisher.push(1)
    assert sqlite_store.get_push_due() == {}
    publisher.push_again_in(1, SETUP_REPUSH_S)
    assert 0 < sqlite_store.get_push_due()[1] - time.time() <= SETUP_REPUSH_S
    publisher.push_again_in(1, 600)  # a later repeat does not postpone the one due
    assert sqlite_store.get_push_due()[1] - time.time() <= SETUP_REPUSH_S
    sqlite_store.set_push_due(1, time.time() - 1)
    publisher.push_due()
    assert client.versions == [(1, "v-n3", "hi"), (1, "v-n3", "hi")]
    assert sqlite_store.get_push_due() == {}
