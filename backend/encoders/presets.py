"""Named encoders: the paper's frozen chest X-ray models and the ResNet-50 baseline.

A preset only names where the weights live (a spec string understood by
:func:`backend.encoders.parse_spec`); the architecture and the preprocessing come with the
weights when they are loaded.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    """One named encoder.

    Attributes
    ----------
    name : str
        What users type: ``--encoder xrayclip``.
    spec : str
        The full spec it stands for, e.g. ``"hf:StanfordAIMI/XrayCLIP__vit-b-16__laion2b-s34b-b88k"``.
    description : str
        Architecture, training data and which output is the embedding.
    input_size : int
        Side of the square image the model sees, in pixels.
    """

    name: str
    spec: str
    description: str
    input_size: int


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "xrayclip",
            "hf:StanfordAIMI/XrayCLIP__vit-b-16__laion2b-s34b-b88k",
            "XrayCLIP ViT-B/16 (CLIP, LAION-2B then chest X-rays); projected image embedding, 512-d",
            224,
        ),
        Preset(
            "xraysiglip",
            "hf:StanfordAIMI/XraySigLIP__vit-l-16-siglip-384__webli",
            "XraySigLIP ViT-L/16 (SigLIP, WebLI then chest X-rays); pooled (MAP head) output, 1024-d",
            384,
        ),
        Preset(
            "rad-dino",
            "hf:microsoft/rad-dino",
            "RAD-DINO ViT-B/14 (DINOv2 on chest X-rays); CLS token after the final norm, 768-d",
            518,
        ),
        Preset(
            "rad-dino-maira-2",
            "hf:microsoft/rad-dino-maira-2",
            "RAD-DINO-MAIRA-2 ViT-B/14 (DINOv2, MAIRA-2 training set); CLS token, 768-d",
            518,
        ),
        Preset(
            "resnet50",
            "torchvision:resnet50:IMAGENET1K_V2",
            "ResNet-50, torchvision ImageNet weights (the paper's baseline); pooled features, 2048-d",
            224,
        ),
    )
}

DEFAULT_ENCODER = "xrayclip"
"""The preset used when no ``--encoder`` is given."""
