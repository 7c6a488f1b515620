"""transformers checkpoints: CLIP, SigLIP and DINOv2 vision towers.

Which output is the embedding:

- CLIP (``model_type="clip"``): ``image_embeds``, the pooled CLS token after the visual
  projection — the vector CLIP compares with text (``CLIPModel.get_image_features``).
- CLIP vision tower saved alone (``"clip_vision_model"``): ``image_embeds`` when the folder
  holds the projection (``CLIPVisionModelWithProjection``), so it embeds exactly as the full
  model; ``pooler_output`` (the pooled CLS token) when it does not (``CLIPVisionModel``).
- SigLIP (``"siglip"``, or ``"siglip_vision_model"`` for ``SiglipVisionModel`` saved alone):
  ``pooler_output``, the attention-pooling (MAP) head output — what
  ``SiglipModel.get_image_features`` returns.
- DINOv2 (``"dinov2"``, ``"dinov2_with_registers"``; RAD-DINO): ``pooler_output``, the CLS
  token after the final layer norm, as the RAD-DINO model card uses it.

Only the vision tower is instantiated; text weights in a full CLIP/SigLIP checkpoint are
skipped, and a vision weight missing from the checkpoint is an error (never random init).
Preprocessing is read from the checkpoint's own ``preprocessor_config.json``.
:func:`resolve_hf_checkpoint` does every check that needs no model (files, config, weight
names); :func:`load_hf_encoder` builds on it.
"""

from __future__ import annotations

import json
import os
import pathlib
from dataclasses import dataclass

from backend.encoders.encoder import Encoder
from backend.encoders.preprocess import Preprocess
from backend.encoders.spec import EncoderSpec
from backend.encoders.weights import (
    HF_WEIGHT_FILES,
    checkpoint_keys,
    file_digest,
    hf_cache_dir,
    hf_weight_paths,
    missing_hf_weights,
)
from backend.exceptions import EncoderLoadError

_VISION_KEY = {
    "clip": "vision_model.embeddings.",
    "clip_vision_model": "vision_model.embeddings.",
    "siglip": "vision_model.embeddings.",
    "siglip_vision_model": "vision_model.embeddings.",
    "dinov2": "embeddings.patch_embeddings.",
    "dinov2_with_registers": "embeddings.patch_embeddings.",
}
"""Per supported model type, a fragment every checkpoint of it has in its vision weight names."""

SUPPORTED_MODEL_TYPES = tuple(_VISION_KEY)
"""``config.json`` model types this loader turns into an encoder."""

_CLIP_PROJECTION = "visual_projection.weight"

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


@dataclass(frozen=True)
class HFCheckpoint:
    """A transformers checkpoint found and checked, before any model is built.

    Attributes
    ----------
    folder : pathlib.Path
        The folder (or hub cache snapshot) holding it.
    model_type : str
        ``config.json``'s ``model_type``, one of :data:`SUPPORTED_MODEL_TYPES`.
    weights : tuple of str
        The weight files (an index first, then its shards).
    keys : frozenset of str
        Tensor names in the weight files.
    preprocess : Preprocess
        From ``preprocessor_config.json``.
    """

    folder: pathlib.Path
    model_type: str
    weights: tuple[str, ...]
    keys: frozenset[str]
    preprocess: Preprocess

    @property
    def has_projection(self) -> bool:
        """Whether the checkpoint holds CLIP's visual projection."""
        return _CLIP_PROJECTION in self.keys


def resolve_hf_checkpoint(spec: EncoderSpec, *, cache_dir: str | None, offline: bool) -> HFCheckpoint:
    """Find a transformers checkpoint and check it without building the model.

    Reads ``config.json``, ``preprocessor_config.json`` and the weight files' tensor names (a
    safetensors header; a torch file memory-mapped), never the tensors themselves. A hub repo
    id not in the cache is downloaded unless ``offline``.

    Parameters
    ----------
    spec : EncoderSpec
        ``family == "hf"``; ``name`` is a folder or a repo id.
    cache_dir : str or None
        Hugging Face hub cache (None: the default, ``HF_HUB_CACHE``).
    offline : bool
        Only look in the cache; never touch the network.

    Raises
    ------
    EncoderLoadError
        If the folder or repo lacks the files, the weights are not cached and cannot be
        downloaded, the model type is not supported or the weights are unreadable or hold no
        vision tower.
    """
    folder = _local_folder(spec, cache_dir, offline)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise EncoderLoadError(
            f"cannot load encoder {spec.text!r}: {folder} has no config.json; expected a folder "
            "written by transformers save_pretrained (config.json, preprocessor_config.json, "
            "model.safetensors)"
        )
    config = _read_config(spec, config_path)
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise EncoderLoadError(
            f"cannot load encoder {spec.text!r}: model_type {model_type!r} in {config_path} is "
            f"not supported; expected one of {SUPPORTED_MODEL_TYPES}"
        )
    if model_type == "siglip_vision_model" and config.get("vision_use_head") is False:
        raise EncoderLoadError(
            f"cannot load encoder {spec.text!r}: {config_path} has vision_use_head false, so the "
            "SigLIP tower has no pooling head and no image embedding; save the vision model "
            "with its head (SiglipVisionModel of a SiglipModel checkpoint)"
        )
    weights = hf_weight_paths(folder, HF_WEIGHT_FILES)
    if not weights:
        raise EncoderLoadError(
            f"cannot load encoder {spec.text!r}: no weights in {folder}; expected one of {', '.join(HF_WEIGHT_FILES)}"
        )
    keys = checkpoint_keys(weights, spec.text)
    if not any(_VISION_KEY[model_type] in key for key in keys):
        raise EncoderLoadError(
            f"cannot load encoder {spec.text!r}: the weights in {folder} hold no {model_type} "
            f"vision tower (no tensor named like {_VISION_KEY[model_type]}*); they belong to "
            "another model than config.json describes"
        )
    preprocess = _preprocess(spec, folder)
    return HFCheckpoint(folder, model_type, tuple(weights), keys, preprocess)


def load_hf_encoder(spec: EncoderSpec, *, cache_dir: str | None, offline: bool, **encoder_options) -> Encoder:
    """Load a transformers CLIP, SigLIP or DINOv2 checkpoint (full model or vision tower alone)
    from a folder or the hub cache.

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
        As :func:`resolve_hf_checkpoint`, or when transformers cannot build the vision model
        from the weights (a missing or mis-shaped tensor).
    """
    checkpoint = resolve_hf_checkpoint(spec, cache_dir=cache_dir, offline=offline)
    model, output, dim = _vision_model(spec, checkpoint)
    digest = file_digest(checkpoint.weights, extra=checkpoint.preprocess.fingerprint() + output)
    return Encoder(
        id=f"hf-{checkpoint.model_type}@{digest[:16]}",
        dim=dim,
        model=_features_module(model, output),
        preprocess=checkpoint.preprocess,
        description=spec.text,
        **encoder_options,
    )


def _read_config(spec: EncoderSpec, path: pathlib.Path) -> dict:
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EncoderLoadError(
            f"cannot load encoder {spec.text!r}: {path} is not readable JSON ({exc}); save the "
            "model again with save_pretrained"
        ) from None
    if not isinstance(config, dict):
        raise EncoderLoadError(f"cannot load encoder {spec.text!r}: {path} is not a JSON object")
    return config


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


def _vision_model(spec: EncoderSpec, checkpoint: HFCheckpoint):
    """(vision model, output attribute, embedding dim) in float32."""
    import torch
    import transformers

    folder = checkpoint.folder
    verbosity = transformers.logging.get_verbosity()
    progress = transformers.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()  # text-tower weights are skipped on purpose
    transformers.logging.disable_progress_bar()  # one bar per load is noise in CLI output
    try:
        config = transformers.AutoConfig.from_pretrained(folder)
        model_class, config, output, dim = _vision_class(checkpoint, config, transformers)
        model, info = model_class.from_pretrained(
            folder,
            config=config,
            dtype=torch.float32,
            output_loading_info=True,
            ignore_mismatched_sizes=True,  # reported below, naming the tensors
        )
    except Exception as exc:
        raise EncoderLoadError(
            f"cannot load encoder {spec.text!r}: transformers failed to load {folder}: "
            f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        ) from exc
    finally:
        transformers.logging.set_verbosity(verbosity)
        if progress:
            transformers.logging.enable_progress_bar()
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        raise EncoderLoadError(
            f"cannot load encoder {spec.text!r}: the weights in {folder} lack {len(missing)} "
            f"tensor(s) of the {model_class.__name__} that config.json describes, e.g. "
            f"{', '.join(missing[:3])}; save the model again with save_pretrained"
        )
    mismatched = sorted(info.get("mismatched_keys") or (), key=str)
    if mismatched:
        shapes = ", ".join(
            f"{name} (weights {list(saved)}, config {list(expected)})" for name, saved, expected in mismatched[:3]
        )
        raise EncoderLoadError(
            f"cannot load encoder {spec.text!r}: {len(mismatched)} tensor(s) in {folder} have "
            f"another shape than config.json describes: {shapes}; the config belongs to another "
            "model: save the model and its config again with save_pretrained"
        )
    return model, output, dim


def _vision_class(checkpoint: HFCheckpoint, config, transformers):
    """(model class, its config, output attribute, embedding dim) for a checkpoint."""
    model_type = checkpoint.model_type
    if model_type == "clip":
        vision = config.vision_config
        vision.projection_dim = config.projection_dim
        return (
            transformers.CLIPVisionModelWithProjection,
            vision,
            "image_embeds",
            int(config.projection_dim),
        )
    if model_type == "clip_vision_model" and checkpoint.has_projection:
        return (
            transformers.CLIPVisionModelWithProjection,
            config,
            "image_embeds",
            int(config.projection_dim),
        )
    if model_type == "clip_vision_model":
        return transformers.CLIPVisionModel, config, "pooler_output", int(config.hidden_size)
    if model_type == "siglip":
        vision = config.vision_config
        return transformers.SiglipVisionModel, vision, "pooler_output", int(vision.hidden_size)
    if model_type == "siglip_vision_model":
        return transformers.SiglipVisionModel, config, "pooler_output", int(config.hidden_size)
    return transformers.AutoModel, config, "pooler_output", int(config.hidden_size)


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
