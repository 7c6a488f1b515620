"""transformers checkpoints: CLIP, SigLIP and DINOv2 vision towers.

Which output is the embedding:

- CLIP (``model_type="clip"``): ``image_embeds``, the pooled CLS token after the visual
  projection — the vector CLIP compares with text (``CLIPModel.get_image_features``).
- SigLIP (``"siglip"``): ``pooler_output``, the attention-pooling (MAP) head output —
  what ``SiglipModel.get_image_features`` returns.
- DINOv2 (``"dinov2"``, ``"dinov2_with_registers"``; RAD-DINO): ``pooler_output``, the CLS
  token after the final layer norm, as the RAD-DINO model card uses it.

Only the vision tower is instantiated; text weights in a full CLIP/SigLIP checkpoint are
skipped. Preprocessing is read from the checkpoint's own ``preprocessor_config.json``.
"""

from __future__ import annotations

import json
import os
import pathlib

from backend.encoders.encoder import Encoder
from backend.encoders.preprocess import Preprocess
from backend.encoders.spec import EncoderSpec
from backend.encoders.weights import (
    HF_WEIGHT_FILES,
    file_digest,
    hf_cache_dir,
    hf_weight_paths,
    missing_hf_weights,
)
from backend.exceptions import EncoderLoadError

SUPPORTED_MODEL_TYPES = ("clip", "siglip", "dinov2", "dinov2_with_registers")
"""``config.json`` model types this loader turns into an encoder."""

_PATTERNS = (
    [
        "config.json",
        "preprocessor_config.json",
        "open_clip_config.json",
        "model.safetensors",
        "model.safetensors.index.json",
        "model-*.safetensors",
    ],
    [
        "config.json",
        "preprocessor_config.json",
        "pytorch_model.bin",
        "pytorch_model.bin.index.json",
        "pytorch_model-*.bin",
    ],
)


def load_hf_encoder(
    spec: EncoderSpec, *, cache_dir: str | None, offline: bool, **encoder_options
) -> Encoder:
    """Load a transformers CLIP, SigLIP or DINOv2 checkpoint from a folder or the hub cache.

    Parameters
    ----------
    spec : EncoderSpec
        ``family == "hf"``; ``name`` is a folder or a repo id.
    cache_dir : str or None
        Hugging Face hub cache (None: the default, ``HF_HUB_CACHE``).
    offline : bool
        Only look in the cache; never touch the network.
    **encoder_options
        Passed to :class:`Encoder` (``device``, ``batch_size``, ...).

    Raises
    ------
    EncoderLoadError
        If the folder or repo lacks the files, the weights are not cached and cannot be
        downloaded, or the model type is not supported.
    """
    folder = _local_folder(spec, cache_dir, offline)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise EncoderLoadError(
            f"cannot load encoder {spec.text!r}: {folder} has no config.json; expected a folder "
            "written by transformers save_pretrained (config.json, preprocessor_config.json, "
            "model.safetensors)"
        )
    model_type = json.loads(config_path.read_text()).get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise EncoderLoadError(
            f"cannot load encoder {spec.text!r}: model_type {model_type!r} in {config_path} is "
            f"not supported; expected one of {SUPPORTED_MODEL_TYPES}"
        )
    weights = hf_weight_paths(folder, HF_WEIGHT_FILES)
    if not weights:
        raise EncoderLoadError(
            f"cannot load encoder {spec.text!r}: no weights in {folder}; expected one of "
            f"{', '.join(HF_WEIGHT_FILES)}"
        )
    preprocess = _preprocess(spec, folder)
    model, output, dim = _vision_model(spec, folder, model_type)
    digest = file_digest(weights, extra=preprocess.fingerprint() + output)
    return Encoder(
        id=f"hf-{model_type}@{digest[:16]}",
        dim=dim,
        model=_features_module(model, output),
        preprocess=preprocess,
        description=spec.text,
        **encoder_options,
    )


def _local_folder(spec: EncoderSpec, cache_dir: str | None, offline: bool) -> pathlib.Path:
    """The folder holding the checkpoint: the spec's folder, or the repo's hub cache snapshot."""
    if os.path.isdir(spec.name):
        return pathlib.Path(spec.name)
    if spec.name.startswith(("/", ".", "~")) or spec.name.count("/") > 1:
        raise EncoderLoadError(
            f"cannot load encoder {spec.text!r}: folder {spec.name} does not exist; expected a "
            "folder written by save_pretrained or a Hugging Face repo id such as org/name"
        )
    from huggingface_hub import snapshot_download

    last_error: Exception | None = None
    for patterns in _PATTERNS:
        try:
            folder = pathlib.Path(
                snapshot_download(
                    spec.name,
                    allow_patterns=patterns,
                    cache_dir=cache_dir,
                    local_files_only=offline,
                )
            )
        except Exception as exc:  # hub client errors: offline, not cached, no network, no repo
            last_error = exc
            continue
        if hf_weight_paths(folder):
            return folder
        if (folder / "open_clip_config.json").is_file() and not (folder / "config.json").is_file():
            raise EncoderLoadError(
                f"cannot load encoder {spec.text!r}: {spec.name} is an open_clip checkpoint, not a "
                f"transformers one; use the spec open_clip:hf-hub:{spec.name}"
            )
    raise missing_hf_weights(
        spec.text, spec.name, hf_cache_dir(cache_dir), offline, str(last_error or "no weight files")
    )


def _preprocess(spec: EncoderSpec, folder: pathlib.Path) -> Preprocess:
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        raise EncoderLoadError(
            f"cannot load encoder {spec.text!r}: {path} is missing; the checkpoint must carry its "
            "image-processor config (save the processor with save_pretrained next to the model)"
        )
    try:
        return Preprocess.from_hf_config(json.loads(path.read_text()))
    except (ValueError, TypeError, KeyError) as exc:
        raise EncoderLoadError(f"cannot load encoder {spec.text!r}: {path}: {exc}") from None


def _vision_model(spec: EncoderSpec, folder: pathlib.Path, model_type: str):
    """(vision model, output attribute, embedding dim) in float32."""
    import torch
    import transformers

    verbosity = transformers.logging.get_verbosity()
    progress = transformers.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()  # text-tower weights are skipped on purpose
    transformers.logging.disable_progress_bar()  # one bar per load is noise in CLI output
    try:
        config = transformers.AutoConfig.from_pretrained(folder)
        kwargs = dict(dtype=torch.float32)
        if model_type == "clip":
            vision = config.vision_config
            vision.projection_dim = config.projection_dim
            model = transformers.CLIPVisionModelWithProjection.from_pretrained(
                folder, config=vision, **kwargs
            )
            return model, "image_embeds", int(config.projection_dim)
        if model_type == "siglip":
            vision = config.vision_config
            model = transformers.SiglipVisionModel.from_pretrained(folder, config=vision, **kwargs)
            return model, "pooler_output", int(vision.hidden_size)
        model = transformers.AutoModel.from_pretrained(folder, **kwargs)
        return model, "pooler_output", int(config.hidden_size)
    except EncoderLoadError:
        raise
    except Exception as exc:
        raise EncoderLoadError(
            f"cannot load encoder {spec.text!r}: transformers failed to load {folder}: "
            f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        ) from exc
    finally:
        transformers.logging.set_verbosity(verbosity)
        if progress:
            transformers.logging.enable_progress_bar()


def _features_module(model, output: str):
    """A module mapping pixels (N, 3, S, S) to ``getattr(model(pixel_values=...), output)``."""
    import torch

    class ImageFeatures(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, pixel_values):
            return getattr(self.model(pixel_values=pixel_values), output)

    return ImageFeatures()
