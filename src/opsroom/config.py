"""Settings, read once from `opsroom.toml` plus `OPSROOM_<SECTION>_<KEY>` overrides.

Every other module receives a frozen `Settings`; nothing reads the environment afterwards.
Unknown keys and bad values are `ConfigError`s naming the key path (`runner.timeout`).
"""

from __future__ import annotations

import functools
import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from datetime import tzinfo
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

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


_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]i?B|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3}
_SIZE_UNITS.update({"kib": 1024, "mib": 1024**2, "gib": 1024**3})


def parse_size(value: object) -> int:
    """Bytes from `1048576`, `"512KiB"`, `"1MiB"`, `"2MB"`; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError('expected a size like 1048576, "512KiB" or "1MiB"')
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (m := _SIZE.match(value)):
        size = int(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()]
    else:
        raise ValueError(f'expected a size like 1048576, "512KiB" or "1MiB", got {value!r}')
    if size <= 0:
        raise ValueError("a size must be positive")
    return size


@functools.cache
def _zone_names() -> frozenset[str]:
    import zoneinfo

    # "localtime" is whatever this host is set to, not a zone that means the same everywhere.
    return frozenset(zoneinfo.available_timezones() - {"localtime"})


def time_zone(name: str) -> tzinfo:
    """The IANA time zone `name` (`Europe/Berlin`, `UTC`); ValueError naming near misses."""
    import zoneinfo

    if name in _zone_names():
        try:
            return zoneinfo.ZoneInfo(name)
        except (ValueError, OSError):
            pass  # listed but unreadable: said like any unknown zone below
    import difflib  # only on the error path

    shown = name if len(name) <= 64 else name[:64] + "…"
    folded = {z.casefold(): z for z in _zone_names()}
    near = [folded[name.casefold()]] if name.casefold() in folded else []
    near = near or difflib.get_close_matches(name, sorted(_zone_names()), n=3)
    hint = f"; did you mean {', '.join(near)}?" if near else " (e.g. Europe/Berlin, UTC)"
    raise ValueError(f"{shown!r} is not an IANA time zone{hint}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BotSettings(_Section):
    """`[bot]`: how the bot presents itself."""

    name: str = "ops"
    prefix: str = "!"
    timezone: str = "UTC"  # schedules without --tz (SPEC §5.7)

    @field_validator("timezone", mode="after")
    @classmethod
    def _zone(cls, v: str) -> str:
        time_zone(v)
        return v


_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+$")  # git@host:group/repo.git
_BRANCH = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]+(?<![/.])$")
_ROOM = re.compile(r"^[a-z][a-z0-9_-]*:\S+$")
_LOOPBACK = ("localhost", "127.0.0.1", "[::1]", "::1")


def _git_url(text: str) -> str:
    # Never echoed: a URL may carry a token someone pasted into it.
    from urllib.parse import urlsplit

    if not text or text.startswith("-") or any(c.isspace() or ord(c) < 32 for c in text):
        raise ValueError("expected a repository URL (https://, ssh://, git@host:path or file://)")
    if _SCP_LIKE.match(text) or text.startswith("/"):
        return text
    try:
        url = urlsplit(text)
        host = url.hostname or ""
        password = url.password
    except ValueError:
        raise ValueError("not a valid repository URL") from None
    if url.scheme not in ("https", "http", "ssh", "git", "file"):
        raise ValueError(
            "expected a repository URL (https://, ssh://, git@host:path or file://); "
            f"{url.scheme or 'no'} scheme is not allowed"
        )
    if password is not None:
        raise ValueError(
            'a password or token inside the URL is refused: reference it with token = "env:NAME"'
        )
    if url.scheme == "http" and host not in _LOOPBACK:
        raise ValueError("plain http:// only on localhost; use https://")
    return text


def _branch(text: str) -> str:
    if not _BRANCH.match(text) or text.endswith(".lock"):
        raise ValueError(f"not a branch name: {text[:80]!r}")
    return text


def _poll(value: object) -> float:
    # "0" turns polling off (webhook only); any other value is a duration.
    if value in (0, "0", "0s") and not isinstance(value, bool):
        return 0.0
    return parse_duration(value)


def _announce_room(text: str) -> str:
    if not _ROOM.match(text):
        raise ValueError(f'expected a room like "slack:C0OPS" or "web:ops", got {text[:80]!r}')
    return text


def _web_url(text: str) -> str:
    from urllib.parse import urlsplit

    url = urlsplit(text)
    if url.scheme not in ("https", "http") or not url.netloc or url.query or url.fragment:
        raise ValueError(f"expected the repository's web address (https://...), got {text[:80]!r}")
    return text.rstrip("/").removesuffix(".git")


def _catalog_reference(text: str) -> str:
    # The bad value is never echoed: it may well be the token or secret pasted inline.
    try:
        return _reference(text)
    except ValueError:
        raise ValueError(
            'expected a reference like "env:GIT_TOKEN" or "file:/path", never the value itself'
        ) from None


def _key_file(text: str) -> str:
    if not text.startswith("file:/"):
        raise ValueError('expected the key file as "file:/absolute/path"')
    return text


def _cache_folder(value: object) -> object:
    if isinstance(value, bool) or (isinstance(value, str) and value.strip()):
        return value
    raise _invalid('expected true, false or a folder, e.g. "/var/cache/opsroom"')


class CatalogSettings(_Section):
    """`[catalog]`: where the scripts live (a folder, or a git repository: SPEC §10)."""

    path: str | None = None  # None: the bundled example catalog
    git: Annotated[str, AfterValidator(_git_url)] | None = None
    branch: Annotated[str, AfterValidator(_branch)] = "main"
    poll_interval: Annotated[float, BeforeValidator(_poll)] = 60.0  # 0: webhook only
    webhook_secret: Annotated[str, AfterValidator(_catalog_reference)] | None = None
    token: Annotated[str, AfterValidator(_catalog_reference)] | None = None  # https: a header
    ssh_key: Annotated[str, AfterValidator(_key_file)] | None = None
    announce: Annotated[str, AfterValidator(_announce_room)] | None = None
    web_url: Annotated[str, AfterValidator(_web_url)] | None = None
    # Parsed scripts kept between starts: true (~/.cache/opsroom/catalog), false, or a folder.
    cache: Annotated[StrictBool | str, BeforeValidator(_cache_folder)] = True

    @model_validator(mode="after")
    def _consistent(self) -> CatalogSettings:
        if self.git is not None and self.path is not None:
            raise _invalid("set either path or git, not both")
        if self.git is None:
            given = [k for k in ("webhook_secret", "token", "ssh_key") if getattr(self, k)]
            if given:
                raise _invalid(f'{", ".join(given)} applies only with git = "URL"')
        elif self.token is not None and not self.git.startswith(("https://", "http://")):
            raise _invalid("token applies to https:// repositories (for ssh use ssh_key)")
        elif self.ssh_key is not None and self.git.startswith(("https://", "http://", "file:")):
            raise _invalid("ssh_key applies to ssh repositories (for https use token)")
        return self


def _store_password(text: str) -> str:
    # The bad value is never echoed: it may well be the password itself.
    if not re.fullmatch(r"env:[A-Za-z_][A-Za-z0-9_]*|file:.+", text):
        raise ValueError(
            'expected a reference like "env:OPSROOM_DB_PASSWORD" or "file:/path", '
            "never the password itself"
        )
    return text


class StoreSettings(_Section):
    """`[store]`: the database of jobs and audit."""

    url: str = "sqlite:///opsroom.db"
    # PostgreSQL's password, referenced (env:NAME, file:PATH) and read when the store opens.
    password: Annotated[str | None, AfterValidator(_store_password)] = None

    @model_validator(mode="after")
    def _password_for_postgresql(self) -> StoreSettings:
        from urllib.parse import urlsplit

        if self.password is None:
            return self
        if not self.url.lower().startswith(("postgresql", "postgres:")):
            raise ValueError("password applies to a postgresql:// url only")
        try:
            inline = urlsplit(self.url).password
        except ValueError:
            inline = None
        if inline is not None:
            raise ValueError("the url holds a password too: remove it from the url")
        return self

    def password_value(self) -> str | None:
        """The password `password` refers to, read now (None when there is none)."""
        return None if self.password is None else resolve_reference(self.password)


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
    max_body: int = 1024 * 1024  # largest request body; bigger gets 413 before it is read
    body_timeout: float = 30.0  # a request body must arrive within this, or 408
    oidc: OidcSettings | None = None  # None: local accounts only

    @field_validator("shutdown_grace", "session_ttl", "body_timeout", mode="before")
    @classmethod
    def _duration(cls, v: object) -> float:
        return parse_duration(v)

    @field_validator("max_body", mode="before")
    @classmethod
    def _size(cls, v: object) -> int:
        return parse_size(v)


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
    # Per job, all its processes together where a cgroup holds them (docs/jobs.md); 0: none.
    max_memory: int = Field(default=4 * 1024**3, ge=0)
    max_pids: int = Field(default=512, ge=0)
    max_cpu_seconds: float = Field(default=0.0, ge=0)  # 0: only the timeout bounds it
    cgroups: StrictBool = True  # False: never a cgroup per job, the weaker fallback instead
    # Python environments kept warm, a fork server each (runner/pool.py); 0: every Python
    # job starts a fresh interpreter.
    python_pool: int = Field(default=4, ge=0, le=64)
    # True: jobs are started by a small spawner process (runner/pool.py), whose fork copies a
    # few MB, not opsroom's whole memory; False: opsroom forks them itself.
    spawner: StrictBool = True
    # False: the bot's host runs no job; commands without runs_on go to the workers of
    # queue "default" (SPEC §8, docs/scale.md).
    local: StrictBool = True

    @field_validator("timeout", "max_timeout", "kill_grace", "foreground_seconds", mode="before")
    @classmethod
    def _duration(cls, v: object) -> float:
        return parse_duration(v)

    @field_validator("max_memory", mode="before")
    @classmethod
    def _size(cls, v: object) -> int:
        no_limit = v == "0" or (isinstance(v, int) and not isinstance(v, bool) and v == 0)
        return 0 if no_limit else parse_size(v)

    @field_validator("max_memory", mode="after")
    @classmethod
    def _enough_memory(cls, v: int) -> int:
        # Below a few MiB not even a shell starts: such a limit is a typo, not a policy.
        if 0 < v < 16 * 1024**2:
            raise ValueError("a memory limit below 16MiB leaves no job able to start (0: no limit)")
        return v


class WorkersSettings(_Section):
    """`[workers]`: how workers (`opsroom worker`) show they are alive (SPEC §8)."""

    heartbeat: float = 10.0  # seconds between a worker's beats
    # A worker silent this long is lost: its running jobs are marked interrupted.
    lost_after: float = 30.0
    # Replies and cancels travel by notification; this often a bot or worker looks in the
    # store anyway, for one it may have missed (its listening connection dropped).
    recheck: float = Field(default=2.0, gt=0)

    @field_validator("heartbeat", "lost_after", "recheck", mode="before")
    @classmethod
    def _duration(cls, v: object) -> float:
        return parse_duration(v)

    @model_validator(mode="after")
    def _beats_before_lost(self) -> WorkersSettings:
        if self.lost_after <= self.heartbeat:
            raise ValueError("lost_after must be longer than heartbeat, or live workers are lost")
        return self


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
    workers: WorkersSettings = WorkersSettings()
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


# -- OPSROOM_<SECTION>_<KEY> overrides and [adapters.*] (SPEC §7.1) --------------------------

# OPSROOM_* variables that are not configuration: the config file's path, what every job's
# script receives (SPEC §5.1: a script may itself call `opsroom`), and the development
# scripts' own. Every other OPSROOM_* variable must name exactly one key.
RESERVED_ENV = frozenset(
    {
        "OPSROOM_CONFIG",
        "OPSROOM_JOB_ID",
        "OPSROOM_REQUESTER",
        "OPSROOM_ROOM",
        "OPSROOM_DRY_RUN",
        "OPSROOM_JOB_TOKEN",
        "OPSROOM_EVENTS_FD",
        "OPSROOM_PARAMS",
        "OPSROOM_PARAM_TYPES",
        "OPSROOM_VENV",
        "OPSROOM_SYNAPSE_VENV",
        "OPSROOM_TEST_PG_URL",
    }
)
# OPSROOM_PS_*: what the PowerShell bootstrap reads (runner/argv.py powershell_env).
RESERVED_ENV_PREFIXES = ("OPSROOM_ARG_", "OPSROOM_PS_")
_ENV_PREFIX = "OPSROOM_"
_NOT_KEYS = ("source", "path")  # Settings' own bookkeeping, never configured
_KeyPath = tuple[str, ...]
_Why = tuple[str | None, str]  # (key path or None, message) when a variable names no key


def adapter_settings_models() -> dict[str, type[BaseModel]]:
    """Each chat platform installed → the model of its `[adapters.<name>]` table.

    The platforms are the `opsroom.adapters` entry points. Their records import no
    platform library: a table is checked even on a host where that library is missing.
    """
    # Imported here, not at the top: the adapters import this module.
    from opsroom.adapters.plugin import load_plugins

    return {n: p.settings for n, p in load_plugins().items() if p.settings is not None}


def _dotted(path: Sequence[object]) -> str:
    return ".".join(str(p) for p in path)


def _nested_model(annotation: object) -> type[BaseModel] | None:
    """The model of a table-valued key (`X` or `X | None`); None for anything else."""
    union = get_origin(annotation) in (Union, UnionType)
    for candidate in get_args(annotation) if union else (annotation,):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _key_paths(
    model: type[BaseModel], text: str, prefix: _KeyPath, data: object
) -> tuple[list[_KeyPath], _Why]:
    """Every key path the `_`-joined `text` can name below `model`, and why none if none.

    Key names contain `_` too, so each split is tried against the model's own key names:
    `web_oidc_client_id` is web → oidc → client_id because only that split names keys.
    """
    table = data if isinstance(data, dict) else {}
    key = text.lower()
    found: list[_KeyPath] = []
    why: _Why = (_dotted((*prefix, key)), "unknown key") if prefix else (None, "")
    for name, info in model.model_fields.items():
        if not prefix and name in _NOT_KEYS:
            continue
        if key == name:
            found.append((*prefix, name))
        elif key.startswith(name + "_"):
            more, deeper = _paths_below(
                (*prefix, name), info.annotation, text[len(name) + 1 :], table.get(name)
            )
            found += more
            why = deeper if deeper[1] else why
    if not prefix and not found and not why[1]:
        sections = ", ".join(n for n in model.model_fields if n not in _NOT_KEYS)
        why = (None, f"names no configuration key (sections: {sections})")
    return found, why


def _paths_below(
    path: _KeyPath, annotation: object, text: str, data: object
) -> tuple[list[_KeyPath], _Why]:
    if path == ("adapters",):
        return _adapter_paths(text, data)
    if (model := _nested_model(annotation)) is not None:
        return _key_paths(model, text, path, data)
    if get_origin(annotation) is dict and text:
        return _entry_paths(path, text, data), (None, "")
    whole = _ENV_PREFIX + "_".join(path).upper()
    message = f"unknown key ({_dotted(path)} is set as a whole: {whole})"
    return [], (_dotted((*path, text.lower())), message)


def _entry_paths(path: _KeyPath, text: str, data: object) -> list[_KeyPath]:
    """The entry of a free-form table (`[secrets]`, `[groups]`) that `text` names.

    Names compare case-insensitively with `-` read as `_` (a variable name cannot spell
    `-`): every entry that matches is returned, so two of them make the name ambiguous.
    """
    table = data if isinstance(data, dict) else {}
    wanted = text.casefold()
    same = [k for k in table if str(k).casefold().replace("-", "_") == wanted]
    if same:
        return [(*path, str(k)) for k in same]
    # A new secret keeps the variable's spelling: scripts see it as an environment variable.
    return [(*path, text if path == ("secrets",) else text.lower())]


def _adapter_paths(text: str, data: object) -> tuple[list[_KeyPath], _Why]:
    models = adapter_settings_models()
    name, _, key = text.lower().partition("_")
    if name in models:
        if not key:
            return [("adapters", name)], (None, "")
        table = data.get(name) if isinstance(data, dict) else None
        return _key_paths(models[name], text[len(name) + 1 :], ("adapters", name), table)
    return [], (None, f"names no chat platform (known: {', '.join(sorted(models))})")


def _not_run(name: str, models: Mapping[str, object]) -> str:
    """Why `[adapters.<name>]` names no platform this version runs."""
    from opsroom.adapters.plugin import load_plugins

    plugin = load_plugins().get(name)
    if plugin is not None and plugin.about:
        return plugin.about  # a built-in chat that needs no table
    return f"unknown chat platform (known: {', '.join(sorted(models))})"


def _coerce_env(raw: str) -> object:
    """An override value: TOML-ish literal when it parses as one, else the plain string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _set(data: dict[str, Any], path: _KeyPath, value: object) -> str | None:
    """Put `value` at `path`, making tables on the way; the key that is not a table, if one."""
    node = data
    for i, key in enumerate(path[:-1]):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            return _dotted(path[: i + 1])
        node = child
    node[path[-1]] = value
    return None


def _apply_env(
    data: dict[str, Any], environ: Mapping[str, str]
) -> tuple[list[str], dict[_KeyPath, str]]:
    """Apply every OPSROOM_* override to `data`: the problems, and which variable set what."""
    problems: list[str] = []
    sources: dict[_KeyPath, str] = {}
    # Name order puts a whole table (OPSROOM_WEB_OIDC) before its keys (OPSROOM_WEB_OIDC_...).
    for var in sorted(environ):
        if (
            not var.startswith(_ENV_PREFIX)
            or var in RESERVED_ENV
            or var.startswith(RESERVED_ENV_PREFIXES)
        ):
            continue
        found, (where, message) = _key_paths(Settings, var[len(_ENV_PREFIX) :], (), data)
        if len(found) > 1:
            problems.append(f"{var}: could mean {' or '.join(map(_dotted, found))}")
        elif not found:
            problems.append(f"{where}: {message} (from {var})" if where else f"{var}: {message}")
        elif found[0] in sources:
            problems.append(f"{_dotted(found[0])}: set by both {sources[found[0]]} and {var}")
        elif (not_table := _set(data, found[0], _coerce_env(environ[var]))) is not None:
            problems.append(f"{not_table}: expected a table (from {var})")
        else:
            sources[found[0]] = var
    return problems, sources


def _from(loc: Sequence[object], sources: Mapping[_KeyPath, str]) -> str:
    """` (from OPSROOM_...)` when an override set `loc` or a table holding it."""
    parts = tuple(str(p) for p in loc)
    for n in range(len(parts), 0, -1):
        if parts[:n] in sources:
            return f" (from {sources[parts[:n]]})"
    return ""


def _error_lines(
    err: ValidationError,
    sources: Mapping[_KeyPath, str],
    base: _KeyPath = (),
    plain: bool = False,
) -> list[str]:
    lines = []
    for e in err.errors():
        loc = (*base, *(str(p) for p in e["loc"]))
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        if plain:
            msg = msg.removeprefix("Value error, ")
        lines.append(f"{_dotted(loc) or '(top level)'}: {msg}{_from(loc, sources)}")
    return lines


def _check_adapters(tables: object, sources: Mapping[_KeyPath, str]) -> tuple[list[str], object]:
    """Each `[adapters.<name>]` by its platform's own model: problems, tables with defaults."""
    if not isinstance(tables, dict) or not tables:
        # A non-table is Settings' to name; no tables: no platform needs loading.
        return [], tables
    models = adapter_settings_models()
    problems: list[str] = []
    effective: dict[str, object] = {}
    for name, table in tables.items():
        model = models.get(name)
        if model is None:
            where = ("adapters", name)
            problems.append(f"adapters.{name}: {_not_run(name, models)}{_from(where, sources)}")
        elif not isinstance(table, dict):
            effective[name] = table  # Settings names a non-table
        else:
            try:
                effective[name] = model.model_validate(table).model_dump(mode="json")
            except ValidationError as e:
                problems += _error_lines(e, sources, ("adapters", name), plain=True)
    return problems, effective


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
    problems, sources = _apply_env(data, environ)
    adapter_problems, adapters = _check_adapters(data.get("adapters", {}), sources)
    if "adapters" in data:
        data["adapters"] = adapters  # with each platform's defaults, as `config check` shows
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        problems += _error_lines(e, sources)
    problems += adapter_problems
    if problems:
        # Every problem at once: fixing one at a time, a restart each, is how configs rot.
        where = f"{path}: " if path else "OPSROOM_* overrides: "
        if len(problems) == 1:
            raise ConfigError(where + problems[0])
        raise ConfigError(f"{where}{len(problems)} problems:\n  " + "\n  ".join(problems))
    return _resolve_paths(settings, path.parent if path else cwd)


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    """Relative catalog paths and SQLite files are relative to the config file's folder."""
    catalog = settings.catalog
    if catalog.path is not None and not Path(catalog.path).is_absolute():
        catalog = catalog.model_copy(update={"path": str((base / catalog.path).resolve())})
    if isinstance(catalog.cache, str) and not Path(catalog.cache).is_absolute():
        catalog = catalog.model_copy(update={"cache": str((base / catalog.cache).resolve())})
    return settings.model_copy(update={"catalog": catalog})


def dump_settings(settings: Settings) -> str:
    """The effective configuration as JSON (used by `config check`)."""
    return json.dumps(settings.model_dump(mode="json"), indent=2, sort_keys=True)
