"""Frozen image encoders: presets, spec parsing, loaders for transformers, open_clip and
torchvision, and the :class:`Encoder` that batches images onto a device.

Modules, each importing only the ones above it in this list:

- ``presets`` — named encoders (``xrayclip``, ``xraysiglip``, ``rad-dino``, ...);
- ``spec`` — parse a spec string into an :class:`EncoderSpec`;
- ``preprocess`` — resize/crop/normalise as the weights expect;
- ``weights`` — offline mode, cache folders, weight digests, helpful errors;
- ``encoder`` — the :class:`Encoder` (batches, device, autocast, decode overlap);
- ``hf``, ``openclip``, ``tvmodels`` — one loader per library;
- ``loader`` — :func:`load_encoder`, :func:`check_encoder`; ``lazy`` — :class:`LazyEncoder`.

Importing this package imports neither torch nor any model library.
"""

from backend.encoders.encoder import Encoder, l2_normalise
from backend.encoders.lazy import LazyEncoder
from backend.encoders.loader import check_encoder, load_encoder
from backend.encoders.preprocess import Preprocess
from backend.encoders.presets import DEFAULT_ENCODER, PRESETS, Preset
from backend.encoders.spec import EncoderSpec, parse_spec

__all__ = [
    "DEFAULT_ENCODER",
    "PRESETS",
    "Encoder",
    "EncoderSpec",
    "LazyEncoder",
    "Preprocess",
    "Preset",
    "check_encoder",
    "l2_normalise",
    "load_encoder",
    "parse_spec",
]
