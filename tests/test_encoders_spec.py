"""Tests of backend.encoders.spec and presets: every spec form parses to the right loader."""

from __future__ import annotations

import pytest

from backend.encoders import DEFAULT_ENCODER, PRESETS, EncoderSpec, parse_spec
from backend.exceptions import EncoderLoadError


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param(
            "xrayclip",
            ("hf", "StanfordAIMI/XrayCLIP__vit-b-16__laion2b-s34b-b88k", None),
            id="preset",
        ),
        pytest.param(
            "XraySigLIP",
            ("hf", "StanfordAIMI/XraySigLIP__vit-l-16-siglip-384__webli", None),
            id="preset-case",
        ),
        pytest.param("rad-dino", ("hf", "microsoft/rad-dino", None), id="rad-dino"),
        pytest.param("rad-dino-maira-2", ("hf", "microsoft/rad-dino-maira-2", None), id="maira"),
        pytest.param("resnet50", ("torchvision", "resnet50", "IMAGENET1K_V2"), id="resnet50"),
        pytest.param("hf:org/model", ("hf", "org/model", None), id="hf-repo"),
        pytest.param("hf:/models/x", ("hf", "/models/x", None), id="hf-folder"),
        pytest.param(
            "open_clip:ViT-B-16:laion2b_s34b_b88k",
            ("open_clip", "ViT-B-16", "laion2b_s34b_b88k"),
            id="oc-tag",
        ),
        pytest.param("open_clip:ViT-B-16:/w/ckpt.pt", ("open_clip", "ViT-B-16", "/w/ckpt.pt"), id="oc-file"),
        pytest.param("open_clip:ViT-B-16", ("open_clip", "ViT-B-16", None), id="oc-bare"),
        pytest.param(
            "open_clip:hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
            ("open_clip", "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224", None),
            id="oc-hub",
        ),
        pytest.param("open_clip:local-dir:/m/oc", ("open_clip", "local-dir:/m/oc", None), id="oc-local"),
        pytest.param("torchvision:resnet50", ("torchvision", "resnet50", None), id="tv"),
        pytest.param(
            "torchvision:resnet50:/w/r50.pth",
            ("torchvision", "resnet50", "/w/r50.pth"),
            id="tv-file",
        ),
    ],
)
def test_spec_forms(text, expected):
    """Each documented spec form parses into (family, name, weights)."""
    spec = parse_spec(text)
    assert isinstance(spec, EncoderSpec)
    assert (spec.family, spec.name, spec.weights) == expected
    assert spec.text == text


def test_plain_folders_are_detected(tmp_path):
    """A folder with config.json is hf; one with only open_clip_config.json is open_clip."""
    hf, oc = tmp_path / "hf", tmp_path / "oc"
    hf.mkdir()
    oc.mkdir()
    (hf / "config.json").write_text("{}")
    (oc / "open_clip_config.json").write_text("{}")
    assert (parse_spec(str(hf)).family, parse_spec(str(hf)).name) == ("hf", str(hf))
    assert (parse_spec(str(oc)).family, parse_spec(str(oc)).name) == (
        "open_clip",
        f"local-dir:{oc}",
    )


@pytest.mark.parametrize(
    "text, fragment",
    [
        pytest.param("", "empty", id="empty"),
        pytest.param("clip-b16", "unknown encoder spec 'clip-b16'", id="unknown"),
        pytest.param("hf:", "names no model", id="hf-empty"),
        pytest.param("torchvision:", "names no model", id="tv-empty"),
    ],
)
def test_bad_specs_list_the_accepted_forms(text, fragment):
    """Bad specs raise EncoderLoadError naming the value (and the presets when unknown)."""
    with pytest.raises(EncoderLoadError, match=fragment) as info:
        parse_spec(text)
    if "unknown" in fragment:
        assert "xrayclip" in str(info.value) and "open_clip:" in str(info.value)


def test_presets_are_the_papers_encoders():
    """The five presets exist, xrayclip is the default, and every preset spec parses."""
    assert set(PRESETS) == {"xrayclip", "xraysiglip", "rad-dino", "rad-dino-maira-2", "resnet50"}
    assert DEFAULT_ENCODER == "xrayclip"
    for preset in PRESETS.values():
        assert parse_spec(preset.spec).family in ("hf", "torchvision")
        assert preset.input_size in (224, 384, 518)
