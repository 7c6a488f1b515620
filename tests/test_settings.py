"""Tests of backend.settings."""

import pathlib

import pytest

from backend.exceptions import SettingsError
from backend.readiness import MIN_LABELS
from backend.settings import DEFAULT_TARGET_AUC, SAMPLING_MODES, ProjectSettings, Settings, parse_extra_params


def test_defaults_from_empty_env():
    """An empty environment gives the documented defaults."""
    settings = Settings.from_env({})
    assert settings.target_auc == DEFAULT_TARGET_AUC == 0.90
    assert settings.redis_url is None and settings.min_labels == MIN_LABELS == 30
    assert settings.model_dir == pathlib.Path("labelcast-data")


def test_reads_every_variable():
    """Each documented variable lands in its field; empty strings count as unset."""
    env = {
        "LABEL_STUDIO_URL": "http://ls:8080/",
        "LABEL_STUDIO_API_KEY": "k",
        "MODEL_DIR": "/m",
        "ENCODER": "rad-dino",
        "TARGET_AUC": "0.85",
        "MIN_LABELS": "40",
        "REDIS_URL": "redis://r:6379/0",
        "BASIC_AUTH_USER": "u",
        "BASIC_AUTH_PASS": "p",
        "DEVICE": "cpu",
        "LOG_LEVEL": "debug",
        "POSITIVE": "",
    }
    s = Settings.from_env(env)
    assert (s.label_studio_url, s.label_studio_api_key, s.model_dir, s.encoder) == (
        "http://ls:8080",
        "k",
        pathlib.Path("/m"),
        "rad-dino",
    )
    assert (s.target_auc, s.min_labels, s.redis_url, s.device, s.log_level) == (
        0.85,
        40,
        "redis://r:6379/0",
        "cpu",
        "DEBUG",
    )


@pytest.mark.parametrize(
    "env, fragment",
    [
        pytest.param({"TARGET_AUC": "1.2"}, "TARGET_AUC must be a number strictly between 0.5 and 1", id="auc-high"),
        pytest.param({"TARGET_AUC": "high"}, "TARGET_AUC", id="auc-text"),
        pytest.param({"MIN_LABELS": "1"}, "MIN_LABELS must be an integer >= 2", id="min-labels"),
        pytest.param({"LOG_LEVEL": "loud"}, "LOG_LEVEL", id="log-level"),
        pytest.param({"BASIC_AUTH_USER": "u"}, "BASIC_AUTH_PASS", id="half-auth"),
    ],
)
def test_bad_values_name_the_variable(env, fragment):
    """A bad value raises SettingsError naming the variable and what is allowed."""
    with pytest.raises(SettingsError, match=fragment):
        Settings.from_env(env)


def test_project_overrides():
    """extra_params override target_auc, positive, min_labels and sampling for one project only."""
    base = Settings()
    project = base.for_project('{"target_auc": 0.92, "positive": "Effusion", "min_labels": 50, "sampling": "random"}')
    assert project == ProjectSettings(target_auc=0.92, min_labels=50, positive="Effusion", sampling="random")
    assert base.target_auc == 0.90


def test_a_project_without_extra_params_gets_the_environment_defaults():
    """Empty extra_params: the environment's target and minimum, sampling "mixed"."""
    base = Settings.from_env({"TARGET_AUC": "0.8", "MIN_LABELS": "40"})
    for empty in ("", None, {}):
        assert base.for_project(empty) == ProjectSettings(
            target_auc=0.8, min_labels=40, positive=None, sampling="mixed"
        )
    assert SAMPLING_MODES == ("uncertainty", "random", "mixed")


@pytest.mark.parametrize(
    "params, fragment",
    [
        pytest.param(
            {"target_auc": 1.0}, "target_auc must be a number strictly between 0.5 and 1, got 1.0", id="auc-1"
        ),
        pytest.param({"target_auc": 0.5}, "strictly between 0.5 and 1", id="auc-chance"),
        pytest.param({"target_auc": "nan"}, "target_auc", id="auc-nan"),
        pytest.param({"target_auc": True}, "target_auc", id="auc-bool"),
        pytest.param({"min_labels": 1}, "min_labels must be an integer >= 2, got 1", id="min-labels-1"),
        pytest.param({"min_labels": 12.5}, "min_labels must be an integer", id="min-labels-float"),
        pytest.param({"positive": ""}, "positive must be a choice value", id="positive-empty"),
        pytest.param(
            {"sampling": "active"},
            "sampling must be one of uncertainty, random, mixed, got 'active'",
            id="sampling-unknown",
        ),
    ],
)
def test_bad_project_values_name_the_key_and_the_range(params, fragment):
    """Each extra_params value is checked once, with its key, the value and what is allowed."""
    with pytest.raises(SettingsError, match=fragment):
        Settings().for_project(params)


def test_the_target_range_is_the_same_everywhere(capsys):
    """The settings, a project, `labelcast simulate --target` and the forecast refuse the same
    targets (0.5 and 1 excluded) and accept the same ones."""
    from backend.cli import main
    from backend.forecast import forecast

    for bad in (0.5, 1.0, 1.2):
        with pytest.raises(SettingsError):
            Settings(target_auc=bad)
        with pytest.raises(SettingsError):
            Settings().for_project({"target_auc": bad})
        with pytest.raises(ValueError, match="strictly between 0.5 and 1"):
            forecast([[0.0]] * 4, [0, 1, 0, 1], target_auc=bad)
        assert main(["simulate", "--data", "missing.npz", "--target", str(bad)]) == 2
        assert "--target must be a number strictly between 0.5 and 1" in capsys.readouterr().err
    assert Settings(target_auc=0.51).for_project({"target_auc": 0.99}).target_auc == 0.99


def test_unknown_extra_params_key_is_refused():
    """A typo in extra_params is reported with the allowed keys."""
    with pytest.raises(SettingsError, match="target_acu.*allowed: target_auc, positive, min_labels, sampling"):
        parse_extra_params({"target_acu": 0.9})


def test_redacted_hides_secrets():
    """redacted() masks the API key, the basic-auth password and Redis credentials."""
    s = Settings(
        label_studio_api_key="secret",
        basic_auth_user="u",
        basic_auth_pass="pw",
        redis_url="redis://user:pw@host:6379/0",
    )
    text = str(s.redacted())
    assert "secret" not in text and "pw@" not in text and "'pw'" not in text


def test_a_label_studio_url_that_parsers_disagree_on_fails_at_start():
    """LABEL_STUDIO_URL with user info or a backslash is refused when the settings are read."""
    for url in ("http://user:pw@ls:8080", "http://ls:8080\\@other:9000", "http://ls:99999"):
        with pytest.raises(SettingsError, match="LABEL_STUDIO_URL"):
            Settings.from_env({"LABEL_STUDIO_URL": url})


def test_a_bad_label_studio_url_of_a_project_fails_its_downloads_only():
    """A client for an unusable Label Studio URL (a project record from before) is built; its
    media downloads are image errors."""
    from backend.exceptions import ImageFetchError
    from backend.labelstudio.client import LabelStudioClient

    client = LabelStudioClient("http://ls:8080\\@other:9000", None)
    with pytest.raises(ImageFetchError, match="backslash"):
        client.fetch_image("/data/upload/1/x.png", 1)


def test_sampling_setting_is_validated():
    """SAMPLING and the project's sampling accept uncertainty|random|mixed (default mixed);
    anything else fails with a message naming the value."""
    from backend.exceptions import SettingsError
    from backend.settings import Settings

    assert Settings.from_env({}).sampling == "mixed"
    assert Settings.from_env({"SAMPLING": "Random"}).sampling == "random"
    assert Settings().for_project({"sampling": "uncertainty"}).sampling == "uncertainty"
    with pytest.raises(SettingsError, match="SAMPLING must be one of .*'sorted'"):
        Settings.from_env({"SAMPLING": "sorted"})
    with pytest.raises(SettingsError, match="sampling must be one of"):
        Settings().for_project({"sampling": 3})


def test_random_start_setting_is_validated():
    """RANDOM_START and the project's random_start accept whole numbers >= 0 (default 20);
    anything else fails naming the value."""
    from backend.exceptions import SettingsError
    from backend.settings import DEFAULT_RANDOM_START, Settings

    assert Settings.from_env({}).random_start == DEFAULT_RANDOM_START == 20
    assert Settings.from_env({"RANDOM_START": "0"}).random_start == 0
    assert Settings().for_project({"random_start": 100}).random_start == 100
    assert Settings(random_start=20).for_project(None).random_start == 20
    with pytest.raises(SettingsError, match="RANDOM_START must be an integer >= 0, got '-5'"):
        Settings.from_env({"RANDOM_START": "-5"})
    for bad in (2.5, "many", True):
        with pytest.raises(SettingsError, match="random_start must be an integer >= 0"):
            Settings().for_project({"random_start": bad})
