"""Configuration: CAMPAIGNKIT_ environment variables (nested with __), campaignkit.toml, .env, a secrets dir.

Precedence, highest first: arguments, environment, .env, secrets directory, TOML file, defaults.
``settings_reading()`` makes a Settings class that reads only some of them (the ck_ test fixtures read none).
"""

from __future__ import annotations

import functools
import ipaddress
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, cast, get_args
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from .errors import ConfigurationError

DEFAULT_VAR_DIR = Path("var")
# The sources a Settings class may read besides its arguments (see settings_reading).
SettingsSource = Literal["environment", "dotenv", "secrets", "toml"]
SETTINGS_SOURCES: tuple[SettingsSource, ...] = get_args(SettingsSource)
# Variables that say where settings are rather than what they are: read from the environment, then .env.
SECRETS_DIR_VARIABLE = "CAMPAIGNKIT_SECRETS_DIR"
CONFIG_VARIABLE = "CAMPAIGNKIT_CONFIG"
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
        default=60, gt=0, description="How often the campaign kinds' digest jobs gather pending items into emails."
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
    session_idle_minutes: int = Field(default=30, ge=1, le=24 * 60, description="A console session ends after "
                                      "this long without a request.")
    session_hours: int = Field(default=12, ge=1, le=24 * 30, description="A console session ends this long after "
                               "sign-in, however active.")
    sign_in_lockout_failures: int = Field(default=5, ge=1, le=100, description="Failed sign-ins in a row that lock "
                                          "an account for sign_in_lockout_minutes.")
    sign_in_lockout_minutes: int = Field(default=15, ge=1, le=24 * 60, description="How long a locked account "
                                         "refuses every sign-in, its right password included.")
    trusted_proxies: list[ProxyAddress] = Field(
        default_factory=list, description="Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For "
        "and X-Forwarded-Proto are believed; empty: those headers are ignored and the client is the peer address.")


def check_issuer(value: str) -> str:
    if not value:
        return value
    parts = urlsplit(value)
    loopback = (parts.hostname or "").lower() == "localhost" or _is_loopback_address(parts.hostname or "")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ValueError("must be an https:// URL (plain http:// only on a loopback host, for tests)")
    if parts.query or parts.fragment:
        raise ValueError("must have no query or fragment")
    return value


def _is_loopback_address(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


ConsoleRole = Literal["admin", "operator", "auditor"]  # core/accounts/roles.py Role, which settings may not import


class OidcSettings(BaseModel):
    """Single sign-on to the console with OpenID Connect (docs/accounts.md#single-sign-on); off without an issuer."""

    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, not a silent default

    issuer: Annotated[str, AfterValidator(check_issuer)] = Field(
        default="", description="The provider's issuer URL, exactly as its ID tokens name it; its "
        "/.well-known/openid-configuration is read from there. Empty: single sign-on is off.")
    client_id: str = Field(default="", description="campaignkit's client id at the provider.")
    client_secret: SecretStr | None = Field(
        default=None, description="The client's secret (client_secret_basic); unset for a public client, which "
        "PKCE protects. Set it in the environment or the secrets directory, not in campaignkit.toml.")
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"],
                              description="Scopes asked for; openid is always among them.")
    name_claim: str = Field(
        default="email", description="The ID token claim that names the local account at its first sign-in "
        "(afterwards the account is found by the provider's subject, sub).")
    roles_claim: str = Field(
        default="groups", description="The ID token claim listing the person's groups or roles (a list or one "
        "string); a dotted path (realm_access.roles) reaches into an object.")
    role_map: dict[str, ConsoleRole] = Field(
        default_factory=dict, description="Claim value to console role (admin, operator, auditor), e.g. "
        '{"ck-admins": "admin"}. Several matching values give the most powerful of their roles.')
    default_role: ConsoleRole | None = Field(
        default=None, description="The role of someone whose claim maps to none; unset: their sign-in is refused "
        "(and audited as Login Failed).")
    button_label: str = Field(
        default="single sign-on", max_length=60, description='The sign-in page\'s button reads "Sign in with '
        '<button_label>".')
    ca_file: Path | None = Field(
        default=None, description="PEM bundle of a private CA for the provider's certificate; default: the "
        "system's CAs.")
    timeout_seconds: float = Field(default=10, gt=0, le=120, description="Timeout of each call to the provider.")

    @property
    def enabled(self) -> bool:
        return bool(self.issuer)

    @model_validator(mode="after")
    def _complete(self) -> OidcSettings:
        if self.issuer and not self.client_id:
            raise ValueError("client_id must be set along with issuer")
        if "openid" not in self.scopes:
            self.scopes = ["openid", *self.scopes]
        return self


class DefinitionSettings(BaseModel):
    """Limits on campaign definition files, checked while they are read: a hostile file (an alias bomb, deep
    nesting) is refused in bounded time and memory, before anything is stored."""

    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, not a silent default

    max_file_bytes: int = Field(
        default=256 * 1024, ge=1024, le=16 * 1024 * 1024, description="Largest definition file; a larger one is "
        "refused unread.")
    max_depth: int = Field(
        default=32, ge=4, le=100, description="Deepest nesting of lists and mappings, aliases expanded.")
    max_aliases: int = Field(default=100, ge=0, le=10_000, description="Most YAML aliases (*name) in one file.")
    max_nodes: int = Field(
        default=50_000, ge=100, le=5_000_000, description="Most values (texts, numbers, lists, mappings) in one "
        "definition, aliases expanded: what stops an alias bomb.")
    max_string_chars: int = Field(
        default=64 * 1024, ge=256, le=16 * 1024 * 1024, description="Longest text value or key.")
    max_total_chars: int = Field(
        default=1024 * 1024, ge=1024, le=64 * 1024 * 1024, description="Most characters of text in one definition, "
        "aliases expanded: bounds what a definition stores.")
    files_dir: Path = Field(
        default=Path("definition-files"), description="The only folder whose files a definition sent through the "
        "API or the console may name (audience.path, relative to it; absolute paths and .. are refused); a "
        "relative path is taken under var_dir.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CAMPAIGNKIT_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="forbid",
    )
    # The sources besides the arguments that this class reads; settings_reading() makes classes reading fewer.
    read_sources: ClassVar[frozenset[str]] = frozenset(SETTINGS_SOURCES)

    var_dir: Path = Field(default=DEFAULT_VAR_DIR, description="Where the embedded database and outbox live.")
    database_url: str = Field(default="", description="SQLAlchemy URL; default: SQLite file under var_dir.")
    secret_key: StrongSecret | None = Field(
        default=None, description="Signs links (HMAC-SHA256); created by `campaignkit init`. At least 32 random "
        "characters.")
    previous_secret_keys: list[StrongSecret] = Field(
        default_factory=list, description="Keys replaced by secret_key: links they signed keep working until they "
        "expire. Rotate by moving secret_key here and setting a new one.")
    api_token: StrongSecret | None = Field(
        default=None, description="Deprecated: one shared bearer token for the JSON API, which now only reads "
        "(as `api`); give each person and script a personal token instead (`campaignkit token create`, "
        "docs/accounts.md). At least 32 random characters.")
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
    oidc: OidcSettings = Field(default_factory=OidcSettings)
    definitions: DefinitionSettings = Field(default_factory=DefinitionSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        read = getattr(settings_cls, "read_sources", frozenset(SETTINGS_SOURCES))
        variables = [source for name, source in (("environment", env_settings), ("dotenv", dotenv_settings))
                     if name in read]
        # Taken before the secrets directory and the TOML file are found: which ones depends on them.
        locations = location_variables(variables)
        toml_path = config_file_path(locations) if "toml" in read else None
        toml = TomlConfigSettingsSource(settings_cls, toml_file=toml_path) if toml_path is not None else None
        sources: list[PydanticBaseSettingsSource] = [init_settings, *variables]
        if "secrets" in read:
            var_dir = _var_dir_in_effect(settings_cls, [init_settings, *variables], toml)
            secrets_dir = default_secrets_dir(var_dir, locations)
            if secrets_dir.is_dir():
                # One file per setting, named as the setting (secret_key, api_token), without the env prefix.
                sources.append(_SecretsSource(settings_cls, secrets_dir=secrets_dir, env_prefix=""))
        if toml is not None:
            sources.append(toml)
        return tuple(sources)

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.var_dir / 'campaignkit.db').as_posix()}"

    def plugin_config(self, name: str) -> dict[str, Any]:
        return self.plugins.config.get(name, {})


class _SecretsSource(SecretsSettingsSource):
    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        if "var_dir" in data:
            # The directory was found through var_dir; a different one read from it would leave the two apart.
            raise ValueError(f"var_dir cannot be set in the secrets directory ({self.secrets_dir}), which is found "
                             "through it; set it in the environment, .env or the TOML file")
        return data


def _var_dir_in_effect(settings_cls: type[BaseSettings], higher: Sequence[PydanticBaseSettingsSource],
                       toml: TomlConfigSettingsSource | None) -> Path:
    """The var_dir the settings will have, from the sources that rank above the secrets directory or below it.

    The secrets directory itself cannot hold var_dir (see _SecretsSource), so this is the final value."""
    field = settings_cls.model_fields["var_dir"]
    for source in higher:
        value, _, _ = source.get_field_value(field, "var_dir")
        if value is None and not isinstance(source, EnvSettingsSource):
            value = source().get("var_dir")  # the arguments' source answers only through its call
        if value is not None:
            return Path(str(value))
    if toml is not None and toml.toml_data.get("var_dir") is not None:
        return Path(str(toml.toml_data["var_dir"]))
    return DEFAULT_VAR_DIR


def location_variables(sources: Sequence[PydanticBaseSettingsSource] | None = None) -> dict[str, str]:
    """CAMPAIGNKIT_SECRETS_DIR and CAMPAIGNKIT_CONFIG from the first of ``sources`` (environment, .env) that sets
    them, by upper-case name; by default from the process environment, then ./.env, as load_settings reads them.

    They are taken out of a .env source, which would otherwise refuse them as unknown settings."""
    if sources is None:
        sources = [EnvSettingsSource(Settings), DotEnvSettingsSource(Settings)]
    found: dict[str, str] = {}
    for source in sources:
        env_vars = getattr(source, "env_vars", {})
        for name in (SECRETS_DIR_VARIABLE, CONFIG_VARIABLE):
            # Names are matched as the settings source matches them: not case-sensitive, lower-cased.
            key = name.lower()
            value = env_vars.pop(key, None) if isinstance(source, DotEnvSettingsSource) else env_vars.get(key)
            if value and name not in found:  # empty is unset, as for the environment variable before
                found[name] = value
    return found


def default_secrets_dir(var_dir: Path, variables: Mapping[str, str] | None = None) -> Path:
    """CAMPAIGNKIT_SECRETS_DIR, else <var_dir>/secrets, with var_dir the one the settings have.

    ``variables``: the location variables in effect (location_variables); by default the process environment's,
    then .env's."""
    explicit = (location_variables() if variables is None else variables).get(SECRETS_DIR_VARIABLE)
    return Path(explicit) if explicit else Path(var_dir) / "secrets"


def config_file_path(variables: Mapping[str, str] | None = None) -> Path | None:
    """CAMPAIGNKIT_CONFIG (environment, then .env), else ./campaignkit.toml if there is one."""
    explicit = (location_variables() if variables is None else variables).get(CONFIG_VARIABLE)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigurationError(f"{CONFIG_VARIABLE}: no such file: {path}")
        return path
    default = Path("campaignkit.toml")
    return default if default.is_file() else None


@functools.cache
def _settings_class(sources: frozenset[str]) -> type[Settings]:
    # Named and placed like Settings so that reprs and error messages read the same.
    namespace = {"__module__": __name__, "__qualname__": "Settings", "read_sources": sources}
    return cast(type[Settings], type("Settings", (Settings,), namespace))


def settings_reading(*sources: SettingsSource) -> type[Settings]:
    """A Settings class that reads its arguments and only the sources named: "environment" (CAMPAIGNKIT_
    variables), "dotenv" (./.env), "secrets" (<var_dir>/secrets or CAMPAIGNKIT_SECRETS_DIR), "toml"
    (CAMPAIGNKIT_CONFIG or ./campaignkit.toml). With none, nothing of the machine or the working directory gets
    in: the ck_ test fixtures build their settings this way."""
    unknown = [source for source in sources if source not in SETTINGS_SOURCES]
    if unknown:
        raise ValueError(f"unknown settings source {unknown[0]!r}; one of {', '.join(SETTINGS_SOURCES)}")
    return _settings_class(frozenset(sources))


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
