"""``load_encoder``: one spec string in, one ready :class:`Encoder` out; ``check_encoder``:
whether a spec resolves, without building the model (for a start-up check)."""

from __future__ import annotations

from backend.encoders.encoder import Encoder
from backend.encoders.presets import DEFAULT_ENCODER
from backend.encoders.spec import parse_spec
from backend.encoders.weights import offline_mode
from backend.images import DEFAULT_MAX_PIXELS


def load_encoder(
    spec: str = DEFAULT_ENCODER,
    device: str | None = None,
    *,
    cache_dir: str | None = None,
    offline: bool | None = None,
    batch_size: int | None = None,
    decode_workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    precision: str = "auto",
) -> Encoder:
    """Load a frozen image encoder.

    Every call loads the weights again: call it once per process (after any fork) and keep
    the result, or hold a :class:`backend.encoders.LazyEncoder`.

    Parameters
    ----------
    spec : str, default="xrayclip"
        A preset name, ``hf:<repo or folder>``, a folder path,
        ``open_clip:<model>[:<tag or file>]``, ``open_clip:hf-hub:<repo>`` or
        ``torchvision:<arch>[:<weights>]`` (see :mod:`backend.encoders.spec`).
    device : str, optional
        ``"cpu"``, ``"cuda"``, ``"cuda:0"``...; None picks CUDA when available.
    cache_dir : str, optional
        Hugging Face hub cache / torchvision checkpoint folder; None uses their defaults.
    offline : bool, optional
        Never download; None follows ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``.
    batch_size : int, optional
        Images per forward pass; None sizes it to the device.
    decode_workers : int, optional
        CPU decoding threads for ``embed_bytes``.
    max_pixels : int, default=DEFAULT_MAX_PIXELS
        Decompression-bomb limit for ``embed_bytes``.
    precision : {"auto", "fp32", "bf16", "fp16"}, default="auto"
        Autocast dtype: bf16 on CUDA and fp32 on the CPU unless told otherwise.

    Returns
    -------
    Encoder
        With ``id``, ``dim``, ``embed(images)`` and ``embed_bytes(datas)``.

    Raises
    ------
    EncoderLoadError
        For a bad spec or weights that cannot be found or loaded; the message names the spec,
        where it looked and how to provide the weights.
    """
    parsed = parse_spec(spec)
    offline = offline_mode(offline)
    encoder_options = dict(
        device=device,
        batch_size=batch_size,
        decode_workers=decode_workers,
        max_pixels=max_pixels,
        precision=precision,
    )
    if parsed.family == "hf":
        from backend.encoders.hf import load_hf_encoder

        return load_hf_encoder(parsed, cache_dir=cache_dir, offline=offline, **encoder_options)
    if parsed.family == "open_clip":
        from backend.encoders.openclip import load_open_clip_encoder

        return load_open_clip_encoder(parsed, cache_dir=cache_dir, offline=offline, **encoder_options)
    from backend.encoders.tvmodels import load_torchvision_encoder

    return load_torchvision_encoder(parsed, cache_dir=cache_dir, offline=offline, **encoder_options)


def check_encoder(
    spec: str = DEFAULT_ENCODER,
    *,
    cache_dir: str | None = None,
    offline: bool | None = None,
) -> str:
    """Check that an encoder spec resolves, without building the model or reading its tensors.

    Finds the weights exactly as :func:`load_encoder` does (the same functions), then reads
    the configs and the weight files' tensor names: a safetensors header (no torch import), a
    torch file memory-mapped. Weights that are not on disk are downloaded unless offline, as
    the load would.

    Parameters
    ----------
    spec, cache_dir, offline
        As for :func:`load_encoder`.

    Returns
    -------
    str
        One line saying what was found and where.

    Raises
    ------
    EncoderLoadError
        What :func:`load_encoder` would raise for a bad spec, missing or unreadable weights,
        or an unsupported model type; the message says how to provide the weights.
    """
    parsed = parse_spec(spec)
    offline = offline_mode(offline)
    if parsed.family == "hf":
        from backend.encoders.hf import resolve_hf_checkpoint

        hf = resolve_hf_checkpoint(parsed, cache_dir=cache_dir, offline=offline)
        return f"transformers {hf.model_type} in {hf.folder} ({len(hf.keys)} tensors)"
    if parsed.family == "open_clip":
        from backend.encoders.openclip import resolve_open_clip_checkpoint

        clip = resolve_open_clip_checkpoint(parsed, cache_dir=cache_dir, offline=offline)
        what = {
            "model": "the whole model",
            "visual": "the image tower alone",
            "tower": "no visual.* keys: the image tower's own, or a format open_clip converts",
        }[clip.layout]
        return f"open_clip {clip.model_name}, {clip.path} ({what})"
    from backend.encoders.tvmodels import resolve_torchvision_checkpoint

    tv = resolve_torchvision_checkpoint(parsed, cache_dir=cache_dir, offline=offline)
    return f"torchvision {parsed.name}, {tv.path}"
