"""Tests of backend.labelstudio.protocol."""

import math
import pathlib

import pytest

from backend.exceptions import RequestError
from backend.labelstudio import protocol
from backend.labelstudio.config import parse_label_config

PLUGIN_CONFIG = pathlib.Path(__file__).resolve().parents[1] / "plugin_config"
ONE = parse_label_config((PLUGIN_CONFIG / "one_finding.xml").read_text())
SEVERAL = parse_label_config((PLUGIN_CONFIG / "several_findings.xml").read_text())


def _annotation_payload(action="ANNOTATION_CREATED", cancelled=False):
    return {
        "action": action,
        "project": {"id": 3, "label_config": "<View/>"},
        "task": {"id": 11, "data": {"image": "http://x/1.png"}, "project": 3},
        "annotation": {
            "id": 21,
            "task": 11,
            "was_cancelled": cancelled,
            "updated_at": "2026-01-01T10:00:00Z",
            "result": [
                {"from_name": "finding", "to_name": "image", "type": "choices", "value": {"choices": ["Effusion"]}}
            ],
        },
    }


def test_parse_annotation_event():
    """An annotation webhook yields project, task, annotation id and result."""
    event = protocol.parse_webhook(_annotation_payload())
    assert (event.action, event.project_id, event.label_config) == ("ANNOTATION_CREATED", 3, "<View/>")
    assert event.annotation["id"] == 21 and event.task == {"id": 11, "data": {"image": "http://x/1.png"}}
    assert protocol.annotation_choices(event.annotation["result"], ONE) == ["Effusion"]
    assert protocol.annotation_choices([], ONE) is None


def test_parse_deleted_and_created():
    """ANNOTATIONS_DELETED gives the ids; TASKS_CREATED gives the tasks."""
    deleted = protocol.parse_webhook(
        {"action": "ANNOTATIONS_DELETED", "project": {"id": 2}, "annotations": [{"id": 5}, {"id": 6}]}
    )
    assert deleted.deleted_annotation_ids == (5, 6)
    created = protocol.parse_webhook(
        {"action": "TASKS_CREATED", "project": {"id": 2}, "tasks": [{"id": 1, "data": {"image": "a"}}]}
    )
    assert created.tasks == ({"id": 1, "data": {"image": "a"}},)


@pytest.mark.parametrize(
    "payload, fragment",
    [
        pytest.param([], "JSON object", id="not-object"),
        pytest.param({}, "no 'action'", id="no-action"),
        pytest.param({"action": "ANNOTATION_CREATED", "project": {"id": 1}}, "'annotation' and 'task'", id="no-task"),
        pytest.param(
            {"action": "ANNOTATION_CREATED", "annotation": {"id": "x"}, "task": {"id": 1}},
            "annotation.id must be an integer",
            id="bad-id",
        ),
    ],
)
def test_malformed_webhooks(payload, fragment):
    """Malformed webhook bodies raise RequestError with the reason."""
    with pytest.raises(RequestError, match=fragment):
        protocol.parse_webhook(payload)


def test_binary_prediction_has_choice_score_text_and_number():
    """A binary prediction: chosen value with its probability, forecast text, labels needed."""
    prediction = protocol.build_prediction(ONE, "labelcast-x-n40", {"Effusion": 0.2}, "About 80 more labels.", 79.2)
    assert prediction["model_version"] == "labelcast-x-n40"
    assert prediction["score"] == pytest.approx(0.8)
    choices, text, number = prediction["result"]
    assert choices["value"] == {"choices": ["No effusion"]} and choices["type"] == "choices"
    assert text == {
        "from_name": "forecast",
        "to_name": "image",
        "type": "textarea",
        "value": {"text": ["About 80 more labels."]},
    }
    assert number["value"] == {"number": 80} and number["type"] == "number"


def test_collecting_prediction_has_only_the_message():
    """Without a probe: no choices and no score, only the message (and the number when known)."""
    prediction = protocol.build_prediction(ONE, "v", None, "Collecting: 12 more.", None)
    assert "score" not in prediction
    assert [r["type"] for r in prediction["result"]] == ["textarea"]
    assert protocol.build_prediction(ONE, "v", None, "m", math.inf)["result"][-1]["type"] == "textarea"


def test_multilabel_prediction_scores_the_least_certain_finding():
    """Several findings: every finding over 0.5 is chosen; score is the lowest confidence."""
    probabilities = {"Effusion": 0.9, "Cardiomegaly": 0.6, "Consolidation": 0.1, "Pneumothorax": 0.3}
    prediction = protocol.build_prediction(SEVERAL, "v", probabilities, None, None)
    assert prediction["result"][0]["value"]["choices"] == ["Effusion", "Cardiomegaly"]
    assert prediction["score"] == pytest.approx(0.6)


@pytest.mark.parametrize(
    "spec, slug",
    [
        pytest.param("StanfordAIMI/XrayCLIP__vit-b-16__laion2b-s34b-b88k", "xrayclip", id="hf-repo"),
        pytest.param("xrayclip", "xrayclip", id="preset"),
        pytest.param("/tmp/models/Tiny CLIP/", "tiny-clip", id="folder"),
        pytest.param("hf-hub:microsoft/rad-dino", "rad-dino", id="hf-hub"),
    ],
)
def test_model_version_names(spec, slug):
    """Model versions read labelcast-<encoder>-n<labels>, with a revision when refit again."""
    assert protocol.model_version(spec, 212) == f"labelcast-{slug}-n212"
    assert protocol.model_version(spec, 212, revision=3) == f"labelcast-{slug}-n212.r3"


def test_project_id_forms():
    """Project ids arrive as ints, strings, or '<id>.<timestamp>' strings from /predict."""
    assert protocol.parse_project_id(7) == protocol.parse_project_id("7") == protocol.parse_project_id("7.1700000") == 7
    with pytest.raises(RequestError):
        protocol.parse_project_id(None)


def test_multilabel_prediction_with_some_probes_missing():
    """Findings without a probe are neither chosen nor part of the score."""
    prediction = protocol.build_prediction(SEVERAL, "v", {"Effusion": 0.2, "Cardiomegaly": 0.7}, None, None)
    assert prediction["result"][0]["value"]["choices"] == ["Cardiomegaly"]
    assert prediction["score"] == pytest.approx(0.7)
