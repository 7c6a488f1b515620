"""Read a Label Studio labeling config: which image, which choices, which display tags.

Only the standard library's XML parser is used, so the web process stays light.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

from backend.exceptions import LabelConfigError

FORECAST_TAG_NAME = "forecast"
"""Name of the optional readonly ``<TextArea>`` that shows the forecast sentence."""

LABELS_NEEDED_TAG_NAME = "labels_needed"
"""Name of the optional readonly ``<Number>`` that shows how many more labels are needed."""

# How the choices of a config turn into probes.
BINARY = "binary"  # two single choices: one probe for the positive value
MULTILABEL = "multilabel"  # choice="multiple": one probe per value
ONE_VS_REST = "one_vs_rest"  # more than two single choices: one probe per value


@dataclasses.dataclass(frozen=True)
class LabelingConfig:
    """What LabelCast needs from a labeling config.

    Attributes
    ----------
    image_name : str
        ``name`` of the ``<Image>`` tag (the ``to_name`` of every result).
    image_key : str
        Key of the image URL in a task's ``data`` (``value="$image"`` gives ``"image"``).
    choices_name : str
        ``name`` of the ``<Choices>`` tag (the ``from_name`` of the choices result).
    values : tuple of str
        Choice values in config order (the ``alias`` when a choice has one).
    mode : str
        ``"binary"``, ``"multilabel"`` or ``"one_vs_rest"``.
    findings : tuple of str
        One entry per probe: the positive value for binary, every value otherwise.
    forecast_name, labels_needed_name : str or None
        Names of the display tags, None when the config lacks them.
    """

    image_name: str
    image_key: str
    choices_name: str
    values: tuple[str, ...]
    mode: str
    findings: tuple[str, ...]
    forecast_name: str | None = None
    labels_needed_name: str | None = None

    def targets(self, choices: list[str]) -> dict[str, int]:
        """0/1 label of every finding for one annotation's chosen values."""
        chosen = set(choices)
        return {finding: int(finding in chosen) for finding in self.findings}

    @property
    def negative(self) -> str | None:
        """The other value of a binary config, None otherwise."""
        if self.mode != BINARY:
            return None
        return next(v for v in self.values if v != self.findings[0])


def parse_label_config(xml: str, positive: str | None = None) -> LabelingConfig:
    """Parse ``xml`` (a labeling config) into a :class:`LabelingConfig`.

    Parameters
    ----------
    xml : str
        The project's ``label_config``.
    positive : str, optional
        Positive value of a binary config; default the first choice.

    Raises
    ------
    LabelConfigError
        If the XML is malformed, has no ``<Image>`` or no ``<Choices>`` with two or more
        values, or ``positive`` is not one of the choices.
    """
    if not isinstance(xml, str) or not xml.strip():
        raise LabelConfigError("the labeling config is empty; LabelCast needs an <Image> and a <Choices> tag")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise LabelConfigError(f"the labeling config is not valid XML: {exc}") from exc

    images = [el for el in root.iter() if el.tag == "Image" and el.get("name")]
    if not images:
        raise LabelConfigError(
            'the labeling config has no <Image name=".." value="$image"/> tag; LabelCast classifies images'
        )
    image_names = {el.get("name") for el in images}
    all_choices = [el for el in root.iter() if el.tag == "Choices" and el.get("name")]
    choices = [el for el in all_choices if el.get("toName") in image_names] or all_choices
    if not choices:
        raise LabelConfigError(
            'the labeling config has no <Choices name=".." toName=".."> tag; LabelCast learns from image-level choices'
        )
    choices_el = choices[0]
    image_el = next((el for el in images if el.get("name") == choices_el.get("toName")), images[0])
    image_key = (image_el.get("value") or "").lstrip("$")
    if not image_key:
        raise LabelConfigError(
            f'the <Image name="{image_el.get("name")}"> tag needs value="$<data key>", e.g. value="$image"'
        )

    named = (el.get("alias") or el.get("value") for el in choices_el.iter("Choice"))
    values = tuple(value for value in named if value)
    if len(values) < 2 and choices_el.get("choice") != "multiple":
        raise LabelConfigError(
            f'<Choices name="{choices_el.get("name")}"> needs at least two <Choice> values, got {list(values)}'
        )
    if not values:
        raise LabelConfigError(f'<Choices name="{choices_el.get("name")}"> has no <Choice> values')

    if choices_el.get("choice") == "multiple":
        mode, findings = MULTILABEL, values
    elif len(values) == 2:
        if positive is not None and positive not in values:
            raise LabelConfigError(f"positive choice {positive!r} is not in the config's choices {list(values)}")
        mode, findings = BINARY, (positive or values[0],)
    else:
        mode, findings = ONE_VS_REST, values

    return LabelingConfig(
        image_name=image_el.attrib["name"],  # `images` and `choices` hold only named tags
        image_key=image_key,
        choices_name=choices_el.attrib["name"],
        values=values,
        mode=mode,
        findings=tuple(findings),
        forecast_name=_display_tag(root, "TextArea", FORECAST_TAG_NAME),
        labels_needed_name=_display_tag(root, "Number", LABELS_NEEDED_TAG_NAME),
    )


def _display_tag(root: ET.Element, tag: str, name: str) -> str | None:
    return next((name for el in root.iter(tag) if el.get("name") == name), None)
