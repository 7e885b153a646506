"""Settings from environment, .env, the secrets directory and campaignkit.toml, in that order of precedence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from campaignkit.core import ConfigurationError
from campaignkit.core.settings import load_settings

KEY = "Uo0cW3pZ-7nHq5VbL2xKm9RtE4yJd8aSf1gCi6Nw"  # random, as `campaignkit init` makes them


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: Any, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("CAMPAIGNKIT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.effective_database_url == "sqlite:///var/campaignkit.db"
    assert settings.audit.task_events is False and settings.secret_key is None


def test_sources_and_their_precedence(monkeypatch: Any, tmp_path: Path) -> None:
    (tmp_path / "campaignkit.toml").write_text('timezone = "Europe/Berlin"\n[worker]\nbatch_size = 10\nthreads = 3\n'
                                               '[audit]\ntask_events = true\n')
    (tmp_path / ".env").write_text("CAMPAIGNKIT_WORKER__THREADS=5\n")
    secrets = tmp_path / "var" / "secrets"
    secrets.mkdir(parents=True)
    (secrets / "secret_key").write_text(KEY)
    monkeypatch.setenv("CAMPAIGNKIT_WORKER__BATCH_SIZE", "20")
    settings = load_settings()
    assert settings.timezone == "Europe/Berlin" and settings.audit.task_events is True  # TOML
    assert settings.worker.threads == 5  # .env over TOML
    assert settings.worker.batch_size == 20  # environment over TOML
    assert settings.secret_key is not None and settings.secret_key.get_secret_value() == KEY
    assert KEY not in repr(settings)


def test_config_file_from_the_environment(monkeypatch: Any, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.toml"
    other.write_text('[plugins]\nblocked = ["email"]\n[plugins.config.smtp]\nhost = "mail"\n')
    monkeypatch.setenv("CAMPAIGNKIT_CONFIG", str(other))
    settings = load_settings()
    assert settings.plugins.blocked == ["email"] and settings.plugin_config("smtp") == {"host": "mail"}
    monkeypatch.setenv("CAMPAIGNKIT_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigurationError, match="CAMPAIGNKIT_CONFIG: no such file"):
        load_settings()


def test_an_unknown_key_in_the_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "campaignkit.toml").write_text("[worker]\nbatchsize = 10\n")
    with pytest.raises(ConfigurationError, match=r"worker\.batchsize: Extra inputs are not permitted"):
        load_settings()


@pytest.mark.parametrize("key, value, expected", [
    ("CAMPAIGNKIT_WORKER__BATCH_SIZE", "0", "worker.batch_size: Input should be greater than or equal to 1"),
    ("CAMPAIGNKIT_AUDIT__TASK_EVENTS", "perhaps", "audit.task_events: Input should be a valid boolean"),
    ("CAMPAIGNKIT_AUDIT__SINKS", "[not json", "invalid configuration"),
])
def test_invalid_values_name_the_key(monkeypatch: Any, key: str, value: str, expected: str) -> None:
    monkeypatch.setenv(key, value)
    with pytest.raises(ConfigurationError) as excinfo:
        load_settings()
    assert expected in str(excinfo.value) and excinfo.value.exit_code == 2


@pytest.mark.parametrize("key", ["secret_key", "api_token", "audit_key"])
@pytest.mark.parametrize("weak", ["short-but-random-Q7x", "k" * 48, "abababababababababababababababab", "0123" * 8])
def test_installation_secrets_must_be_long_and_random(key: str, weak: str, monkeypatch: Any, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError) as refused:
        load_settings(**{key: weak})
    message = str(refused.value)
    assert message.startswith(f"invalid configuration: {key}:") and "secrets.token_urlsafe" in message
    assert weak not in message  # a refused secret is never echoed
    assert load_settings(**{key: KEY}) is not None


def test_previous_keys_are_checked_like_the_current_ones(monkeypatch: Any, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=r"previous_secret_keys\.0"):
        load_settings(secret_key=KEY, previous_secret_keys=["k" * 40])
