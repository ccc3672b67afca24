"""The one exception tree of opsroom.

    OpsroomError                 base of everything raised on purpose
    ├── UserError                a message meant for the person who asked (shown in chat)
    │   ├── ParseError           the chat text could not be turned into an invocation
    │   │   └── MissingParameters    router.parser: required values not given (a menu asks)
    │   ├── UnknownCommand       no command matches the words; carries suggestions
    │   ├── RefusedError         understood, but will not run (no runtime, no dry-run, ...)
    │   │   ├── AuditedRefusal       router.bounded: its audit entry is already written
    │   │   └── AttachmentRefused    runner.attachments: a file that may not leave the job
    │   └── SsoError             web.oidc: a sign-in that failed (safe to show; has a status)
    ├── ConfigError              opsroom.toml or OPSROOM_* overrides are wrong (key path inside)
    │   └── MissingExtra         the config uses a feature whose optional extra is not installed
    ├── CatalogError             a catalog could not be read at all (not one broken script)
    │   └── GitError             catalog.source: git could not fetch or check out
    ├── StoreError               the store could not be opened or written
    ├── AdapterError             a chat platform cannot be reached or refused a request
    │   ├── AdapterUnavailable   adapters.base: not reachable now (the outbox keeps the reply)
    │   ├── ConnectorRefused, DiscordError, MattermostApiError: a request refused for good
    │   └── Unauthorized         adapters.teams.auth: an inbound request that must get 401
    ├── PatternError             model.patterns: a pattern opsroom will not match (a ValueError too)
    ├── MalformedEvent           runner.events: a line of a job's event channel that is no event
    ├── CgroupError              runner.cgroup: the host refused a job's cgroup
    ├── WindowsApiError          runner.winjob: Windows refused a job's Job Object or process
    ├── DirectoryError           policy.ldap: the directory could not answer
    └── LoginRequired            web.auth: a page asked for without a session (to /login)

Errors are defined next to the code that raises them and subclass a base here.
Outside the tree on purpose: `web.gate._BodyRefused`, the gate's signal thrown into the
route reading an oversized body, must unwind through any handler to the gate; no
`except OpsroomError` may ever swallow it; and the pytest plugin (`opsroom.testing`)
raises into a team's tests what a test expects (TimeoutError, AssertionError). Anything
else that escapes is a bug.
"""

from __future__ import annotations

import importlib.util


class OpsroomError(Exception):
    """Base of every error raised on purpose by opsroom."""


class UserError(OpsroomError):
    """An error meant for the person who asked; its text is shown in the room."""

    def __init__(self, message: str, *, usage: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage

    def __str__(self) -> str:
        if self.usage:
            return f"{self.message}\nusage: {self.usage}"
        return self.message


class ParseError(UserError):
    """The chat text could not be parsed or validated against the command spec."""


class UnknownCommand(UserError):
    """No command matches the words given."""

    def __init__(self, words: str, suggestions: tuple[str, ...] = ()) -> None:
        text = f"unknown command: {words}"
        if suggestions:
            text += " — did you mean " + ", ".join(f"`{s}`" for s in suggestions) + "?"
        super().__init__(text)
        self.words = words
        self.suggestions = suggestions


class RefusedError(UserError):
    """The request was understood but will not run (no runtime here, no dry-run support...)."""


class ConfigError(OpsroomError):
    """The configuration is invalid; the message names the key path."""


class MissingExtra(ConfigError):
    """The config asks for a feature whose optional dependencies (an extra) are not installed.

    The CLI prints its one line and exits 2; e.g.
    `MissingExtra("ldap", "[ldap]")` -> "install opsroom[ldap] to use [ldap]".
    """

    def __init__(self, extra: str, feature: str) -> None:
        self.extra = extra
        self.feature = feature
        super().__init__(f"install opsroom[{extra}] to use {feature}")


def require_extra(module: str, extra: str, feature: str) -> None:
    """Raise MissingExtra unless `module` is installed (checked without importing it)."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ImportError:  # a dotted name whose parent package is missing
        found = False
    if not found:
        raise MissingExtra(extra, feature)


class CatalogError(OpsroomError):
    """The catalog as a whole could not be read (missing folder, not a directory)."""


class StoreError(OpsroomError):
    """The store could not be opened, migrated or written."""


class AdapterError(OpsroomError):
    """A chat platform cannot be reached, or refused what opsroom asked of it."""
