"""Frozen image encoders: presets, spec parsing, loaders for transformers, open_clip and
torchvision, and the :class:`Encoder` that batches images onto a device.

Modules, each importing only the ones above it in this list:

- ``presets`` — named encoders (``xrayclip``, ``xraysiglip``, ``rad-dino``, ...);
- ``spec`` — parse a spec string into an :class:`EncoderSpec`;
- ``preprocess`` — resize/crop/normalise as the weights expect;
- ``weights`` — offline mode, cache folders, weight digests, helpful errors;
- ``device_decode`` — JPEG decoding on the encoder's device (nvJPEG on CUDA), which JPEGs
  it can take;
- ``encoder`` — the :class:`Encoder` (batches, device, autocast, decode overlap);
- ``hf``, ``openclip``, ``tvmodels`` — one loader per library;
- ``loader`` — :func:`load_encoder`, :func:`check_encoder`; ``lazy`` — :class:`LazyEncoder`.

Importing this package imports neither torch nor any model library, nor any of its modules
until one of its names is used.
"""

import importlib
from typing import Any

_EXPORTS = {
    "DEFAULT_ENCODER": "presets",
    "PRESETS": "presets",
    "Preset": "presets",
    "Encoder": "encoder",
    "l2_normalise": "encoder",
    "EncoderSpec": "spec",
    "parse_spec": "spec",
    "LazyEncoder": "lazy",
    "Preprocess": "preprocess",
    "check_encoder": "loader",
    "load_encoder": "loader",
}
"""Public name -> the module of this package that defines it. The modules load on first use, so
that reading a preset (the settings' default encoder) imports no loader or encoder code."""

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
