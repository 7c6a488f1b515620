"""Memory of a training process while it embeds image bombs (issue 13, items 4 and 9, and the
raw downloads of round 2).

Each case runs in a fresh process that plays the training process: a Trainer on a SQLite store
in a temporary folder with a tiny random CLIP encoder (warmed up on one small image), then
``embed_tasks`` of the case's tasks, whose images are ``data:`` URIs as a webhook carries them.
Printed per case: the process's resident memory before, its peak during (``VmHWM`` after
``/proc/self/clear_refs``), the growth, and what became of the images.

- ``dicom``: a Deflated Explicit VR Little Endian DICOM of 1.4 MB holding an 8 × 8 image and a
  private element of ``--inflated-mb`` zeros (default 1,400 MB), streamed without building it
  in memory;
- ``png``: one batch of eight 7,000 × 7,000 grayscale PNGs of about 150 KB each;
- ``raw``: ``--raw-images`` (default 96) small chest X-ray PNGs, each carrying a private chunk
  that makes it ``--raw-mb`` (default 16) MB, downloaded from a loopback HTTP server (this
  process; the images are made per request, so they are not held here): what the pipeline
  holds is the downloads, not the pixels.

    python benchmarks/bomb_memory.py                 # this checkout
    PYTHONPATH=/path/to/older/checkout python benchmarks/bomb_memory.py   # another version

Linux only (/proc). Bounded: one case at a time, each process killed after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import pathlib
import struct
import subprocess
import sys
import tempfile
import zlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=("dicom", "png", "raw", "all"), default="all")
    parser.add_argument("--inflated-mb", type=int, default=1400, help="the DICOM bomb's inflated size (MB)")
    parser.add_argument("--raw-images", type=int, default=96, help="images of the raw case")
    parser.add_argument("--raw-mb", type=int, default=16, help="size of each raw-case image (MB)")
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(json.loads(args.child))

    from conftest import _save_tiny_clip

    import backend

    print(f"backend: {pathlib.Path(backend.__file__).parent}")
    server = _raw_server(args.raw_mb * 1_000_000)
    with tempfile.TemporaryDirectory() as folder:
        work = pathlib.Path(folder)
        encoder = str(_save_tiny_clip(work / "tiny-clip"))
        cases = ("dicom", "png", "raw") if args.case == "all" else (args.case,)
        for case in cases:
            if case == "raw":
                base = f"http://127.0.0.1:{server.server_port}"
                refs = [f"{base}/{i}.png" for i in range(args.raw_images)]
            else:
                refs = _dicom_refs(args.inflated_mb) if case == "dicom" else _png_refs()
            spec = {"case": case, "encoder": encoder, "store": str(work / f"{case}.sqlite3"), "refs": refs}
            spec_path = work / f"{case}.json"
            spec_path.write_text(json.dumps(spec))
            result = subprocess.run(
                [sys.executable, __file__, "--child", json.dumps({"spec": str(spec_path)})],
                capture_output=True,
                text=True,
                timeout=args.max_seconds,
                env=os.environ,
            )
            lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
            if result.returncode != 0 or not lines:
                print(f"{case}: the process failed (exit {result.returncode}): {result.stderr[-600:]}")
                continue
            figures = json.loads(lines[-1])
            size = sum(len(ref) for ref in refs) / 1e6
            what = f"{args.raw_mb * len(refs):,} MB over HTTP" if case == "raw" else f"{size:.1f} MB as data: URIs"
            print(
                f"{case}: {len(refs)} image(s), {what}; RSS before "
                f"{figures['before_mb']:.0f} MB, peak {figures['peak_mb']:.0f} MB, growth "
                f"{figures['peak_mb'] - figures['before_mb']:.0f} MB in {figures['seconds']:.1f} s; "
                f"images held by the pipeline at most {figures.get('held_mb', float('nan')):.0f} MB; "
                f"embedded {figures['embedded']}, errors: {figures['errors'][:160]}"
            )
    return 0


def _child(options: dict) -> int:
    import time

    spec = json.loads(pathlib.Path(options["spec"]).read_text())
    from backend.encoders import load_encoder
    from backend.settings import Settings
    from backend.store import SQLiteStore
    from backend.training import Trainer
    from conftest import data_uri, xray_png

    settings = Settings(
        model_dir=pathlib.Path(spec["store"]).parent,
        encoder=spec["encoder"],
        device="cpu",
        allowed_image_hosts=("127.0.0.1",),  # the raw case's server
    )
    store = SQLiteStore(spec["store"])
    trainer = Trainer(settings, store, encoder=load_encoder(spec["encoder"], device="cpu"))
    store.put_project(1, {"label_config": "<View/>"})
    store.put_tasks(1, {0: data_uri(xray_png(0, True))})
    trainer.embed_tasks(1, [0])  # warm: the encoder has run once
    refs = {i + 1: ref for i, ref in enumerate(spec["refs"])}
    store.put_tasks(1, refs)
    del spec
    before = _status_kb("VmRSS")
    pathlib.Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from now
    errors: dict[int, str] = {}
    started = time.perf_counter()
    vectors = trainer.embed_tasks(1, list(refs), errors)
    seconds = time.perf_counter() - started
    peak = _status_kb("VmHWM")
    print(
        json.dumps(
            {
                "before_mb": before / 1024,
                "peak_mb": peak / 1024,
                "seconds": seconds,
                "embedded": len(vectors),
                "held_mb": getattr(trainer.pipeline.stats, "held_bytes_peak", float("nan")) / 1e6,  # older: none
                "errors": "; ".join(sorted(set(errors.values()))),
            }
        )
    )
    return 0


def _status_kb(field: str) -> int:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _raw_server(size: int):
    """A loopback HTTP server whose ``/N.png`` is chest X-ray N padded to ``size`` bytes by a
    private PNG chunk (made per request); started in a daemon thread."""
    import http.server
    import threading

    from conftest import xray_png

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seed = int(self.path.strip("/").split(".")[0])
            png = xray_png(seed, seed % 2 == 0)
            pad = max(0, size - len(png) - 12)
            head = struct.pack(">I", pad) + b"prVt"
            crc = zlib.crc32(bytes(pad), zlib.crc32(b"prVt"))
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(png) + 12 + pad))
            self.end_headers()
            self.wfile.write(png[:33] + head)  # after the signature and IHDR
            zeros = bytes(1024 * 1024)
            for start in range(0, pad, len(zeros)):
                self.wfile.write(zeros[: min(len(zeros), pad - start)])
            self.wfile.write(struct.pack(">I", crc) + png[33:])

    class Quiet(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass

    server = Quiet(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _png_refs() -> list[str]:
    from PIL import Image

    refs = []
    for i in range(8):
        image = Image.new("L", (7000, 7000))
        image.putpixel((i, i), 255)  # eight different images (the cache is keyed by content)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        refs.append("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode())
    return refs


def _dicom_refs(inflated_mb: int) -> list[str]:
    """One deflated DICOM: file meta, then a deflate stream of the dataset, whose private
    element of zeros is compressed in chunks (never held whole)."""
    syntax = b"1.2.840.10008.1.2.1.99\0"
    sop_class, sop_instance = b"1.2.840.10008.5.1.4.1.1.7\0", b"1.2.826.0.1.3680043.8.498.1\0"
    meta_elements = (
        _element(0x0002, 0x0001, b"OB", b"\0\1")
        + _element(0x0002, 0x0002, b"UI", sop_class)
        + _element(0x0002, 0x0003, b"UI", sop_instance)
        + _element(0x0002, 0x0010, b"UI", syntax)
    )
    meta = _element(0x0002, 0x0000, b"UL", struct.pack("<I", len(meta_elements))) + meta_elements
    size = inflated_mb * 1_000_000
    head = (
        _element(0x0008, 0x0016, b"UI", sop_class)
        + _element(0x0008, 0x0018, b"UI", sop_instance)
        + _element(0x0009, 0x0010, b"LO", b"LabelCast test")
        + struct.pack("<HH2sHI", 0x0009, 0x1001, b"OB", 0, size)
    )
    tail = (
        _element(0x0028, 0x0002, b"US", struct.pack("<H", 1))
        + _element(0x0028, 0x0004, b"CS", b"MONOCHROME2 ")
        + _element(0x0028, 0x0010, b"US", struct.pack("<H", 8))
        + _element(0x0028, 0x0011, b"US", struct.pack("<H", 8))
        + _element(0x0028, 0x0100, b"US", struct.pack("<H", 8))
        + _element(0x0028, 0x0101, b"US", struct.pack("<H", 8))
        + _element(0x0028, 0x0102, b"US", struct.pack("<H", 7))
        + _element(0x0028, 0x0103, b"US", struct.pack("<H", 0))
        + _element(0x7FE0, 0x0010, b"OB", bytes(range(64)))
    )
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [deflater.compress(head)]
    zeros = bytes(16 * 1024 * 1024)
    for start in range(0, size, len(zeros)):
        parts.append(deflater.compress(zeros[: min(len(zeros), size - start)]))
    parts += [deflater.compress(tail), deflater.flush()]
    data = b"\0" * 128 + b"DICM" + meta + b"".join(parts)
    return ["data:application/dicom;base64," + base64.b64encode(data).decode()]


def _element(group: int, element: int, vr: bytes, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\0"
    if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT"):
        return struct.pack("<HH2sHI", group, element, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, element, vr, len(value)) + value


if __name__ == "__main__":
    sys.exit(main())
