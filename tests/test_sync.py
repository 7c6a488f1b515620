"""Tests of backend.sync: Label Studio's tasks and annotations into the store."""

from backend.labelstudio.config import parse_label_config
from backend.sync import sync_labels
from conftest import ONE_FINDING


class TasksClient:
    """Serves a fixed list of Label Studio tasks (as ``iter_tasks`` pages them)."""

    def __init__(self, tasks):
        self.tasks = tasks

    def iter_tasks(self, project_id):
        yield from self.tasks


def _annotation(annotation_id, choice, config, cancelled=False):
    result = [{"type": "choices", "from_name": config.choices_name, "to_name": "x", "value": {"choices": [choice]}}]
    return {"id": annotation_id, "result": result, "was_cancelled": cancelled, "updated_at": "2026-01-01T00:00:00Z"}


def test_sync_stores_tasks_and_labels_and_drops_stale_ones(sqlite_store):
    """Tasks with an image and annotations with a choice are stored; skips, tasks without an
    image and labels the store had but Label Studio no longer has are left out."""
    config = parse_label_config(ONE_FINDING)
    sqlite_store.put_label(1, annotation_id=99, task_id=9, choices=["Effusion"], image="http://x/9.png", updated_at=0)
    tasks = [
        {"id": 1, "data": {config.image_key: "http://x/1.png"}, "annotations": [_annotation(10, "Effusion", config)]},
        {
            "id": 2,
            "data": {config.image_key: "http://x/2.png"},
            "annotations": [_annotation(20, "No effusion", config, cancelled=True)],
        },
        {"id": 3, "data": {}, "annotations": [_annotation(30, "Effusion", config)]},
    ]
    assert sync_labels(sqlite_store, TasksClient(tasks), 1, config) == (2, 1)
    assert sqlite_store.get_labels(1) == {1: ["Effusion"]}
    assert {t: rec["image"] for t, rec in sqlite_store.get_tasks(1, [1, 2]).items()} == {
        1: "http://x/1.png",
        2: "http://x/2.png",
    }
