"""Encoder spec strings: one small parser that turns what a user typed into an EncoderSpec.

Accepted forms (first match wins):

- a preset name from :data:`backend.encoders.presets.PRESETS` (``xrayclip``, ``resnet50``, ...);
- ``hf:<repo id or folder>``: a transformers CLIP, SigLIP or DINOv2 checkpoint (the whole
  model or its vision tower saved alone);
- ``open_clip:<model name>[:<pretrained tag or checkpoint file>]``,
  ``open_clip:hf-hub:<repo id>`` and ``open_clip:local-dir:<folder>``;
- ``torchvision:<architecture>[:<weights enum name or file>]``;
- a plain folder path: a transformers folder (``config.json``) or an open_clip folder
  (``open_clip_config.json``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from backend.encoders.presets import PRESETS
from backend.exceptions import EncoderLoadError

FAMILIES = ("hf", "open_clip", "torchvision")
"""Model libraries an encoder can come from."""

_OPEN_CLIP_SCHEMAS = ("hf-hub:", "local-dir:")

SPEC_HELP = (
    "a preset (" + ", ".join(PRESETS) + "), hf:<repo id or folder>, a folder path, "
    "open_clip:<model>[:<pretrained tag or file>], open_clip:hf-hub:<repo id>, "
    "or torchvision:<architecture>[:<weights file or enum name>]"
)


@dataclass(frozen=True)
class EncoderSpec:
    """A parsed encoder spec.

    Attributes
    ----------
    family : {"hf", "open_clip", "torchvision"}
        The library that builds the model.
    name : str
        Hugging Face repo id or folder; open_clip model name (possibly with an ``hf-hub:`` or
        ``local-dir:`` schema); or torchvision architecture name.
    weights : str or None
        open_clip pretrained tag or checkpoint file; torchvision weights enum name or file.
    text : str
        The spec as the user wrote it (used in error messages).
    """

    family: str
    name: str
    weights: str | None
    text: str


def parse_spec(spec: str) -> EncoderSpec:
    """Parse an encoder spec string (see the module docstring for the forms).

    Parameters
    ----------
    spec : str
        What the user typed, e.g. ``"xrayclip"`` or ``"open_clip:ViT-B-16:laion2b_s34b_b88k"``.

    Returns
    -------
    EncoderSpec

    Raises
    ------
    EncoderLoadError
        If ``spec`` matches none of the accepted forms.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise EncoderLoadError(f"encoder spec {spec!r} is empty; expected {SPEC_HELP}")
    text = spec.strip()
    preset = PRESETS.get(text.lower())
    if preset is not None:
        expanded = _parse_prefixed(preset.spec, text)
        if expanded is None:  # every preset names its family (tests/test_encoders_spec.py)
            raise EncoderLoadError(f"preset {text!r} stands for {preset.spec!r}, which has no family prefix")
        return expanded
    parsed = _parse_prefixed(text, text)
    if parsed is not None:
        return parsed
    if os.path.isdir(text):
        if os.path.isfile(os.path.join(text, "open_clip_config.json")) and not os.path.isfile(
            os.path.join(text, "config.json")
        ):
            return EncoderSpec("open_clip", "local-dir:" + text, None, text)
        return EncoderSpec("hf", text, None, text)
    raise EncoderLoadError(
        f"unknown encoder spec {text!r}: not a preset, a known prefix or an existing folder; expected {SPEC_HELP}"
    )


def _parse_prefixed(spec: str, text: str) -> EncoderSpec | None:
    family, sep, rest = spec.partition(":")
    if not sep or family not in FAMILIES:
        return None
    if not rest:
        raise EncoderLoadError(f"encoder spec {text!r} names no model after {family + ':'!r}")
    if family == "hf":
        return EncoderSpec("hf", rest, None, text)
    if family == "open_clip" and rest.startswith(_OPEN_CLIP_SCHEMAS):
        return EncoderSpec("open_clip", rest, None, text)
    name, _, weights = rest.partition(":")
    return EncoderSpec(family, name, weights or None, text)
