"""Settings, read once from `opsroom.toml` plus `OPSROOM_<SECTION>_<KEY>` overrides.

Every other module receives a frozen `Settings`; nothing reads the environment afterwards.
Unknown keys and bad values are `ConfigError`s naming the key path (`runner.timeout`).
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from opsroom.errors import ConfigError

DEFAULT_CONFIG_NAME = "opsroom.toml"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_SOURCE = re.compile(r"^(?:env:[A-Za-z_][A-Za-z0-9_]*|file:/.+|vault:[^#\s]+#[^#\s]+)$")


def parse_duration(value: object) -> float:
    """Seconds from `90`, `"90s"`, `"15m"`, `"2h"`, `"1d"`; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError('expected a duration like 90, "90s", "15m" or "2h"')
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError(f'expected a duration like 90, "90s", "15m" or "2h", got {value!r}')
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BotSettings(_Section):
    """`[bot]`: how the bot presents itself."""

    name: str = "ops"
    prefix: str = "!"


class CatalogSettings(_Section):
    """`[catalog]`: where the scripts live."""

    path: str | None = None  # None: the bundled example catalog
    git: str | None = None
    branch: str = "main"
    poll_interval: float = 60.0

    @field_validator("poll_interval", mode="before")
    @classmethod
    def _duration(cls, v: object) -> float:
        return parse_duration(v)


class StoreSettings(_Section):
    """`[store]`: the database of jobs and audit."""

    url: str = "sqlite:///opsroom.db"


def _issuer_url(text: str) -> str:
    # Plain http only on loopback (a test or a local IdP): tokens must not cross a network bare.
    scheme, sep, rest = text.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    loopback = host in ("localhost", "127.0.0.1", "[::1]")
    if (
        not sep
        or not host
        or scheme not in ("https", "http")
        or (scheme == "http" and not loopback)
    ):
        raise ValueError(
            f"expected an https:// issuer URL (http:// only on localhost), got {text!r}"
        )
    if "?" in text or "#" in text:
        raise ValueError(f"an issuer URL has no query or fragment, got {text!r}")
    return text


def _client_secret(text: str) -> str:
    # The bad value is never echoed: it may well be the secret pasted inline.
    try:
        return _reference(text)
    except ValueError:
        raise ValueError(
            'expected a reference like "env:OIDC_CLIENT_SECRET" or "file:/path", '
            "never the secret itself"
        ) from None


class OidcSettings(_Section):
    """`[web.oidc]`: single sign-on with an OpenID Connect provider."""

    issuer: Annotated[str, AfterValidator(_issuer_url)]
    client_id: Annotated[str, Field(min_length=1)]
    # A reference (env:/file:), resolved at use; None: a public client (PKCE only).
    client_secret: Annotated[str, AfterValidator(_client_secret)] | None = None
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    username_claim: Annotated[str, Field(min_length=1)] = "preferred_username"
    allowed_domains: tuple[str, ...] | None = None  # None: any; else the email's domain
    allowed_groups: tuple[str, ...] | None = None  # None: any; else one of `groups_claim`
    groups_claim: Annotated[str, Field(min_length=1)] = "groups"
    button_label: Annotated[str, Field(min_length=1)] = "Sign in with SSO"
    timeout: float = 10.0  # each request to the provider

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, v: object) -> float:
        return parse_duration(v)

    @field_validator("scopes", mode="after")
    @classmethod
    def _openid_scope(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if "openid" not in v:
            raise ValueError('scopes must include "openid"')
        return v


class WebSettings(_Section):
    """`[web]`: the console and web chat."""

    listen: str = "127.0.0.1:8080"
    base_url: str | None = None
    shutdown_grace: float = 30.0  # on SIGTERM, how long running jobs may finish before cancel
    session_ttl: float = 43200.0  # how long a login lasts (12 h)
    oidc: OidcSettings | None = None  # None: local accounts only

    @field_validator("shutdown_grace", "session_ttl", mode="before")
    @classmethod
    def _duration(cls, v: object) -> float:
        return parse_duration(v)


class RunnerSettings(_Section):
    """`[runner]`: how scripts are run."""

    concurrency: int = Field(default=8, ge=1)  # jobs running at once, whole installation
    per_user: int = Field(default=4, ge=1)  # jobs one requester may have running at once
    timeout: float = 3600.0  # default per-job timeout, seconds
    max_timeout: float = 86400.0
    kill_grace: float = 5.0
    foreground_seconds: float = 5.0
    output_cap: int = Field(default=10_000_000, ge=1024)  # bytes of output kept per job
    attachment_cap: int = Field(default=20_000_000, ge=1024)  # bytes per attached file
    pwsh: str = "pwsh"
    python: str | None = None  # None: the interpreter running opsroom
    bash: str = "bash"
    env_passthrough: tuple[str, ...] = ()
    env_cache: str | None = None  # PEP 723 environments; default ~/.cache/opsroom/envs

    @field_validator("timeout", "max_timeout", "kill_grace", "foreground_seconds", mode="before")
    @classmethod
    def _duration(cls, v: object) -> float:
        return parse_duration(v)


def _secret_name(name: str) -> str:
    if not _ENV_NAME.match(name):
        raise ValueError("a secret name must look like an environment variable name (A-Z, 0-9, _)")
    return name


def _secret_source(text: str) -> str:
    # The bad value is never echoed: it may well be the password pasted inline.
    if not _SECRET_SOURCE.match(text):
        raise ValueError(
            'expected "env:NAME", "file:/absolute/path" or "vault:<path>#<key>" '
            "(secrets are referenced, never written inline)"
        )
    return text


def _reference(text: str) -> str:
    if not (text.startswith("env:") and _ENV_NAME.match(text[4:])) and not (
        text.startswith("file:") and len(text) > len("file:")
    ):
        raise ValueError(
            'expected a reference like "env:VAULT_TOKEN" or "file:/path", never the token itself'
        )
    return text


class VaultSettings(_Section):
    """`[vault]`: the HashiCorp Vault / OpenBao server behind `vault:` secrets."""

    url: str | None = None
    token: Annotated[str, AfterValidator(_reference)] = "env:VAULT_TOKEN"  # noqa: S105 (a reference)
    namespace: str | None = None
    ca_cert: str | None = None  # PEM bundle to trust; None: the system store
    timeout: float = 10.0
    kv_version: Literal[1, 2] = 2

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, v: object) -> float:
        return parse_duration(v)


def strip_newline(text: str) -> str:
    """`text` without one trailing newline (`\\n` or `\\r\\n`), as editors leave in files."""
    return text.removesuffix("\n").removesuffix("\r") if text.endswith("\n") else text


def resolve_reference(ref: str, environ: Mapping[str, str] | None = None) -> str:
    """The value behind `env:NAME` or `file:PATH`; ConfigError (never the value) otherwise."""
    environ = os.environ if environ is None else environ
    kind, _, target = ref.partition(":")
    if kind == "env" and target:
        value = environ.get(target)
        if value is None:
            raise ConfigError(f"{ref}: environment variable {target} is not set")
        return value
    if kind == "file" and target:
        try:
            text = Path(target).read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{ref}: cannot read {target}: {e.strerror or e}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{ref}: {target} is not UTF-8 text") from None
        return strip_newline(text)
    raise ConfigError(
        'expected a reference like "env:NAME" or "file:PATH" (never the value itself)'
    )


# -- policy: [[roles]], [groups], [ldap] (SPEC §6.1) ----------------------------------------


def _invalid(message: str) -> PydanticCustomError:
    # A custom error keeps the message as written (no "Value error, " prefix).
    return PydanticCustomError("opsroom_invalid", message)


def scalar_text(value: object) -> str:
    """A parameter value as `where` limits compare it: `true`/`false` for booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _principal_pattern(text: str) -> str:
    adapter, sep, ident = text.partition(":")
    if not sep or not adapter or not ident or text != text.strip():
        raise _invalid(
            "expected a principal like slack:U024BE7LH, a glob like slack:U*, "
            f"or group:<name>, got {text!r}"
        )
    return text


def _glob(text: str) -> str:
    if not text.strip() or text != text.strip():
        raise _invalid(f"expected a non-empty pattern without surrounding spaces, got {text!r}")
    return text


def _where_values(value: object) -> tuple[str, ...]:
    items = [value] if isinstance(value, str | int | float | bool) else value
    if not isinstance(items, list | tuple) or not items:
        raise _invalid('expected a list of allowed values, e.g. ["dev", "test"]')
    if not all(isinstance(v, str | int | float | bool) for v in items):
        raise _invalid("allowed values must be strings, numbers or booleans")
    return tuple(scalar_text(v) for v in items)


def _group_name(text: str) -> str:
    if not text.strip() or ":" in text:
        raise _invalid(f"a group name must be non-empty and contain no ':', got {text!r}")
    return text


def _password_reference(text: str) -> str:
    # The bad value is never echoed: it may well be the password itself.
    try:
        return _reference(text)
    except ValueError:
        raise _invalid(
            'expected a reference like "env:LDAP_PASSWORD" or "file:/path", '
            "never the password itself"
        ) from None


def _ldap_url(text: str) -> str:
    if not text.startswith(("ldap://", "ldaps://")) or len(text.split("://", 1)[1]) == 0:
        raise _invalid(f"expected ldap://host[:port] or ldaps://host[:port], got {text!r}")
    return text


def _ldap_filter(text: str) -> str:
    if not (text.startswith("(") and text.endswith(")")):
        raise _invalid(f"an LDAP filter must be in parentheses, e.g. (uid={{user}}), got {text!r}")
    return text


def _user_filter(text: str) -> str:
    _ldap_filter(text)
    if "{user}" not in text:
        raise _invalid("must contain {user}, e.g. (uid={user}) or (sAMAccountName={user})")
    return text


def _principal_rule(text: str) -> str:
    kind, _, domain = text.partition(":")
    if text in ("username", "none") or (kind == "localpart" and domain):
        return text
    raise _invalid(
        'expected "username", "none" or "localpart:<domain>" '
        f'(e.g. "localpart:example.org"), got {text!r}'
    )


PrincipalPattern = Annotated[str, AfterValidator(_principal_pattern)]
_Glob = Annotated[str, AfterValidator(_glob)]
_WhereValues = Annotated[tuple[str, ...], BeforeValidator(_where_values)]
_GroupName = Annotated[str, AfterValidator(_group_name)]


class RoleSettings(_Section):
    """One `[[roles]]` table: who may run which commands, in which rooms, with which values."""

    name: Annotated[str, AfterValidator(_group_name)]
    members: tuple[PrincipalPattern, ...] = ()
    allow: tuple[_Glob, ...] = ()  # command globs matched against the full command name
    deny: tuple[_Glob, ...] = ()
    rooms: Annotated[tuple[_Glob, ...], Field(min_length=1)] | None = None  # None: every room
    where: dict[Annotated[str, AfterValidator(_glob)], _WhereValues] = {}
    admin: StrictBool = False


class LdapSettings(_Section):
    """`[ldap]`: group membership from an LDAP directory or Active Directory."""

    url: Annotated[str, AfterValidator(_ldap_url)]
    bind_dn: str | None = None  # None: anonymous bind
    bind_password: Annotated[str, AfterValidator(_password_reference)] | None = None
    user_base: str
    user_filter: Annotated[str, AfterValidator(_user_filter)] = "(uid={user})"
    group_base: str
    group_filter: Annotated[str, AfterValidator(_ldap_filter)] = (
        "(|(objectClass=groupOfNames)(objectClass=group))"
    )
    group_name_attribute: str = "cn"
    member_attribute: str = "member"
    nested: StrictBool = False
    # auto: Active Directory's matching rule in chain when the server is AD, else iterative.
    nested_method: Literal["auto", "in_chain", "iterative"] = "auto"
    cache_ttl: float = 300.0
    timeout: float = 10.0
    # adapter → "username" (the id part as is; the default), "none", "localpart:<domain>".
    principal_map: dict[str, Annotated[str, AfterValidator(_principal_rule)]] = {}
    start_tls: StrictBool = False
    ca_cert: str | None = None  # PEM bundle to trust for ldaps/StartTLS; None: the system store

    @field_validator("cache_ttl", "timeout", mode="before")
    @classmethod
    def _duration(cls, v: object) -> float:
        return parse_duration(v)

    @model_validator(mode="after")
    def _bind_pair(self) -> LdapSettings:
        if (self.bind_dn is None) != (self.bind_password is None):
            raise _invalid(
                "bind_dn and bind_password go together (leave both out to bind anonymously)"
            )
        return self


def _check_roles(
    roles: tuple[RoleSettings, ...], groups: Mapping[str, object], ldap: LdapSettings | None
) -> None:
    seen: dict[str, int] = {}
    known = {g.casefold() for g in groups}
    for i, role in enumerate(roles):
        if role.name in seen:
            raise _invalid(
                f"role name {role.name!r} is used twice (roles.{seen[role.name]} and roles.{i})"
            )
        seen[role.name] = i
        for member in role.members:
            if member.startswith("group:") and ldap is None and member[6:].casefold() not in known:
                raise _invalid(
                    f"role {role.name!r} (roles.{i}.members) names {member}, which is not "
                    "in [groups], and no [ldap] is configured"
                )


_SecretName = Annotated[str, AfterValidator(_secret_name)]
_SecretSource = Annotated[str, AfterValidator(_secret_source)]


class Settings(_Section):
    """The whole configuration."""

    bot: BotSettings = BotSettings()
    catalog: CatalogSettings = CatalogSettings()
    store: StoreSettings = StoreSettings()
    web: WebSettings = WebSettings()
    runner: RunnerSettings = RunnerSettings()
    secrets: dict[_SecretName, _SecretSource] = {}
    vault: VaultSettings = VaultSettings()
    groups: dict[_GroupName, tuple[PrincipalPattern, ...]] = {}
    adapters: dict[str, dict[str, Any]] = {}
    ldap: LdapSettings | None = None  # None: no directory; groups come from [groups] only
    roles: tuple[RoleSettings, ...] = ()  # after groups and ldap: its check reads them
    source: Literal["defaults", "file"] = "defaults"
    path: str | None = None

    @field_validator("roles", mode="after")
    @classmethod
    def _roles_consistent(
        cls, roles: tuple[RoleSettings, ...], info: ValidationInfo
    ) -> tuple[RoleSettings, ...]:
        _check_roles(roles, info.data.get("groups", {}), info.data.get("ldap"))
        return roles


_SECTIONS = ("bot", "catalog", "store", "web", "runner", "vault", "ldap")


def _format_error(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{loc}: {msg}")
    return "; ".join(lines)


def _coerce_env(raw: str) -> object:
    """An override value: TOML-ish literal when it parses as one, else the plain string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    for key, raw in environ.items():
        if not key.startswith("OPSROOM_") or key == "OPSROOM_CONFIG":
            continue
        rest = key[len("OPSROOM_") :].lower()
        section, _, name = rest.partition("_")
        if section not in _SECTIONS or not name:
            continue
        data.setdefault(section, {})
        if not isinstance(data[section], dict):
            raise ConfigError(f"{section}: expected a table")
        data[section][name] = _coerce_env(raw)


def config_path(explicit: str | None, environ: Mapping[str, str], cwd: Path) -> Path | None:
    """The config file to read: `--config`, then OPSROOM_CONFIG, then ./opsroom.toml."""
    if explicit:
        return Path(explicit)
    if env := environ.get("OPSROOM_CONFIG"):
        return Path(env)
    candidate = cwd / DEFAULT_CONFIG_NAME
    return candidate if candidate.is_file() else None


def load_settings(
    explicit: str | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Read the configuration once; raise ConfigError naming the key path on any problem."""
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd
    path = config_path(explicit, environ, cwd)
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from None
        except OSError as e:
            raise ConfigError(f"{path}: {e.strerror}") from None
        for reserved in ("source", "path"):
            if reserved in data:
                raise ConfigError(f"{path}: {reserved}: unknown key")
        data["source"] = "file"
        data["path"] = str(path)
    _apply_env(data, environ)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        where = f"{path}: " if path else "OPSROOM_* overrides: "
        raise ConfigError(where + _format_error(e)) from None
    return _resolve_paths(settings, path.parent if path else cwd)


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    """Relative catalog paths and SQLite files are relative to the config file's folder."""
    catalog = settings.catalog
    if catalog.path is not None and not Path(catalog.path).is_absolute():
        catalog = catalog.model_copy(update={"path": str((base / catalog.path).resolve())})
    return settings.model_copy(update={"catalog": catalog})


def dump_settings(settings: Settings) -> str:
    """The effective configuration as JSON (used by `config check`)."""
    return json.dumps(settings.model_dump(mode="json"), indent=2, sort_keys=True)
