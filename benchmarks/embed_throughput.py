"""Embedding throughput: encoded chest X-ray JPEGs → embeddings, end to end and per stage.

    python benchmarks/embed_throughput.py --encoder xrayclip --images 64 --size 2048 --batch 32
    python benchmarks/embed_throughput.py --encoder xrayclip --device cuda --png-share 0.25   # mixed

Prints images/s end to end through the service's pipeline (:class:`backend.pipeline.Pipeline`
on ``--size``² image bytes: hash, cache lookup, decode — a process pool on every core; on CUDA
nvJPEG for the JPEGs it takes, the pool for the rest — preprocess and encoder, overlapped as in
the worker; the cache starts empty), images/s of ``Encoder.embed_bytes`` alone (its own
nvJPEG-overlapped path, for comparison), of the encoder alone (random preprocessed pixels), and
where the time goes (decode, preprocess, encoder; per image, single stream, so the parts can be
compared). ``--png-share`` makes that share of the images PNGs (a mixed batch: on CUDA the PNGs
decode in the process pool while nvJPEG takes the JPEGs). ``--device-decoder cpu`` runs the
pipeline's device route with ``decode_jpeg`` on the CPU: a dry run of the GPU code path on a
machine without one.

Weights: the spec is loaded with ``load_encoder``; when its weights are not on this machine
and the spec is a preset, the preset's real architecture is built with random weights (speed
does not depend on the values) and the output says so. ``--random-weights`` forces that.

On CUDA: bf16 autocast and ``inference_mode`` (inside ``Encoder``), JPEGs decoded by nvJPEG on
their own stream overlapped with the encoder; the split also times nvJPEG decode alone.
The images are the real pydicom-data radiograph (RG1_UNCR) resized to ``--size``², saved as
8-bit grayscale JPEGs (quality 90) or PNGs with a little noise, and a comment in each file so
that every file differs.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from backend.encoders import Encoder, Preprocess, load_encoder  # noqa: E402
from backend.encoders.preprocess import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from backend.exceptions import EncoderLoadError  # noqa: E402
from backend.images import decode_image  # noqa: E402

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# What each preset's published checkpoint contains (config.json / preprocessor_config.json).
_RANDOM_ARCHITECTURES = {
    "xrayclip": "clip-vit-b16-224",
    "xraysiglip": "siglip-vit-l16-384",
    "rad-dino": "dinov2-vit-b14-518",
    "rad-dino-maira-2": "dinov2-vit-b14-518",
    "resnet50": "resnet50-224",
}


def random_encoder(preset: str, device: str | None, batch_size: int | None, precision: str = "auto") -> Encoder:
    """The preset's architecture at its real size with random weights."""
    import torch

    torch.manual_seed(0)
    arch = _RANDOM_ARCHITECTURES[preset]
    if arch == "resnet50-224":
        import torchvision

        model = torchvision.models.resnet50(weights=None)
        model.fc = torch.nn.Identity()
        preprocess = Preprocess(232, "shortest", 224, "bilinear", IMAGENET_MEAN, IMAGENET_STD)
        return Encoder(
            id="random-resnet50",
            dim=2048,
            model=model,
            preprocess=preprocess,
            device=device,
            batch_size=batch_size,
            precision=precision,
        )
    import transformers

    if arch == "clip-vit-b16-224":
        config = transformers.CLIPVisionConfig(
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            image_size=224,
            patch_size=16,
            projection_dim=512,
        )
        model, output, dim = transformers.CLIPVisionModelWithProjection(config), "image_embeds", 512
        preprocess = Preprocess(224, "shortest", 224, "bicubic", CLIP_MEAN, CLIP_STD)
    elif arch == "siglip-vit-l16-384":
        config = transformers.SiglipVisionConfig(
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            image_size=384,
            patch_size=16,
        )
        model, output, dim = transformers.SiglipVisionModel(config), "pooler_output", 1024
        preprocess = Preprocess(384, "exact", None, "bicubic", (0.5,) * 3, (0.5,) * 3)
    else:
        config = transformers.Dinov2Config(
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            image_size=518,
            patch_size=14,
        )
        model, output, dim = transformers.Dinov2Model(config), "pooler_output", 768
        preprocess = Preprocess(518, "shortest", 518, "bicubic", (0.5307,) * 3, (0.2583,) * 3)

    class Features(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, pixel_values):
            return getattr(self.model(pixel_values=pixel_values), output)

    return Encoder(
        id=f"random-{arch}",
        dim=dim,
        model=Features(),
        preprocess=preprocess,
        device=device,
        batch_size=batch_size,
        precision=precision,
    )


def make_jpegs(count: int, size: int, distinct: int = 8) -> list[bytes]:
    """``count`` grayscale JPEGs of size × size from the real radiograph (``distinct`` unique files)."""
    return make_images(count, size, png_share=0.0, distinct=distinct)


def make_images(count: int, size: int, png_share: float = 0.0, distinct: int = 8) -> list[bytes]:
    """``count`` grayscale images of size × size from the real radiograph, every file distinct
    bytes: ``round(count * png_share)`` PNGs spread evenly among JPEGs (``distinct`` unique
    pixel contents per format)."""
    from PIL import Image
    from pydicom.data import get_testdata_file

    with open(get_testdata_file("RG1_UNCR.dcm"), "rb") as handle:
        base = decode_image(handle.read()).resize((size, size), Image.BILINEAR)
    pngs = round(count * png_share)
    is_png = [int((i + 1) * pngs / count) > int(i * pngs / count) for i in range(count)]
    rng = np.random.default_rng(0)
    pixels = np.asarray(base, dtype=np.int16)
    files: dict[str, list[bytes]] = {"JPEG": [], "PNG": []}
    for fmt, needed in (("JPEG", count - pngs), ("PNG", pngs)):
        for _ in range(min(needed, distinct)):
            noisy = np.clip(pixels + rng.integers(-3, 4, pixels.shape), 0, 255).astype(np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(noisy).save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
            files[fmt].append(buffer.getvalue())
    # Every file distinct bytes (the pipeline embeds identical bytes once): a comment with the
    # index in each (a JPEG COM segment, a PNG tEXt chunk).
    out, seen = [], {"JPEG": 0, "PNG": 0}
    for index in range(count):
        fmt = "PNG" if is_png[index] else "JPEG"
        data = files[fmt][seen[fmt] % len(files[fmt])]
        seen[fmt] += 1
        out.append(_png_with_comment(data, index) if fmt == "PNG" else _with_comment(data, index))
    return out


def _with_comment(jpeg: bytes, index: int) -> bytes:
    payload = f"labelcast-bench {index}".encode()
    return jpeg[:2] + b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


def _png_with_comment(png: bytes, index: int) -> bytes:
    import zlib

    body = b"tEXt" + b"Comment\0" + f"labelcast-bench {index}".encode()
    chunk = (len(body) - 4).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")
    end_of_header = 8 + 25  # signature, then the IHDR chunk (4 + 4 + 13 + 4 bytes)
    return png[:end_of_header] + chunk + png[end_of_header:]


def _sync(encoder: Encoder) -> None:
    if encoder.is_cuda:
        import torch

        torch.cuda.synchronize(encoder.device)


class _EmptyCache:
    """A cache that never has anything and keeps nothing: every image is decoded and embedded."""

    def get_many(self, encoder_id, hashes):
        return {}

    def put_many(self, encoder_id, vectors):
        pass


def _through_pipeline(encoder: Encoder, jpegs: list[bytes], repeats: int, device_decoder=None) -> tuple[float, dict]:
    """Images/s of the service's pipeline on these bytes (fetching is a dict lookup here), and
    its stats of the last pass. The decoding processes are started before the clock runs."""
    from backend.pipeline import Pipeline

    pipeline = Pipeline(encoder, _EmptyCache(), device_decoder=device_decoder)
    items = [(i, f"mem:{i}") for i in range(len(jpegs))]
    try:
        pipeline.embed_all(items[: min(len(items), 2 * pipeline.decode_workers)], lambda k, ref: jpegs[k])
        _sync(encoder)
        start = time.perf_counter()
        for _ in range(repeats):
            pipeline.stats = type(pipeline.stats)()
            results = pipeline.embed_all(items, lambda k, ref: jpegs[k])
        _sync(encoder)
        rate = repeats * len(jpegs) / (time.perf_counter() - start)
    finally:
        pipeline.close()
    failed = [r for r in results if r.error]
    if failed:
        raise RuntimeError(f"{len(failed)} images failed in the pipeline: {failed[0].error}")
    return rate, {
        **pipeline.stats.as_dict(),
        "decode_workers": pipeline.decode_workers,
        "batch": pipeline.batch_size,
        "device_decoder": repr(pipeline.device_decoder),
    }


def measure(encoder: Encoder, jpegs: list[bytes], repeats: int, device_decoder=None) -> dict:
    """Images/s end to end and per stage (``jpegs``: the image files, JPEG or PNG)."""
    import torch

    from backend.encoders.device_decode import device_decodable

    n = len(jpegs)
    side = encoder.preprocess.output_size
    # warm-up: kernels, autocast caches, thread pools
    encoder.embed_bytes(jpegs[: min(n, encoder.batch_size)])
    _sync(encoder)

    start = time.perf_counter()
    for _ in range(repeats):
        encoder.embed_bytes(jpegs)
    _sync(encoder)
    embed_bytes_rate = repeats * n / (time.perf_counter() - start)
    end_to_end, pipeline_stats = _through_pipeline(encoder, jpegs, repeats, device_decoder)

    pixels = torch.randn(encoder.batch_size, 3, side, side)
    if encoder.is_cuda:
        pixels = pixels.to(encoder.device)
    encoder.embed_pixels(pixels)
    _sync(encoder)
    rounds = max(3, repeats * n // encoder.batch_size)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        encoder.embed_pixels(pixels)
        _sync(encoder)
        times.append(time.perf_counter() - start)
    encoder_alone = encoder.batch_size / float(np.median(times))  # median: robust to neighbours

    sample = jpegs[: min(n, 16)]
    start = time.perf_counter()
    decoded = [decode_image(d, target_size=encoder.preprocess.min_decode_size) for d in sample]
    decode_s = (time.perf_counter() - start) / len(sample)
    start = time.perf_counter()
    encoder.preprocess.batch(decoded)
    preprocess_s = (time.perf_counter() - start) / len(sample)
    result = {
        "encoder": encoder.id,
        "device": encoder.device,
        "batch": encoder.batch_size,
        "images": n,
        "end_to_end_images_per_s": round(end_to_end, 1),
        "pipeline": pipeline_stats,
        "embed_bytes_images_per_s": round(embed_bytes_rate, 1),
        "encoder_alone_images_per_s": round(encoder_alone, 1),
        "ms_per_image": {
            "cpu_decode_draft_1_thread": round(1e3 * decode_s, 2),
            "cpu_preprocess_1_thread": round(1e3 * preprocess_s, 2),
            "encoder": round(1e3 / encoder_alone, 2),
        },
        "decode_workers": encoder.decode_workers,
    }
    if encoder.is_cuda:
        from torchvision.io import ImageReadMode, decode_jpeg

        nvjpeg = [d for d in jpegs if device_decodable(d)][: encoder.batch_size]
        buffers = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in nvjpeg]
        decode_jpeg(buffers, mode=ImageReadMode.UNCHANGED, device=encoder.device)
        _sync(encoder)
        start = time.perf_counter()
        images = decode_jpeg(buffers, mode=ImageReadMode.UNCHANGED, device=encoder.device)
        _sync(encoder)
        result["ms_per_image"]["gpu_nvjpeg_decode"] = round(1e3 * (time.perf_counter() - start) / len(buffers), 3)
        start = time.perf_counter()
        encoder.preprocess.tensor_batch(images)
        _sync(encoder)
        result["ms_per_image"]["gpu_preprocess"] = round(1e3 * (time.perf_counter() - start) / len(buffers), 3)
    stages = result["ms_per_image"]
    cpu_decode_parallel = (stages["cpu_decode_draft_1_thread"] + stages["cpu_preprocess_1_thread"]) / max(
        1, min(encoder.decode_workers, os.cpu_count() or 1)
    )
    result["limit"] = "encoder" if stages["encoder"] >= cpu_decode_parallel else "decode"
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="xrayclip", help="encoder spec or preset (default xrayclip)")
    parser.add_argument("--images", type=int, default=64, help="JPEGs per timed pass (default 64)")
    parser.add_argument("--size", type=int, default=2048, help="JPEG side in pixels (default 2048)")
    parser.add_argument("--batch", type=int, help="images per forward pass (default: sized to the device)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "bf16", "fp16"),
        help="autocast dtype (default auto: bf16 on CUDA, fp32 on CPU)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="timed passes over the images (default 1)")
    parser.add_argument("--random-weights", action="store_true", help="skip loading; random weights (presets only)")
    parser.add_argument(
        "--png-share", type=float, default=0.0, help="share of the images that are PNGs, 0 to 1 (default 0: all JPEG)"
    )
    parser.add_argument(
        "--device-decoder",
        choices=("auto", "cpu"),
        default="auto",
        help="the pipeline's JPEG decoder on the device: auto (nvJPEG on CUDA, none on the CPU) or "
        "cpu (torchvision decode_jpeg on the CPU: a dry run of the GPU route)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    if args.images < 1 or args.size < 32:
        parser.error("--images must be ≥ 1 and --size ≥ 32")
    if not 0.0 <= args.png_share <= 1.0:
        parser.error(f"--png-share {args.png_share}; expected a share between 0 and 1")

    note = ""
    if args.random_weights:
        if args.encoder not in _RANDOM_ARCHITECTURES:
            parser.error(f"--random-weights needs a preset: {', '.join(_RANDOM_ARCHITECTURES)}")
        encoder = random_encoder(args.encoder, args.device, args.batch, args.precision)
        note = "random weights (forced)"
    else:
        try:
            encoder = load_encoder(args.encoder, device=args.device, batch_size=args.batch, precision=args.precision)
        except EncoderLoadError as exc:
            if args.encoder not in _RANDOM_ARCHITECTURES:
                raise
            encoder = random_encoder(args.encoder, args.device, args.batch, args.precision)
            note = "random weights: the real ones are not on this machine"
            print(f"note: {str(exc).split('. Provide')[0]}", file=sys.stderr)
    device_decoder = None
    if args.device_decoder == "cpu":
        from backend.encoders.device_decode import JpegDecoder

        device_decoder = JpegDecoder("cpu")
    files = make_images(args.images, args.size, args.png_share)
    result = measure(encoder, files, args.repeats, device_decoder)
    result["file_kb"] = round(sum(map(len, files)) / len(files) / 1024, 1)
    result["pngs"] = sum(data.startswith(b"\x89PNG") for data in files)
    result["size"] = args.size
    result["weights"] = note or "real"
    result["precision"] = str(encoder.amp_dtype or "float32").replace("torch.", "")
    result["torch_threads"] = __import__("torch").get_num_threads()
    if args.json:
        print(json.dumps(result))
        return 0
    stages = result["ms_per_image"]
    print(
        f"encoder {result['encoder']} on {result['device']} ({result['weights']}), "
        f"batch {result['batch']}, precision {result['precision']}"
    )
    print(
        f"{args.images} grayscale images {args.size}×{args.size}, {result['pngs']} of them PNG "
        f"(~{result['file_kb']} KB each)"
    )
    print(f"end to end, the service pipeline: {result['end_to_end_images_per_s']:>8.1f} images/s")
    split = result["pipeline"]
    print(
        f"  {split['device_decoded']} decoded by {split['device_decoder']} in {split['device_decode_s']} s, "
        f"the rest by {split['decode_workers']} processes; decode {split['decode_s']} s, "
        f"encode {split['encode_s']} s (summed)"
    )
    print(f"Encoder.embed_bytes alone:       {result['embed_bytes_images_per_s']:>9.1f} images/s")
    print(f"encoder alone:                   {result['encoder_alone_images_per_s']:>9.1f} images/s")
    print("where the time goes (ms per image, one stream):")
    for stage, ms in stages.items():
        print(f"  {stage:<28}{ms:>9.3f}")
    print(
        f"limit: {result['limit']} (CPU decode runs on {result['decode_workers']} threads, "
        f"torch on {result['torch_threads']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
