"""``labelcast encoders``: the encoder presets, where their weights are, and the spec forms."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "encoders",
        help="list the encoder presets and the spec forms --encoder accepts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--cache-dir", help="Hugging Face hub cache to check (default: HF_HUB_CACHE)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from backend.encoders import DEFAULT_ENCODER, PRESETS
    from backend.encoders.spec import SPEC_HELP

    width = max(len(name) for name in PRESETS) + 2
    print(f"{'preset':<{width}}{'input':>6}  {'weights':<8}  spec / description")
    for preset in PRESETS.values():
        name = preset.name + ("*" if preset.name == DEFAULT_ENCODER else "")
        state = "cached" if weights_on_disk(preset.spec, args.cache_dir) else "missing"
        print(f"{name:<{width}}{preset.input_size:>6}  {state:<8}  {preset.spec}")
        print(f"{'':<{width}}{'':>6}  {'':<8}  {preset.description}")
    print(f"\n* default. --encoder also accepts {SPEC_HELP}.")
    print(
        "Missing weights: run `hf download <repo>` where there is internet and copy the cache "
        "(HF_HUB_CACHE), or pass a folder saved with save_pretrained."
    )
    return 0


def weights_on_disk(spec: str, cache_dir: str | None = None) -> bool:
    """Whether a preset's weights are already on this machine (no download, no loading)."""
    import os

    from backend.encoders import parse_spec

    parsed = parse_spec(spec)
    if parsed.family == "hf":
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(parsed.name, "config.json", cache_dir=cache_dir)
        return isinstance(found, str)
    if parsed.family == "torchvision":
        import torchvision

        try:
            release = torchvision.models.get_model_weights(parsed.name)[parsed.weights or "DEFAULT"]
        except (KeyError, ValueError):
            return False
        import torch

        folder = cache_dir or os.path.join(torch.hub.get_dir(), "checkpoints")
        return os.path.isfile(os.path.join(folder, os.path.basename(release.url)))
    return False
