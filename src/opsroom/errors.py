"""The one exception tree of opsroom.

    OpsroomError                 base of everything raised on purpose
    ├── UserError                a message meant for the person who asked (shown in chat)
    │   ├── ParseError           the chat text could not be turned into an invocation
    │   ├── UnknownCommand       no command matches the words; carries suggestions
    │   └── RefusedError         understood, but will not run (no runtime, no dry-run, ...)
    ├── ConfigError              opsroom.toml or OPSROOM_* overrides are wrong (key path inside)
    ├── CatalogError             a catalog could not be read at all (not one broken script)
    └── StoreError               the store could not be opened or written

Anything else that escapes is a bug.
"""

from __future__ import annotations


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


class CatalogError(OpsroomError):
    """The catalog as a whole could not be read (missing folder, not a directory)."""


class StoreError(OpsroomError):
    """The store could not be opened, migrated or written."""
