"""Image preprocessing that travels with the weights: resize, crop, rescale, normalise.

One :class:`Preprocess` describes what a checkpoint expects; it is built from the
checkpoint's own configuration (a transformers ``preprocessor_config.json``, an open_clip
``preprocess_cfg``, a torchvision weights ``transforms()``) and applied either to PIL images on
the CPU (:meth:`Preprocess.batch`) or to decoded ``uint8`` tensors already on the GPU
(:meth:`Preprocess.tensor_batch`, the nvJPEG path). Grayscale images stay single-channel until
the last step, where the channel is repeated three times.

No torch import happens at module import time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from backend.images import to_l_or_rgb

RESIZE_MODES = ("shortest", "exact", "longest")
"""``shortest``: shortest side to ``size`` keeping the aspect ratio (then usually a centre
crop); ``exact``: squash to ``size`` × ``size``; ``longest``: longest side to ``size``, then
pad to a square with ``fill``."""

_PIL_NAMES = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
_PIL_CODES = {name: code for code, name in _PIL_NAMES.items()}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """What a checkpoint expects its input pixels to look like.

    Attributes
    ----------
    size : int
        Target of the resize, in pixels (meaning depends on ``resize_mode``).
    resize_mode : {"shortest", "exact", "longest"}
        See :data:`RESIZE_MODES`.
    crop : int or None
        Side of the centre crop after resizing, or None for no crop.
    interpolation : str
        ``"bicubic"``, ``"bilinear"``, ``"nearest"``, ``"lanczos"``, ``"box"`` or ``"hamming"``.
    mean, std : tuple of 3 floats
        Per-channel normalisation applied after scaling pixels to [0, 1].
    rescale : float
        Factor from ``uint8`` values to [0, 1], normally 1/255.
    fill : int
        Padding value for ``resize_mode="longest"``.
    """

    size: int
    resize_mode: str = "shortest"
    crop: int | None = None
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    rescale: float = 1.0 / 255.0
    fill: int = 0

    def __post_init__(self):
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode={self.resize_mode!r}; expected one of {RESIZE_MODES}")
        if self.interpolation not in _PIL_CODES:
            raise ValueError(f"interpolation={self.interpolation!r}; expected one of {sorted(_PIL_CODES)}")
        if int(self.size) < 1 or (self.crop is not None and int(self.crop) < 1):
            raise ValueError(f"size={self.size!r}, crop={self.crop!r}; expected positive integers")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean={self.mean!r}, std={self.std!r}; expected 3 values each, std > 0")

    # --- constructors from each library's configuration ------------------------------------

    @classmethod
    def from_hf_config(cls, config: dict) -> Preprocess:
        """Build from a transformers ``preprocessor_config.json`` mapping.

        Reads ``do_resize``/``size`` (``shortest_edge``, ``height``/``width`` or a legacy
        int), ``resample``, ``do_center_crop``/``crop_size``, ``rescale_factor`` and
        ``image_mean``/``image_std``.
        """
        do_crop = bool(config.get("do_center_crop", False))
        crop = _side(config.get("crop_size")) if do_crop else None
        size_cfg = config.get("size")
        if not config.get("do_resize", True) or size_cfg is None:
            raise ValueError(
                f"preprocessor config without a resize (do_resize={config.get('do_resize')!r}, "
                f"size={size_cfg!r}); expected a fixed input size"
            )
        if isinstance(size_cfg, dict) and "shortest_edge" in size_cfg:
            size, mode = int(size_cfg["shortest_edge"]), "shortest"
        elif isinstance(size_cfg, dict) and "height" in size_cfg:
            size, mode = _side(size_cfg), "exact"
        elif isinstance(size_cfg, (int, float)):
            size, mode = int(size_cfg), ("shortest" if do_crop else "exact")
        else:
            raise ValueError(f"preprocessor size {size_cfg!r}; expected shortest_edge or height/width")
        mean = _three(config.get("image_mean", IMAGENET_MEAN))
        std = _three(config.get("image_std", IMAGENET_STD))
        if not config.get("do_normalize", True):
            mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        rescale = float(config.get("rescale_factor", 1 / 255)) if config.get("do_rescale", True) else 1.0
        resample = config.get("resample", 3)
        interpolation = _PIL_NAMES.get(int(resample), "bicubic") if resample is not None else "bicubic"
        return cls(size, mode, crop, interpolation, mean, std, rescale)

    @classmethod
    def from_open_clip(cls, config: dict) -> Preprocess:
        """Build from an open_clip ``preprocess_cfg`` (``size``, ``mean``, ``std``,
        ``interpolation``, ``resize_mode`` in ``shortest``/``longest``/``squash``, ``fill_color``)."""
        size = _side(config.get("size", 224))
        mode = {"shortest": "shortest", "squash": "exact", "longest": "longest"}.get(
            config.get("resize_mode", "shortest")
        )
        if mode is None:
            raise ValueError(f"open_clip resize_mode {config.get('resize_mode')!r} is not supported")
        return cls(
            size,
            mode,
            size if mode == "shortest" else None,
            str(config.get("interpolation", "bicubic")),
            _three(config.get("mean", (0.48145466, 0.4578275, 0.40821073))),
            _three(config.get("std", (0.26862954, 0.26130258, 0.27577711))),
            1.0 / 255.0,
            int(config.get("fill_color", 0)),
        )

    @classmethod
    def from_torchvision(cls, transforms) -> Preprocess:
        """Build from a torchvision ``ImageClassification`` preset (``weights.transforms()``)."""
        return cls(
            _side(transforms.resize_size),
            "shortest",
            _side(transforms.crop_size),
            str(transforms.interpolation.value),
            _three(transforms.mean),
            _three(transforms.std),
        )

    # --- facts --------------------------------------------------------------------------------

    @property
    def output_size(self) -> int:
        """Side of the square tensor the model receives, in pixels."""
        return int(self.crop) if self.crop is not None else int(self.size)

    @property
    def min_decode_size(self) -> int:
        """The smallest image side that still resizes without upsampling (for JPEG draft mode)."""
        return int(self.size)

    def fingerprint(self) -> str:
        """A canonical JSON string of every field (part of the encoder id)."""
        return json.dumps(asdict(self), sort_keys=True)

    # --- CPU path: PIL images ------------------------------------------------------------------

    def resized_shape(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) after the resize step, before any crop or pad."""
        if self.resize_mode == "exact":
            return int(self.size), int(self.size)
        if self.resize_mode == "shortest":
            short, long = (width, height) if width <= height else (height, width)
            new_long = int(self.size * long / short)
            return (self.size, new_long) if width <= height else (new_long, self.size)
        scale = self.size / max(width, height)
        return max(1, round(width * scale)), max(1, round(height * scale))

    def image(self, image: Image.Image) -> np.ndarray:
        """Preprocess one PIL image.

        Parameters
        ----------
        image : PIL.Image.Image
            Mode ``"L"`` or ``"RGB"``; other modes go through
            :func:`backend.images.to_l_or_rgb` (16-bit grayscale is stretched, not clipped).

        Returns
        -------
        ndarray of shape (3, output_size, output_size), float32
        """
        if image.mode not in ("L", "RGB"):
            image = to_l_or_rgb(image)
        resized = image.resize(self.resized_shape(image.width, image.height), resample=_PIL_CODES[self.interpolation])
        if self.resize_mode == "longest":
            square = Image.new(resized.mode, (self.size, self.size), color=self.fill)
            square.paste(resized, ((self.size - resized.width) // 2, (self.size - resized.height) // 2))
            resized = square
        if self.crop is not None:
            resized = _center_crop(resized, int(self.crop))
        pixels = np.asarray(resized, dtype=np.float32) * np.float32(self.rescale)
        if pixels.ndim == 2:
            pixels = np.repeat(pixels[:, :, None], 3, axis=2)
        pixels = (pixels - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))

    def batch(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Preprocess several PIL images.

        Returns
        -------
        ndarray of shape (len(images), 3, output_size, output_size), float32
        """
        side = self.output_size
        out = np.empty((len(images), 3, side, side), dtype=np.float32)
        for row, image in enumerate(images):
            out[row] = self.image(image)
        return out

    # --- GPU path: decoded uint8 tensors --------------------------------------------------------

    def tensor_batch(self, images, dtype=None):
        """Preprocess decoded images that are already tensors (e.g. nvJPEG output on the GPU).

        Resizing uses torchvision with antialiasing, so values differ slightly from the PIL
        path (mean absolute difference well under 1 % of the range).

        Parameters
        ----------
        images : sequence of uint8 torch.Tensor of shape (C, H, W), C in {1, 3}
            All on the same device.
        dtype : torch.dtype, optional
            Output dtype; float32 by default.

        Returns
        -------
        torch.Tensor of shape (len(images), 3, output_size, output_size)
        """
        import torch
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2 import functional as tvf

        # Tensor resizing knows nearest, bilinear and bicubic; the PIL-only filters map to the
        # closest of those (antialiasing keeps downscaling smooth either way).
        name = {"lanczos": "bicubic", "box": "bilinear", "hamming": "bilinear"}.get(
            self.interpolation, self.interpolation
        )
        mode = InterpolationMode(name)
        side = self.output_size
        device = images[0].device
        out = torch.empty((len(images), 3, side, side), dtype=torch.float32, device=device)
        for row, image in enumerate(images):
            height, width = int(image.shape[-2]), int(image.shape[-1])
            new_w, new_h = self.resized_shape(width, height)
            resized = tvf.resize(image.float(), [new_h, new_w], interpolation=mode, antialias=True)
            if self.resize_mode == "longest":
                pad_l, pad_t = (self.size - new_w) // 2, (self.size - new_h) // 2
                resized = tvf.pad(
                    resized,
                    [pad_l, pad_t, self.size - new_w - pad_l, self.size - new_h - pad_t],
                    fill=float(self.fill),
                )
            if self.crop is not None:
                crop = int(self.crop)
                top = (resized.shape[-2] - crop) // 2
                left = (resized.shape[-1] - crop) // 2
                resized = resized[..., top : top + crop, left : left + crop]
            out[row] = resized.clamp_(0, 255).expand(3, -1, -1)
        mean = torch.tensor(self.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, 3, 1, 1)
        out.mul_(self.rescale).sub_(mean).div_(std)
        return out if dtype is None else out.to(dtype)


def _center_crop(image: Image.Image, side: int) -> Image.Image:
    """Centre crop to side × side, padding with black where the image is smaller."""
    if image.width < side or image.height < side:
        padded = Image.new(image.mode, (max(side, image.width), max(side, image.height)))
        padded.paste(image, ((padded.width - image.width) // 2, (padded.height - image.height) // 2))
        image = padded
    top = (image.height - side) // 2
    left = (image.width - side) // 2
    return image.crop((left, top, left + side, top + side))


def _side(value) -> int:
    """One integer side from an int, a 1- or 2-sequence, or a height/width mapping."""
    if isinstance(value, dict):
        height, width = value.get("height"), value.get("width")
        if height is None or height != width:
            raise ValueError(f"size {value!r}; expected a square height/width")
        return int(height)
    if isinstance(value, (list, tuple)):
        if len(value) not in (1, 2) or (len(value) == 2 and value[0] != value[1]):
            raise ValueError(f"size {value!r}; expected one side or a square")
        return int(value[0])
    return int(value)


def _three(values) -> tuple[float, float, float]:
    values = [float(v) for v in (values if isinstance(values, (list, tuple)) else [values])]
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise ValueError(f"{values!r}: expected 1 or 3 channel values")
    return tuple(values)
