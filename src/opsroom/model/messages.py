"""Chat messages as opsroom sees them, whatever the platform."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message that reached the bot.

    `principal` is the stable identity `<adapter>:<id>` (SPEC §2), `room` is
    `<adapter>:<channel-id>`. Display names are for showing only.
    """

    text: str
    principal: str
    room: str
    direct: bool = False
    display_name: str = ""
    message_id: str | None = None
    thread_id: str | None = None
    # False where nobody can answer a follow-up question (`opsroom run`): no menus then.
    interactive: bool = True
    # False when the asker will not wait (`opsroom run --no-wait`): the job is queued for a
    # long-lived opsroom process (`serve`) to run.
    wait: bool = True
