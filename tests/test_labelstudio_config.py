"""Tests of backend.labelstudio.config."""

import pathlib

import pytest

from backend.exceptions import LabelConfigError
from backend.labelstudio.config import BINARY, MULTILABEL, ONE_VS_REST, parse_label_config

PLUGIN_CONFIG = pathlib.Path(__file__).resolve().parents[1] / "plugin_config"


def test_one_finding_config():
    """The shipped one-finding config: binary, positive first, both display tags found."""
    config = parse_label_config((PLUGIN_CONFIG / "one_finding.xml").read_text())
    assert config.mode == BINARY
    assert config.findings == ("Effusion",) and config.negative == "No effusion"
    assert (config.image_name, config.image_key, config.choices_name) == ("image", "image", "finding")
    assert (config.forecast_name, config.labels_needed_name) == ("forecast", "labels_needed")
    assert config.targets(["Effusion"]) == {"Effusion": 1}
    assert config.targets(["No effusion"]) == {"Effusion": 0}


def test_several_findings_config():
    """The shipped several-findings config: one probe per finding."""
    config = parse_label_config((PLUGIN_CONFIG / "several_findings.xml").read_text())
    assert config.mode == MULTILABEL
    assert config.findings == ("Effusion", "Cardiomegaly", "Consolidation", "Pneumothorax")
    assert config.targets(["Cardiomegaly", "Effusion"]) == {
        "Effusion": 1,
        "Cardiomegaly": 1,
        "Consolidation": 0,
        "Pneumothorax": 0,
    }


def test_positive_can_be_chosen():
    """A configured positive value replaces the default first choice."""
    xml = (PLUGIN_CONFIG / "one_finding.xml").read_text()
    assert parse_label_config(xml, positive="No effusion").findings == ("No effusion",)
    with pytest.raises(LabelConfigError, match="'Nodule' is not in the config's choices"):
        parse_label_config(xml, positive="Nodule")


def test_more_than_two_single_choices_is_one_vs_rest():
    """Three single choices: one probe per value; no display tags."""
    config = parse_label_config(
        '<View><Image name="img" value="$url"/><Choices name="c" toName="img">'
        '<Choice value="A"/><Choice value="B"/><Choice value="C" alias="c"/></Choices></View>'
    )
    assert config.mode == ONE_VS_REST and config.findings == ("A", "B", "c")
    assert config.image_key == "url" and config.forecast_name is None


@pytest.mark.parametrize(
    "xml, fragment",
    [
        pytest.param("", "empty", id="empty"),
        pytest.param("<View><Image", "not valid XML", id="broken-xml"),
        pytest.param(
            '<View><Text name="t" value="$text"/><Choices name="c" toName="t">'
            '<Choice value="A"/><Choice value="B"/></Choices></View>',
            "no <Image",
            id="no-image",
        ),
        pytest.param('<View><Image name="i" value="$image"/></View>', "no <Choices", id="no-choices"),
        pytest.param(
            '<View><Image name="i" value="$image"/><Choices name="c" toName="i"><Choice value="A"/></Choices></View>',
            "at least two",
            id="one-choice",
        ),
    ],
)
def test_unusable_configs_explain_why(xml, fragment):
    """Configs LabelCast cannot use raise LabelConfigError with a reason."""
    with pytest.raises(LabelConfigError, match=fragment):
        parse_label_config(xml)
