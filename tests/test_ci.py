"""The suite's CI rule (tests/conftest.py): with CI=true a skip fails; otherwise its reason shows."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import PROJECT_ROOT


def _run_skipping_test(tmp_path, ci: bool) -> subprocess.CompletedProcess:
    (tmp_path / "test_needs_redis.py").write_text(
        "import pytest\n\n\ndef test_needs_redis():\n    pytest.skip('redis-server is not installed')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT / "tests"), str(PROJECT_ROOT)])
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "conftest",
            "-c",
            str(PROJECT_ROOT / "pyproject.toml"),
            "--rootdir",
            str(tmp_path),
            str(tmp_path / "test_needs_redis.py"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_skip_fails_under_ci(tmp_path):
    """CI=true turns a skipped test into a failure that still says why it skipped."""
    result = _run_skipping_test(tmp_path, ci=True)
    assert result.returncode == 1, result.stdout
    assert "1 failed" in result.stdout and "redis-server is not installed" in result.stdout


def test_a_skip_shows_its_reason_outside_ci(tmp_path):
    """Without CI a skip stays a skip, and the project's pytest options print its reason."""
    result = _run_skipping_test(tmp_path, ci=False)
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout and "SKIPPED" in result.stdout
    assert "redis-server is not installed" in result.stdout


def test_make_run_leaves_no_untracked_files():
    """The SQLite store `make run` creates in ./labelcast-data (DEFAULT_MODEL_DIR) is ignored by git."""
    from backend.settings import DEFAULT_MODEL_DIR

    result = subprocess.run(
        ["git", "check-ignore", "--no-index", f"{DEFAULT_MODEL_DIR}/labelcast.sqlite3"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, f"git does not ignore {DEFAULT_MODEL_DIR}/: {result.stdout}{result.stderr}"
