"""Configuration: CAMPAIGNKIT_ environment variables (nested with __), campaignkit.toml, .env, a secrets dir.

Precedence, highest first: arguments, environment, .env, secrets directory, TOML file, defaults.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from .errors import ConfigurationError

DEFAULT_VAR_DIR = Path("var")
MIN_KEY_LENGTH = 32
MIN_KEY_BITS = 96
MAKE_A_KEY = "make one with `campaignkit init` or `python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`"


def check_strong_secret(value: SecretStr) -> SecretStr:
    """Installation secrets (link key, API token, audit key) must be long random strings, not words or patterns.

    Randomness cannot be measured from one string; its character entropy bounds it from above, which is enough to
    refuse the keys people type (a repeated letter, a word, a short hex string).
    """
    text = value.get_secret_value()
    if len(text) < MIN_KEY_LENGTH:
        raise ValueError(f"must be at least {MIN_KEY_LENGTH} characters of random text; {MAKE_A_KEY}")
    counts = Counter(text).values()
    bits = len(text) * sum(n / len(text) * math.log2(len(text) / n) for n in counts)
    if bits < MIN_KEY_BITS:
        raise ValueError(f"is not random enough (about {bits:.0f} bits, at least {MIN_KEY_BITS} needed); {MAKE_A_KEY}")
    return value


StrongSecret = Annotated[SecretStr, AfterValidator(check_strong_secret)]


def check_proxy_address(value: str) -> str:
    # uvicorn silently turns anything it cannot parse into a literal that never matches: refuse it here instead.
    try:
        ipaddress.ip_network(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or a network such as 10.0.0.0/8") from None
    return value


ProxyAddress = Annotated[str, AfterValidator(check_proxy_address)]


class PluginSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, not a silent default

    enabled: list[str] | None = Field(
        default=None, description="Entry-point plugins to load; unset loads every installed one."
    )
    blocked: list[str] = Field(default_factory=list, description="Plugins never loaded, by name.")
    config: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="One table per registered name (channel, action, updater, sink, source), "
        "validated by that plugin's own model.",
    )


class WorkerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, not a silent default

    batch_size: int = Field(default=500, ge=1, le=10_000, description="Runs claimed per batch.")
    threads: int = Field(default=8, ge=1, le=256, description="Thread-pool size for plugin I/O.")
    lease_seconds: float = Field(default=300, gt=0, description="How long a claim holds before others reclaim.")
    step_timeout_seconds: float = Field(default=30, gt=0, description="Default timeout of one plugin call.")
    poll_seconds: float = Field(default=1.0, gt=0, description="Idle sleep between claims.")
    max_steps_per_claim: int = Field(
        default=100, ge=1, description="Guards against a run looping without ever waiting."
    )


class AuditSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, not a silent default

    task_events: bool = Field(default=False, description="Write System Task Started/Completed records.")
    sinks: list[str] = Field(default_factory=list, description="Audit sinks besides the database table.")
    checkpoint_seconds: float = Field(
        default=3600, gt=0, description="How often the scheduler signs a checkpoint of the audit chain's head.")
    checkpoint_file: Path | None = Field(
        default=None, description="Append-only file of signed checkpoints (JSON lines, 0600) to ship off the host; "
        "default <var_dir>/audit-checkpoints.jsonl.")


class SchedulerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, not a silent default

    misfire_grace_seconds: float = Field(
        default=3600, ge=0, description="A launch missed by less than this still happens at start-up; else missed."
    )
    sync_seconds: float = Field(default=15, gt=0, description="How often scheduled launches are synced into jobs.")
    audit_dispatch_seconds: float = Field(default=5, gt=0, description="How often audit sinks are fed.")
    digest_seconds: float = Field(
        default=60, gt=0, description="How often access-review digests gather pending items into emails."
    )
    retention_days: float | None = Field(
        default=None, gt=0, description="Prune step records of runs finished longer ago; unset keeps them."
    )


class WebSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, not a silent default

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    base_url: str = Field(default="http://127.0.0.1:8080", description="Public URL used in links.")
    rejection_window_seconds: float = Field(
        default=60, gt=0, le=86400, description="Refused requests (bad links, wrong API tokens) are counted per client "
        "address over this window: the first of each kind is audited at once, the rest as one record with a count.")
    max_rejections_per_window: int = Field(
        default=30, ge=1, description="A client refused this often in one window gets 429 for every link and API "
        "request until the window ends.")
    max_form_body_bytes: int = Field(
        default=8 * 1024, ge=1024, description="Largest request body of the recipients' pages (/review/...) and "
        "every other route outside the API; a decision form is a few hundred bytes. A larger declared body is "
        "refused with 413 unread, a streamed one when it reaches the limit.")
    max_api_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Largest request body of the JSON API (/api/...), refused with "
        "413 like max_form_body_bytes; checked after the bearer token.")
    max_header_bytes: int = Field(
        default=16 * 1024, ge=1024, description="Largest request line and headers of one request; larger ones are "
        "refused with 431 (400 when they arrive in pieces).")
    max_connections: int = Field(
        default=256, ge=2, description="Open connections (or requests in progress) at which new requests are "
        "answered 503 (uvicorn's limit_concurrency).")
    header_timeout_seconds: float = Field(
        default=10, gt=0, description="A connection that has not sent a complete request line and headers this "
        "long after it opened, or after its previous response, is closed (slow-header attacks).")
    trusted_proxies: list[ProxyAddress] = Field(
        default_factory=list, description="Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For "
        "and X-Forwarded-Proto are believed; empty: those headers are ignored and the client is the peer address.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CAMPAIGNKIT_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="forbid",
    )

    var_dir: Path = Field(default=DEFAULT_VAR_DIR, description="Where the embedded database and outbox live.")
    database_url: str = Field(default="", description="SQLAlchemy URL; default: SQLite file under var_dir.")
    secret_key: StrongSecret | None = Field(
        default=None, description="Signs links (HMAC-SHA256); created by `campaignkit init`. At least 32 random "
        "characters.")
    previous_secret_keys: list[StrongSecret] = Field(
        default_factory=list, description="Keys replaced by secret_key: links they signed keep working until they "
        "expire. Rotate by moving secret_key here and setting a new one.")
    api_token: StrongSecret | None = Field(
        default=None, description="Bearer token for the JSON API; created by `campaignkit init`. At least 32 random "
        "characters.")
    audit_key: StrongSecret | None = Field(
        default=None, description="Keys the audit chain (HMAC-SHA256); created by `campaignkit init`. Keep it "
        "outside the database, and the same on every host.")
    previous_audit_keys: list[StrongSecret] = Field(
        default_factory=list, description="Audit keys replaced by audit_key, still needed to verify the records "
        "they keyed.")
    template_dirs: list[Path] = Field(default_factory=list, description="Override bundled templates by path.")
    timezone: str = Field(default="UTC", description="Default time zone for schedules and windows.")
    trace_plugins: bool = Field(
        default=False,
        description="Log every hook call with its plugin, duration and outcome (logger campaignkit.trace).",
    )
    plugins: PluginSettings = Field(default_factory=PluginSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    web: WebSettings = Field(default_factory=WebSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        secrets_dir = default_secrets_dir()
        if secrets_dir.is_dir():
            from pydantic_settings import SecretsSettingsSource

            # One file per setting, named as the setting (secret_key, api_token), without the env prefix.
            sources.append(SecretsSettingsSource(settings_cls, secrets_dir=secrets_dir, env_prefix=""))
        toml_path = config_file_path()
        if toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.var_dir / 'campaignkit.db').as_posix()}"

    def plugin_config(self, name: str) -> dict[str, Any]:
        return self.plugins.config.get(name, {})


def default_secrets_dir() -> Path:
    """CAMPAIGNKIT_SECRETS_DIR, else <var_dir>/secrets (read before the settings exist, so from the environment)."""
    explicit = os.environ.get("CAMPAIGNKIT_SECRETS_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("CAMPAIGNKIT_VAR_DIR", DEFAULT_VAR_DIR)) / "secrets"


def config_file_path() -> Path | None:
    explicit = os.environ.get("CAMPAIGNKIT_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigurationError(f"CAMPAIGNKIT_CONFIG: no such file: {path}")
        return path
    default = Path("campaignkit.toml")
    return default if default.is_file() else None


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One line per problem: the dotted key and what is wrong with it."""
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in (prefix, *err["loc"]) if part != "")
        lines.append(f"{key or '(root)'}: {err['msg']}")
    return "; ".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Read settings from every source; a problem becomes one ConfigurationError naming the key."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigurationError(f"invalid configuration: {describe_validation_error(exc)}") from None
    except ValueError as exc:  # malformed TOML, JSON in an env var, unreadable .env
        raise ConfigurationError(f"invalid configuration: {exc}") from None
