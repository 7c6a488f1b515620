"""Tests of `labelcast serve` (backend.commands.serve): the start-up encoder check.

Each test runs the real command as a subprocess on a free loopback port.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests

from conftest import PROJECT_ROOT, free_port, stop_process, wait_http


@pytest.fixture
def serve_env(tmp_path):
    """The environment of an embedded-mode `labelcast serve`: a private store and an empty,
    offline Hugging Face cache (so the default preset's weights are missing)."""
    env = {
        **os.environ,
        "MODEL_DIR": str(tmp_path / "model"),
        "LOG_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(tmp_path / "hf-cache"),
        "DEVICE": "cpu",
    }
    for name in ("REDIS_URL", "ENCODER", "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "HF_HOME"):
        env.pop(name, None)
    return env


def _serve(env, *options):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "serve", "--host", "127.0.0.1", "--port", str(port), *options],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, f"http://127.0.0.1:{port}"


def _exit_of(env, *options) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a serve that must stop by itself within 120 s."""
    process, _ = _serve(env, *options)
    try:
        out, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        stop_process(process)
        pytest.fail("labelcast serve kept running; it should have stopped at the encoder check")
    return process.returncode, out, err


def test_serve_stops_with_the_fix_when_the_encoder_does_not_resolve(serve_env):
    """Default preset not on disk: exit 2 before listening, one paragraph with the fix."""
    code, out, err = _exit_of(serve_env)
    assert code == 2, (out, err)
    assert "serving on" not in out
    message = err.strip()
    assert message.startswith("labelcast serve: error: the encoder ENCODER='xrayclip' does not resolve")
    assert "\n" not in message, message
    for fragment in (
        "hf download StanfordAIMI/XrayCLIP__vit-b-16__laion2b-s34b-b88k",
        "offline mode is on",
        "labelcast encoders",
        "--lazy-encoder",
    ):
        assert fragment in message, message


def test_serve_refuses_a_vision_folder_with_truncated_weights(serve_env, tiny_hf_vision_dirs, tmp_path):
    """A folder whose weights file is cut short stops serve, naming the file."""
    import shutil

    folder = tmp_path / "cut"
    shutil.copytree(tiny_hf_vision_dirs["clip_with_projection"], folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-64])
    code, out, err = _exit_of({**serve_env, "ENCODER": str(folder)})
    assert code == 2 and f"{weights} is unreadable" in err, (out, err)


def test_serve_with_lazy_encoder_starts_although_the_encoder_does_not_resolve(serve_env):
    """--lazy-encoder skips the check: the same missing encoder, and /health answers."""
    process, url = _serve(serve_env, "--lazy-encoder")
    try:
        wait_http(url + "/health", 60, process)
    finally:
        stop_process(process)


def test_serve_checks_a_resolving_encoder_and_serves(serve_env, tiny_hf_vision_dirs):
    """A vision-only folder passes the check: serve says what it found and answers /health."""
    folder = tiny_hf_vision_dirs["siglip"]
    process, url = _serve({**serve_env, "ENCODER": str(folder)})
    try:
        wait_http(url + "/health", 60, process)
        assert requests.get(url + "/health", timeout=10).status_code == 200
    finally:
        stop_process(process)
    out = process.stdout.read()
    assert f"labelcast: encoder {folder}: transformers siglip_vision_model in {folder}" in out, out
    assert f"report links: {url}/report" in out, out  # listening on 127.0.0.1, no PUBLIC_URL


@pytest.mark.parametrize(
    ("host", "url"),
    [
        pytest.param("127.0.0.1", "http://127.0.0.1:9090", id="ipv4"),
        pytest.param("labelcast.internal", "http://labelcast.internal:9090", id="name"),
        pytest.param("::1", "http://[::1]:9090", id="ipv6"),
        pytest.param("0.0.0.0", None, id="any-ipv4"),
        pytest.param("::", None, id="any-ipv6"),
        pytest.param("[::]", None, id="any-ipv6-brackets"),
        pytest.param("", None, id="empty"),
    ],
)
def test_report_links_use_the_listening_address_only_when_it_is_one_host(host, url):
    """`labelcast serve --host H`: H is the report links' address unless it is a wildcard."""
    from backend.commands.serve import listen_url

    assert listen_url(host, 9090) == url


def test_serve_with_redis_leaves_the_encoder_to_the_workers(serve_env, redis_url):
    """With REDIS_URL the web process loads no encoder, so a missing one does not stop it."""
    process, url = _serve({**serve_env, "REDIS_URL": redis_url})
    try:
        wait_http(url + "/health", 60, process)
    finally:
        stop_process(process)
