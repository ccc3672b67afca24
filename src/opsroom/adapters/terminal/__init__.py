"""The terminal as a chat adapter (`opsroom shell`): one person, one room, plain text."""

from __future__ import annotations

from opsroom.adapters.plugin import AdapterPlugin
from opsroom.adapters.terminal.adapter import TerminalAdapter

__all__ = ["TerminalAdapter", "plugin"]

# No `[adapters.terminal]` table: the terminal chat is `opsroom shell`.
plugin = AdapterPlugin(
    name="terminal",
    settings=None,
    about="the terminal chat needs no adapter table: it is `opsroom shell`",
)
