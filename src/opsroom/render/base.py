"""The one renderer protocol: neutral reply blocks → one platform's messages.

A renderer is a small frozen object built with everything its platform's messages depend
on (a size limit, the command prefix, where button clicks go) and rendering is one call:
`renderer.render(reply)` gives the messages that show the reply, in order, each within
the platform's limits. Renderers are pure: no I/O, no clock, no platform library, so
each is tested on exact output.

Platforms that edit a message in place (a job's live status) also need the reply as
exactly one message; their renderers are `EditRenderer`s and add `render_single`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar, runtime_checkable

from opsroom.model.blocks import Reply

__all__ = ["EditRenderer", "Renderer"]

M_co = TypeVar("M_co", covariant=True)


@runtime_checkable
class Renderer(Protocol[M_co]):
    """Reply blocks → a platform's messages."""

    def render(self, reply: Reply) -> Sequence[M_co]:
        """The messages that show `reply`, in order, each within the platform's limits."""
        ...


@runtime_checkable
class EditRenderer(Renderer[M_co], Protocol[M_co]):
    """A renderer for a platform whose messages can be edited in place."""

    def render_single(self, reply: Reply) -> M_co:
        """`reply` as exactly one message, for an edit: the end kept when it must shrink."""
        ...
