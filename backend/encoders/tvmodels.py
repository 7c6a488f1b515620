"""torchvision classification models (ResNet-50 baseline, MobileNet, ConvNeXt, ViT, ...).

The embedding is the input of the final linear classifier (``fc``, ``classifier``, ``head``
or ``heads``): global-pooled features, e.g. 2,048-d for ResNet-50. Preprocessing is the
weights' own ``transforms()`` (resize, centre crop, ImageNet mean/std); a weights file whose
name matches a torchvision release uses that release's transforms, any other file the
architecture's default ones.

Weights: ``torchvision:<arch>`` or ``torchvision:<arch>:<ENUM>`` (``DEFAULT``, ``IMAGENET1K_V2``,
...) look in ``<cache_dir or $TORCH_HOME/hub>/checkpoints/`` and download there only when not
offline; ``torchvision:<arch>:<file>`` loads a state dict file.
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backend.encoders.encoder import Encoder
from backend.encoders.preprocess import Preprocess
from backend.encoders.spec import EncoderSpec
from backend.encoders.weights import checkpoint_keys, file_digest, missing_file
from backend.exceptions import EncoderLoadError

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum

CLASSIFIER_ATTRIBUTES = ("fc", "classifier", "heads", "head")
"""Where torchvision models keep their final classifier, checked in this order."""

WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
"""A weights part ending like this is a file name, never an enum name."""


def load_torchvision_encoder(spec: EncoderSpec, *, cache_dir: str | None, offline: bool, **encoder_options) -> Encoder:
    """Load a torchvision model with its classifier removed.

    Parameters
    ----------
    spec : EncoderSpec
        ``family == "torchvision"``; ``name`` an architecture (``resnet50``), ``weights`` None,
        a weights enum name or a state-dict file.
    cache_dir : str or None
        Folder of checkpoint files (None: ``torch.hub.get_dir()/checkpoints``).
    offline : bool
        Never download.
    **encoder_options
        Passed to :class:`Encoder`.

    Raises
    ------
    EncoderLoadError
        Unknown architecture or weights name, missing file, or a state dict that does not fit.
    """
    import torch
    import torchvision

    checkpoint = resolve_torchvision_checkpoint(spec, cache_dir=cache_dir, offline=offline)
    model = torchvision.models.get_model_builder(spec.name)(weights=None)
    _load_state_dict(spec, model, checkpoint.path, torch)
    dim = _strip_classifier(spec, model, torch)
    preprocess = Preprocess.from_torchvision(checkpoint.release.transforms())
    digest = file_digest([checkpoint.path], extra=preprocess.fingerprint() + spec.name)
    return Encoder(
        id=f"torchvision-{spec.name}@{digest[:16]}",
        dim=dim,
        model=model,
        preprocess=preprocess,
        description=spec.text,
        **encoder_options,
    )


@dataclass(frozen=True)
class TorchvisionCheckpoint:
    """A torchvision weights file found and its tensor names read, before any model is built.

    Attributes
    ----------
    path : str
        The state-dict file.
    release : torchvision.models.WeightsEnum
        The release whose preprocessing applies (the file's own, else the default one).
    """

    path: str
    release: WeightsEnum


def resolve_torchvision_checkpoint(spec: EncoderSpec, *, cache_dir: str | None, offline: bool) -> TorchvisionCheckpoint:
    """Find a torchvision architecture's weights file and read its tensor names (no tensors).

    A release not in the checkpoint folder is downloaded unless ``offline``.

    Raises
    ------
    EncoderLoadError
        Unknown architecture or weights name, missing or unreadable file.
    """
    import torchvision

    try:
        torchvision.models.get_model_builder(spec.name)
        weights_enum = torchvision.models.get_model_weights(spec.name)
    except (ValueError, KeyError):
        raise EncoderLoadError(
            f"cannot load encoder {spec.text!r}: torchvision has no classification model "
            f"{spec.name!r}; expected one of torchvision.models.list_models(), e.g. resnet50"
        ) from None
    if spec.weights and (
        os.path.isfile(spec.weights) or os.sep in spec.weights or spec.weights.endswith(WEIGHT_SUFFIXES)
    ):
        path = spec.weights
        if not os.path.isfile(path):
            raise missing_file(spec.text, "weights file", path, None, offline)
        release = _release_for_file(weights_enum, path) or weights_enum.DEFAULT
    else:
        release = _release(spec, weights_enum)
        path = _release_file(spec, release, cache_dir, offline)
    checkpoint_keys([path], spec.text)
    return TorchvisionCheckpoint(path, release)


def _release(spec: EncoderSpec, weights_enum):
    name = spec.weights or "DEFAULT"
    try:
        return weights_enum[name]
    except KeyError:
        raise EncoderLoadError(
            f"cannot load encoder {spec.text!r}: {name!r} is neither a file nor a weights name of "
            f"{spec.name}; expected a state-dict file or one of "
            f"{', '.join(['DEFAULT'] + [w.name for w in weights_enum])}"
        ) from None


def _release_for_file(weights_enum, path: str):
    """The torchvision release whose download has this file name, if any."""
    name = os.path.basename(path)
    return next((w for w in weights_enum if os.path.basename(w.url) == name), None)


def _release_file(spec: EncoderSpec, release, cache_dir: str | None, offline: bool) -> str:
    import torch

    folder = pathlib.Path(cache_dir) if cache_dir else pathlib.Path(torch.hub.get_dir()) / "checkpoints"
    target = folder / os.path.basename(release.url)
    if target.is_file():
        return str(target)
    if offline:
        raise missing_file(spec.text, f"torchvision weights {target.name}", str(target), release.url, offline)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(release.url, str(target), progress=False)
    except Exception as exc:
        raise missing_file(
            spec.text,
            f"torchvision weights {target.name}",
            str(target),
            release.url,
            offline,
            str(exc),
        ) from None
    return str(target)


def _load_state_dict(spec: EncoderSpec, model, path: str, torch) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise EncoderLoadError(
            f"cannot load encoder {spec.text!r}: {path} is not a readable torch state dict: "
            f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        ) from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise EncoderLoadError(
            f"cannot load encoder {spec.text!r}: {path} holds {type(state).__name__}; expected a state dict"
        )
    state = {k.removeprefix("module."): v for k, v in state.items()}
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise EncoderLoadError(
            f"cannot load encoder {spec.text!r}: {path} does not fit {spec.name} "
            f"({len(result.missing_keys)} missing keys, e.g. {result.missing_keys[:3]}; "
            f"{len(result.unexpected_keys)} unexpected, e.g. {result.unexpected_keys[:3]})"
        )


def _strip_classifier(spec: EncoderSpec, model, torch) -> int:
    """Replace the last Linear of the classifier by Identity; return its input size."""
    for attribute in CLASSIFIER_ATTRIBUTES:
        head = getattr(model, attribute, None)
        if isinstance(head, torch.nn.Linear):
            setattr(model, attribute, torch.nn.Identity())
            return int(head.in_features)
        if isinstance(head, torch.nn.Sequential):
            linear = [i for i, layer in enumerate(head) if isinstance(layer, torch.nn.Linear)]
            if linear:
                dim = int(head[linear[-1]].in_features)
                head[linear[-1]] = torch.nn.Identity()
                return dim
    raise EncoderLoadError(
        f"cannot load encoder {spec.text!r}: no linear classifier found in {spec.name} "
        f"(looked at {', '.join(CLASSIFIER_ATTRIBUTES)})"
    )
