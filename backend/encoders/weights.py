"""Where weights come from: offline mode, cache folders, content digests, helpful errors.

Loaders call these helpers; they never download anything themselves when offline mode is on.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
from collections.abc import Iterable, Mapping

from backend.exceptions import EncoderLoadError

_TRUE = ("1", "true", "yes", "on")

HF_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
"""transformers weight files, in the order transformers prefers them."""

OPEN_CLIP_WEIGHT_FILES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
    "model.safetensors",
    "pytorch_model.bin",
    "pytorch_model.pth",
    "model.pth",
)
"""open_clip weight files in an ``hf-hub:`` repo or ``local-dir:`` folder, preferred first."""


def offline_mode(offline: bool | None, environ: Mapping[str, str] | None = None) -> bool:
    """``offline`` if given, else whether ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set.

    Parameters
    ----------
    offline : bool or None
        An explicit choice wins.
    environ : mapping, optional
        Where to read the variables (``os.environ`` by default); read at call time, never at
        import.
    """
    if offline is not None:
        return bool(offline)
    environ = os.environ if environ is None else environ
    return any(
        str(environ.get(name, "")).strip().lower() in _TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def hf_cache_dir(cache_dir: str | os.PathLike | None) -> str:
    """The Hugging Face hub cache folder that will be searched."""
    if cache_dir is not None:
        return str(cache_dir)
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def file_digest(paths: Iterable[str | os.PathLike], extra: str = "") -> str:
    """SHA-256 over the contents of ``paths`` (in the given order) and ``extra``, as hex.

    Hashing reads every byte (about 1 s per GB); it runs once per encoder load and makes the
    encoder id depend on the weights themselves, not on where they were found.
    """
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
        digest.update(b"\0")
    digest.update(extra.encode())
    return digest.hexdigest()


def hf_weight_paths(folder: str | os.PathLike, names: Iterable[str] = HF_WEIGHT_FILES) -> list[str]:
    """The weight files a transformers (or open_clip) folder holds, shards included.

    Returns the first of ``names`` present; for an ``*.index.json`` the index and every
    shard it lists. Empty when there is none.
    """
    import json

    folder = pathlib.Path(folder)
    for name in names:
        path = folder / name
        if not path.is_file():
            continue
        if name.endswith(".index.json"):
            shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
            return [str(path)] + [str(folder / shard) for shard in shards]
        return [str(path)]
    return []


def checkpoint_keys(paths: Iterable[str | os.PathLike], spec_text: str) -> frozenset[str]:
    """The tensor names held by weight files, read without loading the tensors.

    ``*.safetensors``: the file's JSON header, checked against the file size (a truncated copy
    fails here); ``*.index.json``: its ``weight_map``; anything else: a torch file opened with
    ``mmap=True`` (tensors stay on disk), falling back to a full read for the legacy format.
    A ``state_dict`` (or ``model``) entry wrapping the tensors and a ``module.`` prefix are
    unwrapped, as the loaders do.

    Raises
    ------
    EncoderLoadError
        If a file is unreadable or holds no tensors; the message names the file.
    """
    import json
    import pickle

    keys: set[str] = set()
    for path in map(str, paths):
        if not os.path.isfile(path):
            raise EncoderLoadError(
                f"cannot load encoder {spec_text!r}: weights file {path} is missing (its index "
                "lists it); copy or download the checkpoint again"
            )
        try:
            if path.endswith(".index.json"):
                keys.update(json.loads(pathlib.Path(path).read_text())["weight_map"])
            elif path.endswith(".safetensors"):
                keys.update(_safetensors_keys(path))
            else:
                keys.update(_torch_file_keys(path))
        except (
            OSError,
            ValueError,
            KeyError,
            IndexError,
            TypeError,
            RuntimeError,
            EOFError,
            pickle.UnpicklingError,
        ) as exc:  # what parsing a file we did not write raises
            raise EncoderLoadError(
                f"cannot load encoder {spec_text!r}: weights file {path} is unreadable "
                f"({type(exc).__name__}: {_first_line(str(exc))}); it is truncated, corrupt or "
                "not a weights file: copy or download it again"
            ) from None
    if not keys:
        raise EncoderLoadError(f"cannot load encoder {spec_text!r}: {', '.join(map(str, paths))} holds no tensors")
    return frozenset(key.removeprefix("module.") for key in keys)


def _safetensors_keys(path: str) -> list[str]:
    """Tensor names from a safetensors header (8-byte little-endian length, then JSON); no torch."""
    import json

    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        if not 2 <= length <= min(size - 8, 100 << 20):
            raise ValueError(f"header length {length} does not fit a file of {size} bytes")
        header = json.loads(handle.read(length))
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    tensors = {key: value for key, value in header.items() if key != "__metadata__"}
    end = max((int(value["data_offsets"][1]) for value in tensors.values()), default=0)
    if 8 + length + end != size:
        raise ValueError(f"the header describes {8 + length + end} bytes, the file has {size}")
    return list(tensors)


def _torch_file_keys(path: str) -> list[str]:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        state = torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) file
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"it holds a {type(state).__name__}, not a state dict")
    return [str(key) for key in state]


def missing_hf_weights(spec_text: str, repo: str, cache: str, offline: bool, reason: str) -> EncoderLoadError:
    """The error for Hugging Face weights that are neither in the cache nor downloadable."""
    why = "offline mode is on (HF_HUB_OFFLINE)" if offline else "the Hugging Face hub could not be reached"
    return EncoderLoadError(
        f"cannot load encoder {spec_text!r}: the weights of {repo!r} are not in the Hugging Face "
        f"cache at {cache} and {why} ({_first_line(reason)}). Provide them one of two ways: "
        f"(1) on a machine with internet run `hf download {repo}` (or "
        f"`huggingface-cli download {repo}`) and copy its cache folder here, pointing HF_HUB_CACHE "
        f"(or HF_HOME) at it; (2) save or copy the model into a folder, mount it (e.g. read-only "
        f"at /models/{repo.split('/')[-1]}) and pass that folder as the encoder spec."
    )


def missing_file(
    spec_text: str, what: str, path: str, url: str | None, offline: bool, reason: str = ""
) -> EncoderLoadError:
    """The error for a single weights file (torchvision, open_clip URL) that is missing."""
    how = (
        f"download it on a machine with internet (`curl -L {url} -o {path}`) and copy it there, "
        f"or pass the file in the spec"
        if url
        else "pass an existing weights file in the spec"
    )
    state = " (offline mode is on)" if offline else ""
    detail = f": {_first_line(reason)}" if reason else ""
    return EncoderLoadError(
        f"cannot load encoder {spec_text!r}: {what} not found at {path}{state}{detail}. To provide it, {how}."
    )


def _first_line(text: str) -> str:
    text = str(text).strip()
    return text.splitlines()[0][:300] if text else "no detail"
