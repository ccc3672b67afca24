"""Secret values for one run, fetched fresh from `[secrets]` sources (SPEC §6.4).

Sources: `env:NAME`, `file:/abs/path` (one trailing newline dropped) and
`vault:<path>#<key>` (HashiCorp Vault or OpenBao, `[vault]` section).

Vault paths, KV version 2 (the default, `[vault] kv_version = 2`):
- `vault:kv/data/netapp#password` is the API path itself and is read as given; use this
  form when the mount is nested (`team/kv/data/netapp`).
- `vault:kv/netapp#password` is the `bao kv get` form: the first segment is the mount and
  `data/` is inserted after it, so it reads `kv/data/netapp`.
With `kv_version = 1` the path is always read as given (`vault:secret/netapp#password`).

Every failure is a RefusedError naming the secret and the reason, never the value; nothing
is cached, so a rotated secret is picked up by the next run.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from opsroom.config import Settings, VaultSettings, resolve_reference, strip_newline
from opsroom.errors import ConfigError, RefusedError

SourceKind = Literal["env", "file", "vault"]


@dataclass(frozen=True, slots=True)
class SecretSource:
    """Where one secret comes from: `kind`, its `target` (variable, file or path), Vault `key`."""

    kind: SourceKind
    target: str
    key: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}" + (f"#{self.key}" if self.key is not None else "")


def parse_source(text: str) -> SecretSource:
    """`env:NAME`, `file:/abs/path` or `vault:<path>#<key>` as a SecretSource; ValueError else."""
    kind, sep, rest = text.partition(":")
    if sep and rest:
        if kind == "env" and rest.isidentifier() and rest.isascii():
            return SecretSource("env", rest)
        if kind == "file" and rest.startswith("/"):
            return SecretSource("file", rest)
        if kind == "vault":
            path, hashed, key = rest.partition("#")
            path = path.strip("/")
            if hashed and path and key and "#" not in key:
                return SecretSource("vault", path, key)
    raise ValueError('expected "env:NAME", "file:/absolute/path" or "vault:<path>#<key>"')


async def fetch_secrets(
    names: Collection[str],
    settings: Settings,
    *,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The values of `names` from their configured sources, read now; RefusedError on any gap."""
    environ = os.environ if environ is None else environ
    sources: dict[str, SecretSource] = {}
    # Every name is checked before anything is read, so a typo costs no Vault round trip.
    for name in sorted(set(names)):
        raw = settings.secrets.get(name)
        if raw is None:
            raise RefusedError(f"secret {name} is not configured in [secrets]; nothing was run")
        try:
            sources[name] = parse_source(raw)
        except ValueError as e:
            raise RefusedError(f"secret {name}: bad source in [secrets]: {e}") from None
    values: dict[str, str] = {}
    from_vault: dict[str, SecretSource] = {}
    for name, source in sources.items():
        if source.kind == "env":
            values[name] = _from_env(name, source, environ)
        elif source.kind == "file":
            values[name] = _from_file(name, source)
        else:
            from_vault[name] = source
    if from_vault:
        values.update(await _from_vault(from_vault, settings.vault, environ))
    return {name: _checked(name, values[name]) for name in sorted(values)}


def _checked(name: str, value: str) -> str:
    if not value:
        raise RefusedError(f"secret {name} is empty; nothing was run")
    if "\x00" in value:
        # An environment variable cannot carry a NUL byte.
        raise RefusedError(f"secret {name} contains a NUL character; nothing was run")
    return value


def _from_env(name: str, source: SecretSource, environ: Mapping[str, str]) -> str:
    value = environ.get(source.target)
    if value is None:
        raise RefusedError(
            f"secret {name}: environment variable {source.target} is not set; nothing was run"
        )
    return value


def _from_file(name: str, source: SecretSource) -> str:
    try:
        data = Path(source.target).read_bytes()
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise RefusedError(
            f"secret {name}: cannot read {source.target}: {reason}; nothing was run"
        ) from None
    try:
        return strip_newline(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise RefusedError(
            f"secret {name}: {source.target} is not UTF-8 text; nothing was run"
        ) from None


def api_path(source: SecretSource, kv_version: int) -> str:
    """The Vault API path (after `/v1/`) that holds `source` for the given KV version."""
    if kv_version == 1 or "/data/" in f"/{source.target}/":
        return source.target
    mount, _, rest = source.target.partition("/")
    return f"{mount}/data/{rest}" if rest else f"{mount}/data"


async def _from_vault(
    wanted: Mapping[str, SecretSource], vault: VaultSettings, environ: Mapping[str, str]
) -> dict[str, str]:
    first = next(iter(wanted))
    if vault.url is None:
        raise RefusedError(
            f"secret {first} comes from Vault but [vault] url is not set; nothing was run"
        )
    try:
        token = resolve_reference(vault.token, environ)
    except ConfigError as e:
        raise RefusedError(
            f"secret {first}: no Vault token ([vault] token {e}); nothing was run"
        ) from None
    return await asyncio.to_thread(_read_vault, wanted, vault, vault.url, token)


def _read_vault(
    wanted: Mapping[str, SecretSource], vault: VaultSettings, url: str, token: str
) -> dict[str, str]:
    # Imported here: only runs that use Vault pay for loading them.
    import hvac
    import requests
    from hvac import exceptions as vault_errors

    client = hvac.Client(
        url=url,
        token=token,
        namespace=vault.namespace,
        verify=vault.ca_cert or True,
        # hvac's timeout is whole seconds; rounding up never cuts a request short.
        timeout=math.ceil(vault.timeout),
    )
    documents: dict[str, dict[str, Any] | None] = {}
    values: dict[str, str] = {}
    try:
        for name, source in wanted.items():
            path = api_path(source, vault.kv_version)
            where = f"Vault path {path}"
            try:
                if path not in documents:
                    documents[path] = _document(client.read(path), vault.kv_version)
            except vault_errors.Unauthorized:
                raise _refused(name, f"Vault rejected the token (401) reading {path}") from None
            except vault_errors.Forbidden:
                raise _refused(
                    name, f"permission denied reading {path} (check the token and its policy)"
                ) from None
            except vault_errors.VaultError as e:
                raise _refused(name, f"Vault error reading {path}: {type(e).__name__}") from None
            except requests.exceptions.Timeout:
                raise _refused(name, f"Vault at {url} did not answer in time") from None
            except requests.exceptions.RequestException as e:
                raise _refused(name, f"cannot reach Vault at {url} ({type(e).__name__})") from None
            document = documents[path]
            if document is None:
                raise _refused(name, f"{where} has no secret (missing or deleted)")
            assert source.key is not None  # parse_source gives every vault source a key
            if source.key not in document:
                raise _refused(name, f"{where} has no key {source.key!r}")
            values[name] = _as_text(name, document[source.key], where, source.key)
    finally:
        client.adapter.close()
    return values


def _document(response: object, kv_version: int) -> dict[str, Any] | None:
    """The key/value map inside a read response; None when the path holds nothing."""
    if not isinstance(response, dict):
        return None
    data = response.get("data")
    if kv_version == 2 and isinstance(data, dict):
        data = data.get("data")  # KV v2 wraps the secret with its metadata
    return data if isinstance(data, dict) else None


def _as_text(name: str, value: object, where: str, key: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    raise _refused(name, f"{where} key {key!r} is not a string")


def _refused(name: str, reason: str) -> RefusedError:
    return RefusedError(f"secret {name}: {reason}; nothing was run")
