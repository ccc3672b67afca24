"""Chat-platform value types shared by adapters, renderers and the bridge."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from opsroom.model.messages import Inbound


class ConnectionState(StrEnum):
    """Where an adapter's connection stands (shown in /metrics and the console)."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a platform can do; the bridge and renderers adapt to it."""

    threads: bool = False  # replies go in the request's thread
    edits: bool = False  # a job's status message is edited in place, else re-sent
    buttons: bool = False  # clicks arrive as `Interaction`s, else people type the answer
    max_message_length: int = 4000  # characters of one message, after rendering
    edits_per_second: float = 1.0  # how often one message may be edited
    # Without edits, every progress update is a new message: at most one per this many
    # seconds (a terminal can take them every second; a busy chat room cannot).
    progress_every: float = 15.0


@dataclass(frozen=True, slots=True)
class MessageRef:
    """A message the bot sent, for editing or reacting to it later."""

    room: str
    id: str
    thread_id: str | None = None


@dataclass(frozen=True, slots=True)
class Interaction:
    """A button click or menu choice: `value` is what the button carried.

    Values opsroom puts on buttons: `approve:<job>`, `deny:<job>`, `menu:<menu id>:<index>`.
    """

    principal: str
    room: str
    value: str
    display_name: str = ""
    message_id: str | None = None
    thread_id: str | None = None


Event = Inbound | Interaction
