"""Smoke test of benchmarks/embed_throughput.py with the tiny encoder (real sizes run by hand)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "embed_throughput.py"


def _run(*args: str) -> dict:
    """Run the benchmark on the CPU with ``args`` and return its JSON line."""
    out = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--device", "cpu", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_benchmark_reports_end_to_end_encoder_and_stage_figures(tiny_encoder_spec):
    """The benchmark runs on the CPU and reports images/s and the per-stage split as JSON."""
    result = _run("--encoder", tiny_encoder_spec, "--images", "6", "--size", "256", "--batch", "4")
    assert result["weights"] == "real" and result["device"] == "cpu" and result["batch"] == 4
    assert result["end_to_end_images_per_s"] > 0 and result["encoder_alone_images_per_s"] > 0
    stages = result["ms_per_image"]
    assert set(stages) == {"cpu_decode_draft_1_thread", "cpu_preprocess_1_thread", "encoder"}
    assert all(value > 0 for value in stages.values())
    assert result["limit"] in ("encoder", "decode")


def test_benchmark_random_weights_for_a_preset():
    """--random-weights builds the preset's real architecture (ResNet-50 here) without weights."""
    result = _run("--encoder", "resnet50", "--random-weights", "--images", "2", "--size", "256", "--batch", "2")
    assert result["encoder"] == "random-resnet50" and result["weights"].startswith("random")
    assert result["encoder_alone_images_per_s"] > 0


def test_benchmark_mixed_batch_through_the_device_route_on_the_cpu(tiny_encoder_spec):
    """--png-share 0.25 --device-decoder cpu: 2 of 8 images are PNGs; the pipeline gives the 6
    JPEGs to the device decoder (decode_jpeg on the CPU here: there is no GPU) and the PNGs to
    its processes, and embeds all 8."""
    result = _run(
        "--encoder",
        tiny_encoder_spec,
        "--images",
        "8",
        "--size",
        "256",
        "--batch",
        "4",
        "--png-share",
        "0.25",
        "--device-decoder",
        "cpu",
    )
    pipeline = result["pipeline"]
    assert result["pngs"] == 2 and pipeline["embedded"] == 8 and pipeline["device_decoded"] == 6
    assert pipeline["device_decoder"] == "JpegDecoder(device='cpu')" and pipeline["errors"] == {}
