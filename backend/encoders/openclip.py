"""open_clip models: a built-in name with a pretrained tag or checkpoint file, an ``hf-hub:``
repo (e.g. BiomedCLIP) or a ``local-dir:`` folder.

The embedding is ``model.visual(pixels)``, i.e. ``CLIP.encode_image`` without normalisation
(the encoder normalises). Preprocessing comes from open_clip: the pretrained tag's
``preprocess_cfg`` or the folder's ``open_clip_config.json``. Hub files are resolved here with
``local_files_only`` in offline mode, so open_clip itself never reaches for the network then.

A checkpoint may hold the whole CLIP model, or the image tower alone: a state dict whose keys
all start with ``visual.`` (``{"visual." + k: v for k, v in model.visual.state_dict()}``), or
the tower's own keys (``model.visual.state_dict()``). A tower alone is loaded, strictly, into
``model.visual``; the text tower then keeps its random initial weights and is never used.
:func:`resolve_open_clip_checkpoint` does every check that needs no model.
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass

from backend.encoders.encoder import Encoder
from backend.encoders.preprocess import Preprocess
from backend.encoders.spec import EncoderSpec
from backend.encoders.weights import (
    OPEN_CLIP_WEIGHT_FILES,
    checkpoint_keys,
    file_digest,
    hf_cache_dir,
    hf_weight_paths,
    missing_file,
    missing_hf_weights,
)
from backend.exceptions import EncoderLoadError

_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")


_BIG_VISION_SUFFIXES = (".npz", ".npy")
"""big_vision (SigLIP) numpy checkpoints: whole models, converted by open_clip itself."""


@dataclass(frozen=True)
class OpenClipCheckpoint:
    """An open_clip model name and checkpoint found and checked, before any model is built.

    Attributes
    ----------
    model_name : str
        What ``open_clip.create_model`` gets: a built-in name or ``local-dir:<folder>``.
    path : str
        The checkpoint file.
    layout : {"model", "visual", "tower"}
        The whole model (or a format open_clip converts); the image tower with every key under
        ``visual.``; or keys none of which start with ``visual.``: the tower's own state dict,
        unless its names match nothing of the tower (then open_clip converts it as a model).
    force_preprocess : dict or None
        Preprocessing of a pretrained tag, overriding the architecture's defaults.
    """

    model_name: str
    path: str
    layout: str
    force_preprocess: dict | None


def resolve_open_clip_checkpoint(spec: EncoderSpec, *, cache_dir: str | None, offline: bool) -> OpenClipCheckpoint:
    """Find an open_clip model's config and checkpoint and read the checkpoint's tensor names.

    Reads no tensor (a safetensors header; a torch file memory-mapped). A pretrained tag or
    ``hf-hub:`` repo not on disk is downloaded unless ``offline``.

    Raises
    ------
    EncoderLoadError
        Unknown model or tag, a folder without ``open_clip_config.json`` (with ``model_cfg``) or
        weights, missing or unreadable weights.
    """
    import open_clip

    force_preprocess = None
    if spec.name.startswith(("hf-hub:", "local-dir:")):
        if spec.name.startswith("hf-hub:"):
            folder = _hub_folder(spec, spec.name[len("hf-hub:") :], cache_dir, offline)
        else:
            folder = pathlib.Path(spec.name[len("local-dir:") :])
        _check_folder_config(spec, folder)
        weights = hf_weight_paths(folder, OPEN_CLIP_WEIGHT_FILES)
        if not weights:
            raise EncoderLoadError(
                f"cannot load encoder {spec.text!r}: no weights in {folder}; expected one of "
                f"{', '.join(OPEN_CLIP_WEIGHT_FILES)}"
            )
        model_name, path = "local-dir:" + str(folder), weights[0]
    else:
        model_name = spec.name
        if model_name not in open_clip.list_models():
            raise EncoderLoadError(
                f"cannot load encoder {spec.text!r}: open_clip has no model {model_name!r}; "
                f"expected one of open_clip.list_models(), e.g. ViT-B-16, ViT-L-14, RN50"
            )
        path, force_preprocess = _named_checkpoint(spec, open_clip, cache_dir, offline)
    layout = "model"
    if not path.endswith(_BIG_VISION_SUFFIXES):
        keys = checkpoint_keys([path], spec.text)
        prefixed = sum(key.startswith("visual.") for key in keys)
        layout = "visual" if prefixed == len(keys) else "tower" if prefixed == 0 else "model"
    return OpenClipCheckpoint(model_name, path, layout, force_preprocess)


def load_open_clip_encoder(spec: EncoderSpec, *, cache_dir: str | None, offline: bool, **encoder_options) -> Encoder:
    """Load an open_clip image tower, from a whole-model checkpoint or the tower's alone.

    Parameters
    ----------
    spec : EncoderSpec
        ``family == "open_clip"``; ``name`` is a built-in model name (then ``weights`` is a
        pretrained tag or a checkpoint file) or ``hf-hub:<repo>`` / ``local-dir:<folder>``.
    cache_dir : str or None
        Hugging Face hub cache, also used for URL downloads (None: the defaults).
    offline : bool
        Only use files already on disk.
    **encoder_options
        Passed to :class:`Encoder`.

    Raises
    ------
    EncoderLoadError
        As :func:`resolve_open_clip_checkpoint`, or weights that do not fit the model.
    """
    import open_clip

    checkpoint = resolve_open_clip_checkpoint(spec, cache_dir=cache_dir, offline=offline)
    try:
        model = open_clip.create_model(
            checkpoint.model_name,
            device="cpu",
            load_weights=False,  # loaded below: whole model or image tower alone
            pretrained_text=False,  # never fetch a text tower's base weights
            force_preprocess_cfg=checkpoint.force_preprocess,
        )
    except Exception as exc:
        raise EncoderLoadError(
            f"cannot load encoder {spec.text!r}: open_clip failed to build "
            f"{checkpoint.model_name}: {type(exc).__name__}: {_short(exc)}"
        ) from exc
    _load_weights(spec, open_clip, model, checkpoint)
    preprocess = Preprocess.from_open_clip(open_clip.get_model_preprocess_cfg(model))
    visual = model.visual
    dim = _output_dim(visual, preprocess)
    label = spec.name if not spec.name.startswith(("hf-hub:", "local-dir:")) else "custom"
    digest = file_digest([checkpoint.path], extra=preprocess.fingerprint() + label)
    return Encoder(
        id=f"open_clip-{label}@{digest[:16]}",
        dim=dim,
        model=visual,
        preprocess=preprocess,
        description=spec.text,
        **encoder_options,
    )


def _check_folder_config(spec: EncoderSpec, folder: pathlib.Path) -> None:
    import json

    path = folder / "open_clip_config.json"
    expected = (
        "expected an open_clip folder (open_clip_config.json with model_cfg and "
        "preprocess_cfg, plus open_clip_model.safetensors or open_clip_pytorch_model.bin)"
    )
    if not path.is_file():
        raise EncoderLoadError(f"cannot load encoder {spec.text!r}: {path} not found; {expected}")
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EncoderLoadError(
            f"cannot load encoder {spec.text!r}: {path} is not readable JSON ({exc}); {expected}"
        ) from None
    if not isinstance(config, dict) or not isinstance(config.get("model_cfg"), dict):
        raise EncoderLoadError(f"cannot load encoder {spec.text!r}: {path} has no model_cfg; {expected}")


def _load_weights(spec: EncoderSpec, open_clip, model, checkpoint: OpenClipCheckpoint) -> None:
    """Load the checkpoint into the whole model, or into ``model.visual`` when it holds only that."""
    try:
        state = None
        if checkpoint.layout != "model":
            state = open_clip.factory.load_state_dict(checkpoint.path)
            if checkpoint.layout == "tower" and not set(state) & set(model.visual.state_dict()):
                state = None  # not the tower's names: a third-party model format
        if state is None:
            open_clip.load_checkpoint(model, checkpoint.path, strict=True)
            return
        state = {"visual." + key.removeprefix("visual."): value for key, value in state.items()}
        open_clip.model.resize_pos_embed(state, model)  # a checkpoint of another input size
    except Exception as exc:  # open_clip's own errors: unreadable file, keys or shapes that differ
        raise EncoderLoadError(
            f"cannot load encoder {spec.text!r}: {checkpoint.path} does not fit "
            f"{checkpoint.model_name}: {type(exc).__name__}: {_short(exc)}"
        ) from exc
    state = {key.removeprefix("visual."): value for key, value in state.items()}
    try:
        result = model.visual.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes that differ
        raise EncoderLoadError(
            f"cannot load encoder {spec.text!r}: the image tower in {checkpoint.path} does not "
            f"fit {checkpoint.model_name}: {_short(exc)}"
        ) from None
    if result.missing_keys or result.unexpected_keys:
        raise EncoderLoadError(
            f"cannot load encoder {spec.text!r}: the image tower in {checkpoint.path} does not "
            f"fit {checkpoint.model_name} ({len(result.missing_keys)} missing keys, e.g. "
            f"{result.missing_keys[:3]}; {len(result.unexpected_keys)} unexpected, e.g. "
            f"{result.unexpected_keys[:3]})"
        )


def _named_checkpoint(spec: EncoderSpec, open_clip, cache_dir, offline) -> tuple[str, dict | None]:
    """(checkpoint file, preprocessing overrides) for a built-in model name."""
    tag = spec.weights
    if not tag:
        tags = open_clip.list_pretrained_tags_by_model(spec.name)
        raise EncoderLoadError(
            f"encoder spec {spec.text!r} names no weights; expected "
            f"open_clip:{spec.name}:<tag or checkpoint file>, tags: {', '.join(tags) or 'none'}"
        )
    if os.path.isfile(tag):
        return tag, None
    config = open_clip.get_pretrained_cfg(spec.name, tag)
    if not config:
        tags = open_clip.list_pretrained_tags_by_model(spec.name)
        raise EncoderLoadError(
            f"cannot load encoder {spec.text!r}: {tag!r} is neither a file nor a pretrained tag of "
            f"{spec.name}; expected a checkpoint path or one of: {', '.join(tags) or 'none'}"
        )
    overrides = {key: config[key] for key in _PREPROCESS_KEYS if key in config} or None
    if config.get("hf_hub"):
        hub = config["hf_hub"]  # "org/repo/" (default file name) or "org/repo/file.bin"
        repo, filename = (hub.rstrip("/"), None) if hub.endswith("/") else os.path.split(hub)
        return _hub_file(spec, repo, filename, cache_dir, offline), overrides
    url = config.get("url", "")
    root = pathlib.Path(cache_dir or os.path.expanduser("~/.cache/clip"))
    target = root / os.path.basename(url)
    if target.is_file():
        return str(target), overrides
    if offline:
        raise missing_file(spec.text, f"open_clip weights {target.name}", str(target), url, offline)
    from open_clip.pretrained import download_pretrained_from_url

    try:
        return download_pretrained_from_url(url, cache_dir=str(root)), overrides
    except Exception as exc:
        raise missing_file(spec.text, f"open_clip weights {target.name}", str(target), url, offline, str(exc)) from None


def _hub_file(spec, repo: str, filename: str | None, cache_dir, offline) -> str:
    from huggingface_hub import hf_hub_download

    names = [filename] if filename else list(OPEN_CLIP_WEIGHT_FILES[:3])
    last = None
    for name in names:
        try:
            return hf_hub_download(repo, name, cache_dir=cache_dir, local_files_only=offline)
        except Exception as exc:  # not cached / not on the hub / no network
            last = exc
    raise missing_hf_weights(spec.text, repo, hf_cache_dir(cache_dir), offline, str(last))


def _hub_folder(spec, repo: str, cache_dir, offline) -> pathlib.Path:
    from huggingface_hub import snapshot_download

    last = None
    for patterns in (
        ["open_clip_config.json", "open_clip_model.safetensors"],
        ["open_clip_config.json", "open_clip_pytorch_model.bin"],
    ):
        try:
            folder = pathlib.Path(
                snapshot_download(repo, allow_patterns=patterns, cache_dir=cache_dir, local_files_only=offline)
            )
        except Exception as exc:
            last = exc
            continue
        if (folder / "open_clip_config.json").is_file() and hf_weight_paths(folder, OPEN_CLIP_WEIGHT_FILES):
            return folder
    raise missing_hf_weights(spec.text, repo, hf_cache_dir(cache_dir), offline, str(last or "no open_clip files"))


def _output_dim(visual, preprocess: Preprocess) -> int:
    dim = getattr(visual, "output_dim", None)
    if isinstance(dim, int) and dim > 0:
        return dim
    import torch

    side = preprocess.output_size
    with torch.inference_mode():
        return int(visual(torch.zeros(1, 3, side, side)).reshape(1, -1).shape[1])


def _short(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "no detail"
