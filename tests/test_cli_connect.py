"""``labelcast connect`` and ``labelcast doctor`` against a real Label Studio 1.23.

Needs ``LABEL_STUDIO_BIN`` (set by ``.ci/run``). The backend is the test app (tiny encoder,
basic auth on) served by werkzeug in a thread.
"""

from __future__ import annotations

import threading

import pytest
import requests

from conftest import ONE_FINDING

USER, PASSWORD = "labelcast", "connect-test-pass"


@pytest.fixture
def auth_backend(tmp_path, tiny_encoder_spec, sqlite_store, monkeypatch):
    """The app with basic auth on, served on a free loopback port: its URL."""
    from werkzeug.serving import make_server

    from backend.app import EXTENSION, create_app
    from backend.jobs import ThreadJobs
    from backend.settings import Settings

    settings = Settings(
        model_dir=tmp_path / "model",
        encoder=tiny_encoder_spec,
        min_labels=10,
        basic_auth_user=USER,
        basic_auth_pass=PASSWORD,
    )
    jobs = ThreadJobs(settings, sqlite_store, isolate=False)
    app = create_app({"LABELCAST_SETTINGS": settings, "LABELCAST_STORE": sqlite_store, "LABELCAST_JOBS": jobs})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for name in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BASIC_AUTH_USER", USER)
    monkeypatch.setenv("BASIC_AUTH_PASS", PASSWORD)
    monkeypatch.setenv("ENCODER", tiny_encoder_spec)
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    app.extensions[EXTENSION].jobs.close()


def _new_project(label_studio, title: str) -> int:
    response = requests.post(
        f"{label_studio['url']}/api/projects",
        json={"title": title},
        headers={"Authorization": f"Token {label_studio['token']}"},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["id"]


def _hooks(label_studio, pid: int) -> list[dict]:
    return requests.get(
        f"{label_studio['url']}/api/webhooks",
        params={"project": pid},
        headers={"Authorization": f"Token {label_studio['token']}"},
        timeout=30,
    ).json()


def _cli(*argv) -> int:
    from backend.cli import main

    return main(list(argv))


@pytest.mark.labelstudio
def test_connect_registers_sets_config_and_authorizes_the_webhook(label_studio, auth_backend, capsys):
    """A fresh project gets the config, the ML backend and a webhook carrying basic auth."""
    pid = _new_project(label_studio, "connect")
    common = (
        "--label-studio",
        label_studio["url"],
        "--api-key",
        label_studio["token"],
        "--project",
        str(pid),
        "--backend-url",
        auth_backend,
    )
    assert _cli("connect", *common, "--config", "one_finding") == 0
    out = capsys.readouterr().out
    assert "labeling config: FIXED" in out and "ML backend: FIXED" in out, out
    hooks = [h for h in _hooks(label_studio, pid) if h["url"].startswith(auth_backend)]
    assert hooks and all(h["headers"].get("Authorization", "").startswith("Basic ") for h in hooks), hooks
    config = ONE_FINDING
    project = requests.get(
        f"{label_studio['url']}/api/projects/{pid}",
        headers={"Authorization": f"Token {label_studio['token']}"},
        timeout=30,
    ).json()
    assert project["label_config"].strip() == config.strip()

    # A second run finds everything in place and fixes nothing.
    assert _cli("connect", *common, "--config", "one_finding") == 0
    out = capsys.readouterr().out
    assert "FIXED" not in out, out
    assert "already registered" in out and "header already present" in out

    # The doctor agrees; then a webhook that lost its header is reported.
    assert _cli("doctor", *common) == 0, capsys.readouterr().out
    capsys.readouterr()
    headers = {"Authorization": f"Token {label_studio['token']}"}
    for hook in hooks:
        requests.patch(
            f"{label_studio['url']}/api/webhooks/{hook['id']}",
            headers=headers,
            json={"url": hook["url"], "headers": {}},
            timeout=30,
        ).raise_for_status()
    assert _cli("doctor", *common) == 1
    out = capsys.readouterr().out
    assert "lacks the basic-auth header" in out and "labelcast connect" in out, out

    # A deleted webhook is created again, with the header.
    for hook in hooks:
        requests.delete(
            f"{label_studio['url']}/api/webhooks/{hook['id']}", headers=headers, timeout=30
        ).raise_for_status()
    assert _cli("connect", *common) == 0
    assert "webhook: FIXED, created" in capsys.readouterr().out
    hooks = [h for h in _hooks(label_studio, pid) if h["url"].startswith(auth_backend)]
    assert len(hooks) == 1 and hooks[0]["headers"]["Authorization"].startswith("Basic "), hooks
    assert _cli("doctor", *common) == 0, capsys.readouterr().out


@pytest.mark.labelstudio
@pytest.mark.parametrize(
    "key, project, expected",
    [
        pytest.param("not-a-valid-token", None, "refused the API key (HTTP 401)", id="bad-key"),
        pytest.param(None, 999999, "project 999999 does not exist", id="missing-project"),
    ],
)
def test_connect_errors_are_one_line(label_studio, auth_backend, capsys, key, project, expected):
    """A bad key or a missing project ends with exit code 2 and one plain message."""
    pid = project or _new_project(label_studio, "connect errors")
    code = _cli(
        "connect",
        "--label-studio",
        label_studio["url"],
        "--api-key",
        key or label_studio["token"],
        "--project",
        str(pid),
        "--backend-url",
        auth_backend,
    )
    err = capsys.readouterr().err
    assert code == 2
    assert expected in err and "Traceback" not in err, err


def test_connect_to_unreachable_label_studio(capsys):
    """Nothing listening: exit code 2 and a message naming the URL (no Label Studio needed)."""
    from conftest import free_port

    url = f"http://127.0.0.1:{free_port()}"
    assert _cli("connect", "--label-studio", url, "--api-key", "x", "--project", "1") == 2
    assert f"cannot reach Label Studio at {url}" in capsys.readouterr().err


@pytest.mark.labelstudio
def test_connect_reports_a_backend_label_studio_cannot_reach(label_studio, capsys):
    """Registering a backend URL nobody serves fails with the ML_BLOCK_LOCAL_IP hint."""
    from conftest import free_port

    pid = _new_project(label_studio, "connect unreachable backend")
    code = _cli(
        "connect",
        "--label-studio",
        label_studio["url"],
        "--api-key",
        label_studio["token"],
        "--project",
        str(pid),
        "--backend-url",
        f"http://127.0.0.1:{free_port()}",
        "--config",
        "one_finding",
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "refused to add the ML backend" in err and "ML_BLOCK_LOCAL_IP" in err, err


def test_doctor_without_label_studio_reports_the_backend(auth_backend, capsys):
    """Backend up and the encoder folder present: exit 0; Label Studio is skipped."""
    assert _cli("doctor", "--backend-url", auth_backend) == 0
    out = capsys.readouterr().out
    assert "[ok  ] backend" in out and "[ok  ] encoder" in out and "[skip] Label Studio" in out, out
    assert "jobs: 0 queued, nothing running, 0 failed" in out and "None" not in out, out


def test_doctor_reports_basic_auth_that_differs_from_the_backend(auth_backend, monkeypatch, capsys):
    """The backend refuses our credentials: the doctor says they differ and exits 1."""
    monkeypatch.setenv("BASIC_AUTH_PASS", "not-the-backend-pass")
    assert _cli("doctor", "--backend-url", auth_backend) == 1
    assert "differ from the backend's" in capsys.readouterr().out


def test_doctor_reports_a_stopped_backend_and_missing_weights(monkeypatch, capsys):
    """Nothing on the port and an uncached preset: exit 1 with what to do for each."""
    from conftest import free_port

    monkeypatch.setenv("ENCODER", "hf:labelcast-test/not-downloaded")
    monkeypatch.setenv("HF_HUB_CACHE", "/nonexistent-hf-cache")
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.delenv("BASIC_AUTH_USER", raising=False)
    monkeypatch.delenv("BASIC_AUTH_PASS", raising=False)
    assert _cli("doctor", "--backend-url", f"http://127.0.0.1:{free_port()}") == 1
    out = capsys.readouterr().out
    assert "labelcast serve" in out and "hf download labelcast-test/not-downloaded" in out, out


def test_ssrf_refusal_names_the_label_studio_settings():
    """Label Studio's 403 'reserved network address' (seen with its defaults, and with only
    ML_BLOCK_LOCAL_IP=false) is explained with both settings."""
    from label_studio_sdk.core.api_error import ApiError

    from backend.commands.connect import _registration_hint

    refusal = ApiError(
        status_code=403,
        body={"status_code": 403, "detail": "URL resolves to a reserved network address (block: 127.0.0.0/8)"},
    )
    hint = _registration_hint(refusal, "http://127.0.0.1:9090")
    assert "HTTP 403: URL resolves to a reserved network address" in hint
    assert "SSRF_PROTECTION_ENABLED=false" in hint and "ML_BLOCK_LOCAL_IP=false" in hint


@pytest.mark.parametrize(
    "jobs, words",
    [
        pytest.param(
            {"kind": "thread", "refits_queued": 1, "embeds_queued": 2, "running": None, "failed": 0},
            "3 queued, nothing running, 0 failed",
            id="thread-idle",
        ),
        pytest.param(
            {"kind": "thread", "refits_queued": 0, "embeds_queued": 0, "running": "refit:9", "failed": 1},
            "0 queued, running refit:9, 1 failed",
            id="thread-busy",
        ),
        pytest.param({"queued": 4, "running": 2, "failed": 0}, "4 queued, 2 running, 0 failed", id="rq"),
        pytest.param({"queued": 0, "running": 0, "failed": 0}, "0 queued, nothing running, 0 failed", id="rq-idle"),
    ],
)
def test_doctor_says_the_jobs_in_words(jobs, words):
    """Either queue's /metrics jobs read as words; no "None running"."""
    from backend.commands.doctor import jobs_summary

    assert jobs_summary(jobs) == words


def test_subcommand_help_has_no_rest_markup(capsys):
    """`labelcast COMMAND --help` shows `code`, not reST's ``code`` or :mod:`name`."""
    from backend.cli import COMMANDS, main

    helps = {}
    for argv in [[name, "--help"] for name in COMMANDS] + [["data", "tb-signs", "--help"]]:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0
        helps[" ".join(argv[:-1])] = capsys.readouterr().out
    for name, text in helps.items():
        assert "``" not in text and ":mod:`" not in text and ":func:`" not in text, (name, text)
    assert "`labelcast serve`" in helps["serve"]
