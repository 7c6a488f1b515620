"""The wheel as a user gets it: built with `pip wheel .`, installed into a fresh venv away from
the source tree, and run there (`labelcast serve`, `connect --config`, `simulate`).

The fresh venv reuses this interpreter's installed dependencies through a ``.pth`` line (torch
is not installed again); LabelCast itself comes only from the wheel.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import sysconfig
import zipfile

import numpy as np
import pytest
import requests

from conftest import PROJECT_ROOT, free_port, stop_process, wait_http

SHIPPED_CONFIGS = ("one_finding.xml", "several_findings.xml")


def test_top_level_configs_are_the_shipped_ones():
    """plugin_config/ (copied by hand) and backend/plugin_config/ (in the wheel) are identical."""
    top = sorted(p.name for p in (PROJECT_ROOT / "plugin_config").glob("*.xml"))
    shipped = sorted(p.name for p in (PROJECT_ROOT / "backend" / "plugin_config").glob("*.xml"))
    assert top == shipped == sorted(SHIPPED_CONFIGS)
    for name in SHIPPED_CONFIGS:
        assert (PROJECT_ROOT / "plugin_config" / name).read_bytes() == (
            PROJECT_ROOT / "backend" / "plugin_config" / name
        ).read_bytes(), name


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> pathlib.Path:
    """The wheel that `pip wheel . --no-deps` builds from this checkout."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(PROJECT_ROOT),
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(out),
        ],
        check=True,
        timeout=300,
    )
    (found,) = out.glob("labelcast-*.whl")
    return found


@pytest.mark.slow
def test_wheel_holds_every_module_and_the_package_data(wheel):
    """Every .py under backend/, the curve prior and both labeling configs are in the wheel."""
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {p.relative_to(PROJECT_ROOT).as_posix() for p in (PROJECT_ROOT / "backend").rglob("*.py")}
    assert sources - names == set()
    assert "backend/data/curve_prior.json" in names
    assert {f"backend/plugin_config/{n}" for n in SHIPPED_CONFIGS} <= names


@pytest.fixture(scope="session")
def wheel_venv(wheel, tmp_path_factory) -> pathlib.Path:
    """A fresh venv (no system site-packages) with only the wheel installed, its dependencies
    reached through a .pth line to this interpreter's site-packages: the venv's bin folder."""
    venv = tmp_path_factory.mktemp("wheel-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (pathlib.Path(purelib) / "_labelcast_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    return venv / "bin"


def _env(tmp_path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "PYTHONPATH",
            "VIRTUAL_ENV",
            "REDIS_URL",
            "LABEL_STUDIO_URL",
            "LABEL_STUDIO_API_KEY",
            "BASIC_AUTH_USER",
            "BASIC_AUTH_PASS",
        )
    }
    return {**env, "MODEL_DIR": str(tmp_path / "model"), "HF_HUB_OFFLINE": "1"}


@pytest.mark.slow
@pytest.mark.labelstudio
def test_installed_wheel_serves_connects_and_simulates(wheel_venv, label_studio, tmp_path):
    """From a folder without the sources: `labelcast serve --lazy-encoder` answers /health,
    `labelcast connect --config one_finding` sets the shipped config on a real Label Studio
    project and registers the backend, and `labelcast simulate` prints its table."""
    env, cwd = _env(tmp_path), tmp_path
    where = subprocess.run(
        [str(wheel_venv / "python"), "-c", "import backend; print(backend.__file__)"],
        cwd=cwd,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert str(wheel_venv.parent) in where and str(PROJECT_ROOT) not in where, where

    port = free_port()
    log = open(tmp_path / "serve.log", "wb")
    server = subprocess.Popen(
        [str(wheel_venv / "labelcast"), "serve", "--lazy-encoder", "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        backend_url = f"http://127.0.0.1:{port}"
        try:
            wait_http(backend_url + "/health", timeout=120, process=server)
        except (RuntimeError, TimeoutError) as exc:
            pytest.fail(f"{exc}:\n{(tmp_path / 'serve.log').read_text(errors='replace')[-3000:]}")
        assert requests.get(backend_url + "/health", timeout=10).json()["status"] == "UP"

        headers = {"Authorization": f"Token {label_studio['token']}"}
        pid = requests.post(
            f"{label_studio['url']}/api/projects", json={"title": "wheel"}, headers=headers, timeout=30
        ).json()["id"]
        connect = subprocess.run(
            [
                str(wheel_venv / "labelcast"),
                "connect",
                "--label-studio",
                label_studio["url"],
                "--api-key",
                label_studio["token"],
                "--project",
                str(pid),
                "--backend-url",
                backend_url,
                "--config",
                "one_finding",
            ],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert connect.returncode == 0, connect.stdout + connect.stderr
        assert "labeling config: FIXED" in connect.stdout and "ML backend: FIXED" in connect.stdout
        project = requests.get(f"{label_studio['url']}/api/projects/{pid}", headers=headers, timeout=30).json()
        shipped = (PROJECT_ROOT / "plugin_config" / "one_finding.xml").read_text()
        assert project["label_config"].strip() == shipped.strip()
    finally:
        stop_process(server)
        log.close()

    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 60)
    np.savez(tmp_path / "data.npz", X=rng.standard_normal((120, 4)) + y[:, None], y=y)
    simulate = subprocess.run(
        [str(wheel_venv / "labelcast"), "simulate", "--data", "data.npz", "--checkpoints", "40,80"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert simulate.returncode == 0, simulate.stdout + simulate.stderr
    assert "realised with all 120 rows" in simulate.stdout, simulate.stdout
