"""The project's own rules, checked by `make test`: ruff (lint and format), mypy on the whole
backend package, and DESIGN.md's layers (import-linter contracts in pyproject.toml)."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest

from conftest import PROJECT_ROOT

BIN = pathlib.Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed (it is in the test extra: pip install -e '.[test]')")
    return str(path)


def _run(argv: list[str], cwd: pathlib.Path = PROJECT_ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_ruff_lint_passes():
    """`ruff check` (the rules in pyproject.toml) finds nothing in the project."""
    result = _run([_tool("ruff"), "check", "--no-cache", "."])
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_leaves_every_file_as_it_is():
    """`ruff format --check`: every Python file is already formatted."""
    result = _run([_tool("ruff"), "format", "--check", "--no-cache", "."])
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_passes_on_the_backend_package():
    """mypy over the files pyproject.toml lists (the whole backend package) reports no error."""
    result = _run([_tool("mypy"), "--no-incremental", "--cache-dir", "/dev/null"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout


def test_layers_import_only_downward():
    """Every layer contract in pyproject.toml is kept."""
    result = _run([_tool("lint-imports"), "--no-cache"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    "module, upward, contract",
    [
        pytest.param("curve.py", "import torch", "numeric core", id="core-imports-torch"),
        pytest.param("probe.py", "from backend import store", "numeric core", id="core-imports-store"),
        pytest.param("images.py", "import flask", "images and encoders", id="images-import-flask"),
        pytest.param("store/_base.py", "from backend.app import errors", "store and jobs", id="store-imports-app"),
        pytest.param("labelstudio/config.py", "import torch", "labelstudio", id="labelstudio-imports-torch"),
        pytest.param("refit.py", "from backend.store import open_store", "refit", id="refit-imports-store"),
    ],
)
def test_an_upward_import_breaks_the_contract(tmp_path, module, upward, contract):
    """A copy of the project where one module imports upward fails lint-imports, naming the
    broken contract."""
    shutil.copytree(
        PROJECT_ROOT / "backend", tmp_path / "backend", ignore=shutil.ignore_patterns("__pycache__", "*.json", "*.xml")
    )
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path)
    path = tmp_path / "backend" / module
    path.write_text(path.read_text() + f"\n{upward}  # an upward import\n")
    result = _run([_tool("lint-imports"), "--no-cache"], cwd=tmp_path)
    assert result.returncode != 0, result.stdout
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(line.startswith(contract) for line in broken), result.stdout
