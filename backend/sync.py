"""Label sync: every task and annotation of a project, from Label Studio into the store.

Label Studio is the source of truth: a sync catches annotations that arrived without a webhook
(imported with the tasks, or made while the backend was down).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from backend.labelstudio.config import LabelingConfig
from backend.labelstudio.protocol import annotation_choices, parse_time

log = logging.getLogger(__name__)


def sync_labels(store, client, project_id: int, config: LabelingConfig) -> tuple[int, int]:
    """Re-read every task and annotation of a project from Label Studio into ``store``.

    Parameters
    ----------
    store : backend.store.Store
    client : backend.labelstudio.client.LabelStudioClient
        The project's Label Studio client (``iter_tasks``).
    project_id : int
    config : backend.labelstudio.config.LabelingConfig
        The project's parsed labeling config (which data key holds the image, which choices
        are labels).

    Returns
    -------
    (n_tasks, n_labels) : tuple of int
        Tasks with an image, and annotations with a usable label (skips left out).
    """
    started = time.time()
    images: dict[int, str] = {}
    labels: dict[int, tuple[int, Any, float | None]] = {}
    for task in client.iter_tasks(project_id):
        ref = (task.get("data") or {}).get(config.image_key)
        if not isinstance(ref, str) or not ref:
            continue
        images[int(task["id"])] = ref
        for annotation in task.get("annotations") or []:
            if annotation.get("was_cancelled"):
                continue
            choices = annotation_choices(annotation.get("result"), config)
            if choices is not None:
                labels[int(annotation["id"])] = (int(task["id"]), choices, parse_time(annotation.get("updated_at")))
    store.put_tasks(project_id, images)
    store.replace_labels(project_id, labels, older_than=started)
    log.info(
        "project %s: synced %d tasks, %d labels from Label Studio in %.2f s",
        project_id,
        len(images),
        len(labels),
        time.time() - started,
    )
    return len(images), len(labels)
