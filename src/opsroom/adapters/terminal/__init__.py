"""The terminal as a chat adapter (`opsroom shell`): one person, one room, plain text."""

from __future__ import annotations

from opsroom.adapters.terminal.adapter import TerminalAdapter

__all__ = ["TerminalAdapter"]
