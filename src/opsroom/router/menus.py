"""Menus (SPEC §5.6): a missing required parameter with choices becomes a question.

The bot offers the choices (buttons where the platform has them, a numbered list
elsewhere) and continues with the chosen value. Open menus live in memory for a few
minutes, one per person and room: an answer is the option's number, its text, or a
button carrying the menu's id.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from opsroom.model.commands import CommandSpec, ParamSpec

MENU_TTL = 300.0  # seconds an unanswered menu stays open


@dataclass(frozen=True, slots=True)
class Menu:
    """An open question: which value for `param` of `spec`."""

    id: str
    principal: str
    room: str
    spec: CommandSpec
    param: ParamSpec
    options: tuple[str, ...]
    tokens: tuple[str, ...]  # the arguments given so far
    opened: float = field(default_factory=time.monotonic)

    def answer(self, text: str) -> str | None:
        """The chosen option for a plain-chat answer (number or value), or None."""
        word = text.strip()
        # isdecimal, and short: "²" or ten thousand digits are not numbers int() takes.
        if word.isdecimal() and len(word) <= 6 and 1 <= int(word) <= len(self.options):
            return self.options[int(word) - 1]
        for option in self.options:
            if option.lower() == word.lower():
                return option
        return None

    def continued(self, choice: str) -> list[str]:
        """The argument tokens with the chosen value added."""
        return [*self.tokens, f"--{self.param.name}", choice]


class MenuBook:
    """Open menus, at most one per (principal, room)."""

    def __init__(self, ttl: float = MENU_TTL) -> None:
        self.ttl = ttl
        self._open: dict[tuple[str, str], Menu] = {}

    def open(
        self,
        *,
        principal: str,
        room: str,
        spec: CommandSpec,
        param: ParamSpec,
        options: tuple[str, ...],
        tokens: tuple[str, ...],
    ) -> Menu:
        """Ask a new question; replaces an older one of the same person in the same room."""
        self._sweep()
        menu = Menu(secrets.token_hex(6), principal, room, spec, param, options, tokens)
        self._open[(principal, room)] = menu
        return menu

    def pending(self, principal: str, room: str) -> Menu | None:
        """The open menu of this person in this room, if any."""
        menu = self._open.get((principal, room))
        if menu is not None and time.monotonic() - menu.opened > self.ttl:
            del self._open[(principal, room)]
            return None
        return menu

    def by_id(self, menu_id: str) -> Menu | None:
        """The open menu with this id (a button click), if any."""
        self._sweep()
        return next((m for m in self._open.values() if m.id == menu_id), None)

    def close(self, menu: Menu) -> None:
        """The question was answered."""
        if self._open.get((menu.principal, menu.room)) is menu:
            del self._open[(menu.principal, menu.room)]

    def _sweep(self) -> None:
        now = time.monotonic()
        for key, menu in list(self._open.items()):
            if now - menu.opened > self.ttl:
                del self._open[key]
