"""The Matrix connection: login, the sync loop, joins, and sending through matrix-nio.

One long-poll `/sync` loop receives everything. When the homeserver goes away the loop
retries with jittered exponential backoff (state DISCONNECTED) and resumes from its last
sync token, so nothing said meanwhile is lost and nothing is delivered twice. The first sync
after start only catches up (history is never treated as requests), and so does the part of
a newly joined room's timeline from before the bot joined.

Sends carry a transaction ID; one that failed on the wire is retried with the same ID, which
the homeserver de-duplicates, so a message is never posted twice. Edits made while the
homeserver is unreachable are kept (the latest per message) and applied on reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from opsroom.adapters.base import (
    AdapterUnavailable,
    Capabilities,
    ConnectionState,
    Event,
    MessageRef,
)
from opsroom.adapters.matrix import translate
from opsroom.adapters.matrix.settings import MatrixSettings
from opsroom.errors import AdapterError, ConfigError
from opsroom.model.blocks import Reply
from opsroom.render.matrix import MAX_LENGTH, MatrixRenderer
from opsroom.retry import Backoff

log = logging.getLogger("opsroom.adapters.matrix")

CAPABILITIES = Capabilities(
    threads=True,
    edits=True,
    buttons=False,
    max_message_length=MAX_LENGTH,
    edits_per_second=2.0,
)
_TIMELINE_LIMIT = 100  # events per room per sync; a longer outage shows up as `limited`
_SERVER_ERROR_RETRIES = 3
_SERVER_ERROR_WAIT = Backoff(first=0.5, cap=4.0)  # 0.5 s, 1 s, 2 s, jittered


def _nio() -> Any:
    # Imported on first use: matrix-nio (and aiohttp) cost start-up time for every CLI call.
    return importlib.import_module("nio")


async def _anyone(principal: str) -> bool:
    """Accept every invitation (an adapter built without policy's answer, as in tests)."""
    return True


def _raw(event: Any) -> dict[str, Any]:
    """The event as the server sent it (nio strips `content` from some stripped-state events)."""
    source = getattr(event, "source", None)
    raw: dict[str, Any] = dict(source) if isinstance(source, dict) else {}
    content = raw.get("content")
    content = dict(content) if isinstance(content, dict) else {}
    if isinstance(getattr(event, "content", None), dict):
        content = {**event.content, **content}
    if isinstance(getattr(event, "membership", None), str):
        content.setdefault("membership", event.membership)
    if isinstance(getattr(event, "canonical_alias", None), str):
        content.setdefault("alias", event.canonical_alias)
    raw["content"] = content
    return raw


class _TooLarge(AdapterError):
    """The homeserver refused an event as too large."""


class MatrixAdapter:
    """One Matrix account, synced continuously, speaking in every room it joined."""

    name = translate.PREFIX
    capabilities = CAPABILITIES

    def __init__(
        self,
        settings: MatrixSettings,
        *,
        password: str | None = None,
        access_token: str | None = None,
        may_invite: Callable[[str], Awaitable[bool]] | None = None,
        sync_timeout: float = 10.0,
        backoff: tuple[float, float] = (0.5, 15.0),
    ) -> None:
        if (password is None) == (access_token is None):
            raise ValueError("give exactly one of password or access_token")
        self.settings = settings
        self._password = password
        self._access_token = access_token
        self._may_invite = may_invite or _anyone
        self._sync_timeout = sync_timeout
        self._backoff = backoff
        self._state = ConnectionState.CLOSED
        self._client: Any = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._fatal: Exception | None = None
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._joined: set[str] = set()  # rooms whose timeline we follow
        self._answered_invites: set[str] = set()
        self._txns: dict[str, str] = {}  # content fingerprint → txn ID of a send that failed
        self._deferred_edits: dict[str, tuple[MessageRef, Reply]] = {}
        self._overflow: dict[str, set[str]] = {}  # edited message → extra parts already posted

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """The connection's state right now."""
        return self._state

    async def connect(self) -> None:
        """Log in and start syncing; returns after the first sync (retrying while unreachable).

        A login the homeserver refuses is a ConfigError: retrying cannot fix it.
        """
        if self._task is None:
            nio = _nio()
            config = nio.AsyncClientConfig(
                max_timeouts=0,  # our loop does the retrying, with backoff and state
                max_limit_exceeded=10,  # 429: nio waits for Retry-After, this many times
                request_timeout=30,
                store_sync_tokens=False,
                encryption_enabled=False,
            )
            self._client = nio.AsyncClient(
                self.settings.homeserver, self.settings.user_id, config=config
            )
            self._state = ConnectionState.CONNECTING
            self._task = asyncio.create_task(self._run(), name="matrix-sync")
        await self._ready.wait()
        if self._fatal is not None:
            raise self._fatal

    async def close(self) -> None:
        """Stop syncing and log out a password session (so devices do not pile up)."""
        self._state = ConnectionState.CLOSED
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        client, self._client = self._client, None
        if client is None:
            return
        if self._password is not None and client.access_token:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.logout(), 5)
        await client.close()

    async def events(self) -> AsyncIterator[Event]:
        """Inbound messages from every joined room, in arrival order."""
        while True:
            yield await self._queue.get()

    # -- the sync loop -----------------------------------------------------------------------

    async def _run(self) -> None:
        nio = _nio()
        attempt = 0
        logged_in = False
        first = True
        while True:
            try:
                if not logged_in:
                    await self._login()
                    logged_in = True
                    await self._join_configured()
                response = await self._client.sync(
                    timeout=0 if first else int(self._sync_timeout * 1000),
                    sync_filter={"room": {"timeline": {"limit": 1 if first else _TIMELINE_LIMIT}}},
                    since=self._client.next_batch,
                    set_presence="online",
                )
                if isinstance(response, nio.SyncError):
                    if response.status_code == "M_UNKNOWN_TOKEN" and self._password is not None:
                        logged_in = False  # the session ended (logout, soft logout): log in again
                    raise ConnectionError(str(response))
            except ConfigError as error:
                self._fatal = error
                self._state = ConnectionState.CLOSED
                self._ready.set()
                return
            except (OSError, TimeoutError, ConnectionError, nio.ProtocolError) as error:
                await self._lost(error, attempt)
                attempt += 1
                continue
            except Exception as error:  # aiohttp's errors are not all OSErrors
                if type(error).__module__.startswith(("aiohttp", "nio")):
                    await self._lost(error, attempt)
                    attempt += 1
                    continue
                raise
            reconnected = self._state is not ConnectionState.CONNECTED
            self._state = ConnectionState.CONNECTED
            attempt = 0
            await self._absorb(response, catch_up=first)
            first = False
            self._ready.set()
            if reconnected and self._deferred_edits:
                await self._apply_deferred_edits()

    async def _lost(self, error: Exception, attempt: int) -> None:
        if self._state is ConnectionState.CONNECTED:
            log.warning("lost the Matrix homeserver: %s", error)
        self._state = ConnectionState.DISCONNECTED
        await asyncio.sleep(Backoff(*self._backoff).delay(attempt))

    async def _login(self) -> None:
        nio = _nio()
        client = self._client
        if self._access_token is not None:
            client.access_token = self._access_token
            client.user_id = self.settings.user_id
            who = await client.whoami()
            if isinstance(who, nio.WhoamiError):
                if who.status_code in ("M_UNKNOWN_TOKEN", "M_FORBIDDEN"):
                    raise ConfigError(f"adapters.matrix.access_token: refused: {who.message}")
                raise ConnectionError(str(who))
            if who.user_id != self.settings.user_id:
                raise ConfigError(
                    f"adapters.matrix.access_token: belongs to {who.user_id}, "
                    f"not {self.settings.user_id}"
                )
            client.device_id = who.device_id
            return
        response = await client.login(self._password, device_name="opsroom")
        if isinstance(response, nio.LoginError):
            if response.status_code in ("M_FORBIDDEN", "M_USER_DEACTIVATED", "M_INVALID_PARAM"):
                raise ConfigError(f"adapters.matrix.password: login refused: {response.message}")
            raise ConnectionError(str(response))

    async def _join_configured(self) -> None:
        nio = _nio()
        for room in self.settings.rooms:
            response = await self._client.join(room)
            if isinstance(response, nio.JoinError):
                log.warning("cannot join the Matrix room %s: %s", room, response.message)

    async def _absorb(self, response: Any, *, catch_up: bool) -> None:
        for room_id, info in response.rooms.invite.items():
            await self._answer_invite(room_id, info)
        for room_id, info in response.rooms.join.items():
            events = [_raw(e) for e in info.timeline.events]
            if catch_up:
                self._joined.add(room_id)
                continue
            if room_id not in self._joined:
                self._joined.add(room_id)
                own = self.settings.user_id
                joins = [i for i, e in enumerate(events) if translate.is_own_join(e, own)]
                if joins:
                    events = events[joins[-1] + 1 :]  # what came before the join is history
            for event in events:
                self._deliver(room_id, event)
        for room_id in response.rooms.leave:
            self._joined.discard(room_id)
            self._answered_invites.discard(room_id)

    def _deliver(self, room_id: str, event: Mapping[str, Any]) -> None:
        room = self._client.rooms.get(room_id)
        sender = event.get("sender")
        name = room.user_name(sender) if room is not None and isinstance(sender, str) else ""
        inbound = translate.inbound_from(
            event,
            room_id,
            own_user=self.settings.user_id,
            direct=room is not None and room.member_count == 2,
            display_name=name or "",
        )
        if inbound is not None:
            self._queue.put_nowait(inbound)

    async def _answer_invite(self, room_id: str, info: Any) -> None:
        if room_id in self._answered_invites:
            return
        self._answered_invites.add(room_id)
        state = [_raw(e) for e in info.invite_state]
        inviter = translate.inviter_of(state, self.settings.user_id)
        if self.settings.rooms:
            aliases = {
                e.get("content", {}).get("alias")
                for e in state
                if e.get("type") == "m.room.canonical_alias"
            }
            welcome = room_id in self.settings.rooms or bool(aliases & set(self.settings.rooms))
        else:
            welcome = inviter is not None and await self._may_invite(
                translate.principal_of(inviter)
            )
        if welcome:
            response = await self._client.join(room_id)
            if isinstance(response, _nio().JoinError):
                log.warning("cannot join %s: %s", room_id, response.message)
            return
        log.info("declined an invite to %s from %s", room_id, inviter)
        await self._client.room_leave(room_id)

    # -- sending -----------------------------------------------------------------------------

    async def _send_event(self, room_id: str, event_type: str, content: dict[str, Any]) -> str:
        """Post one event; its event ID. AdapterUnavailable when it may not have arrived."""
        if self._state is not ConnectionState.CONNECTED or self._client is None:
            raise AdapterUnavailable("the Matrix homeserver is not reachable")
        nio = _nio()
        fingerprint = hashlib.sha256(
            json.dumps([room_id, event_type, content], sort_keys=True).encode()
        ).hexdigest()
        txn = self._txns.get(fingerprint) or uuid.uuid4().hex
        for attempt in range(_SERVER_ERROR_RETRIES + 1):
            try:
                response = await self._client.room_send(
                    room_id, event_type, content, tx_id=txn, ignore_unverified_devices=True
                )
            except Exception as error:
                if not isinstance(error, OSError | TimeoutError) and not type(
                    error
                ).__module__.startswith("aiohttp"):
                    raise
                # It may have arrived: a retry reuses the transaction ID, which Synapse dedups.
                self._txns[fingerprint] = txn
                raise AdapterUnavailable(f"sending to Matrix failed: {error}") from error
            if not isinstance(response, nio.RoomSendError):
                self._txns.pop(fingerprint, None)
                return str(response.event_id)
            status = getattr(getattr(response, "transport_response", None), "status", 0)
            if response.status_code == "M_TOO_LARGE" or status == 413:
                raise _TooLarge(str(response))
            if status >= 500 and attempt < _SERVER_ERROR_RETRIES:
                await asyncio.sleep(_SERVER_ERROR_WAIT.delay(attempt))
                continue
            if status >= 500 or status == 429:
                self._txns[fingerprint] = txn
                raise AdapterUnavailable(f"Matrix refused the message for now: {response}")
            # Permanent (not in the room, forbidden): retrying cannot help; say so in the log.
            log.error("Matrix refused a message to %s: %s", room_id, response)
            return ""
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post_all(
        self, room_id: str, contents: list[dict[str, Any]], thread_id: str | None
    ) -> list[str]:
        ids = []
        for content in contents:
            body = translate.in_thread(content, thread_id) if thread_id else content
            ids.append(await self._send_event(room_id, "m.room.message", body))
        return ids

    async def send(self, room: str, reply: Reply, *, thread_id: str | None = None) -> MessageRef:
        """Post a reply (in the thread `thread_id`, if given); split or truncated to fit."""
        room_id = translate.room_id_of(room)
        limit = self.capabilities.max_message_length
        while True:
            try:
                ids = await self._post_all(room_id, MatrixRenderer(limit).render(reply), thread_id)
                return MessageRef(room=room, id=ids[0] if ids else "", thread_id=thread_id)
            except _TooLarge:
                if limit < 1000:
                    raise
                limit //= 2  # re-chunk smaller

    async def edit(self, ref: MessageRef, reply: Reply) -> None:
        """Replace a message's content (`m.replace`); kept for reconnect if unreachable."""
        if not ref.id:
            return
        if self._state is not ConnectionState.CONNECTED:
            self._deferred_edits[ref.id] = (ref, reply)
            return
        room_id = translate.room_id_of(ref.room)
        first, *rest = MatrixRenderer(self.capabilities.max_message_length).render(reply)
        try:
            await self._send_event(room_id, "m.room.message", translate.edit_of(ref.id, first))
        except AdapterUnavailable:
            self._deferred_edits[ref.id] = (ref, reply)
            return
        self._deferred_edits.pop(ref.id, None)
        # What does not fit the edited message follows it, once per distinct part.
        posted = self._overflow.setdefault(ref.id, set())
        for content in rest:
            key = json.dumps(content, sort_keys=True)
            if key not in posted:
                await self._post_all(room_id, [content], ref.thread_id)
                posted.add(key)

    async def _apply_deferred_edits(self) -> None:
        pending, self._deferred_edits = self._deferred_edits, {}
        for ref, reply in pending.values():
            try:
                await self.edit(ref, reply)
            except Exception:  # one bad edit must not stop the sync loop
                log.exception("a deferred Matrix edit failed")
