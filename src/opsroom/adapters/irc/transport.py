"""The IRC connection: jaraco's `irc` asyncio client, registration, pacing and reconnects.

`irc.client_aio` owns the socket, line buffering and PING/PONG; every line it reads is
handed to `translate` (capability negotiation, SASL, accounts) through the library's
`all_raw_messages` event, so the tested pure code is what runs live. Outgoing PRIVMSGs go
through one token bucket (flood control) under one lock, so replies never interleave. A
supervisor task reconnects with jittered exponential backoff and rejoins the channels.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

from opsroom.adapters.base import (
    AdapterUnavailable,
    Capabilities,
    ConnectionState,
    Event,
    MessageRef,
)
from opsroom.adapters.irc.flood import TokenBucket
from opsroom.adapters.irc.settings import IrcSettings
from opsroom.adapters.irc.translate import (
    CHANNEL_TYPES,
    AccountBook,
    Handshake,
    IrcMessage,
    build_line,
    fold,
    is_channel,
    parse_line,
    to_event,
    whox_line,
)
from opsroom.model.blocks import Reply
from opsroom.model.messages import Inbound
from opsroom.render.irc import IrcRenderer
from opsroom.retry import Backoff

log = logging.getLogger("opsroom.adapters.irc")

_HOSTMASK_ROOM = 1 + 11 + 1 + 63  # "!~user@host" at their usual maxima, for the line budget
_JOIN_FAILURES = frozenset({"403", "405", "471", "473", "474", "475", "477"})
_WHOX_WAIT = 5.0
_GOODBYE_WAIT = 1.0  # for the server's answer to our TLS goodbye, at most


def tls_context(settings: IrcSettings) -> ssl.SSLContext:
    """The TLS context for the server: system CAs, or `tls_ca_file` when set."""
    return ssl.create_default_context(cafile=settings.tls_ca_file)


class IrcAdapter:
    """One IRC network connection, speaking for the bot in its channels and DMs."""

    name = "irc"

    def __init__(
        self,
        settings: IrcSettings,
        *,
        password: str | None = None,
        prefix: str = "!",
        backoff: tuple[float, float] = (1.0, 60.0),
        connect_timeout: float = 30.0,
        keepalive: float = 90.0,
    ) -> None:
        self.settings = settings
        self.capabilities = Capabilities(
            threads=False,
            edits=False,
            buttons=False,
            max_message_length=400,
        )
        self._password = password
        self._prefix = prefix
        self._backoff = backoff
        self._connect_timeout = connect_timeout
        self._keepalive = keepalive
        self._state = ConnectionState.DISCONNECTED
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._incoming: asyncio.Queue[IrcMessage] = asyncio.Queue()
        self._bucket = TokenBucket(settings.rate, settings.burst)
        self._send_lock = asyncio.Lock()
        self._book = AccountBook()
        self._dm_nicks: dict[str, str] = {}  # DM room → the nick to answer
        self._whox: dict[str, asyncio.Future[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._gone: asyncio.Future[None] | None = None  # the connection is down (`close`)
        self._closed = False
        self._conn: Any = None
        self._handshake = Handshake()
        self._me = settings.nick
        self._tries = 0
        self._pending_joins: set[str] = set()
        self._chantypes = CHANNEL_TYPES
        self._whox_supported = False
        self._last_heard = time.monotonic()
        self._sent = 0

    # -- the ChatAdapter protocol -----------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """The connection's state right now."""
        return self._state

    @property
    def nick(self) -> str:
        """The bot's nick right now (an alternate when the configured one was taken)."""
        return self._me

    async def connect(self) -> None:
        """Start the connection (kept up until `close`); wait for the first registration."""
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._supervise()),
                asyncio.create_task(self._route()),
            ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), self._connect_timeout)
        if self._state is not ConnectionState.CONNECTED:
            log.warning("IRC: not connected yet; still trying in the background")

    async def events(self) -> AsyncIterator[Event]:
        """Inbound messages, in arrival order, from every channel and DM."""
        while True:
            yield await self._events.get()

    async def send(self, room: str, reply: Reply, *, thread_id: str | None = None) -> MessageRef:
        """Post a reply as paced lines; AdapterUnavailable when disconnected."""
        del thread_id  # IRC has no threads
        target = self._target(room)
        renderer = IrcRenderer(
            max_bytes=self._line_budget(target),
            max_lines=self.settings.max_lines,
            prefix=self._prefix,
        )
        lines = renderer.render(reply)
        async with self._send_lock:
            for text in lines:
                if self._state is not ConnectionState.CONNECTED:
                    raise AdapterUnavailable("not connected to the IRC server")
                await self._bucket.take()
                self._write("PRIVMSG", target, text)
        self._sent += 1
        return MessageRef(room=room, id=str(self._sent))

    async def edit(self, ref: MessageRef, reply: Reply) -> None:
        """IRC cannot edit: the new content is posted as new lines."""
        await self.send(ref.room, reply)

    async def close(self) -> None:
        """Say goodbye and stop reconnecting."""
        self._closed = True
        if self._conn is not None and self._state is ConnectionState.CONNECTED:
            with contextlib.suppress(Exception):
                self._conn.quit("opsroom stopping")
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        transport = getattr(self._conn, "transport", None)
        gone = self._gone
        self._disconnect()
        if transport is not None:
            # TLS says goodbye asynchronously: wait until the connection is down (a server
            # that never answers gets _GOODBYE_WAIT), then let go for good.
            if gone is not None:
                await asyncio.wait({gone}, timeout=_GOODBYE_WAIT)
            transport.abort()
        self._state = ConnectionState.CLOSED

    # -- connection lifecycle ---------------------------------------------------------------

    async def _supervise(self) -> None:
        """Connect, wait for the connection to end, back off, repeat."""
        waits = Backoff(*self._backoff)
        attempt = 0
        while not self._closed:
            registered = False
            try:
                registered = await self._session()
            except (OSError, TimeoutError, ssl.SSLError) as e:
                log.warning("IRC connection failed: %s", e)
            except Exception:
                log.exception("IRC connection failed")
            self._state = ConnectionState.DISCONNECTED
            self._connected.clear()
            self._disconnect()
            if self._closed:
                return
            # A session that registered was a success: the next failure starts over.
            attempt = 0 if registered else attempt + 1
            await asyncio.sleep(waits.delay(attempt))

    async def _session(self) -> bool:
        """One connection, from TCP/TLS to its end; True if it got as far as registering."""
        import irc.client_aio  # type: ignore[import-untyped]  # lazy: CLI start-up
        from jaraco.stream import buffer  # type: ignore[import-untyped]

        self._state = ConnectionState.CONNECTING
        self._lost.clear()
        self._handshake = Handshake(
            account=self.settings.sasl_account or self.settings.nick, password=self._password
        )
        self._me = self.settings.nick
        self._tries = 0
        self._pending_joins = set()
        self._whox_supported = False
        loop = asyncio.get_running_loop()
        reactor = irc.client_aio.AioReactor(loop=loop)
        reactor.add_global_handler("all_raw_messages", self._on_raw, -100)
        reactor.add_global_handler("disconnect", self._on_disconnect)
        conn = reactor.server()
        conn.buffer_class = buffer.LenientDecodingLineBuffer  # bad UTF-8 must not kill us
        context = tls_context(self.settings) if self.settings.tls else None

        gone = self._gone = loop.create_future()

        async def factory(protocol: Any, address: tuple[str, int]) -> Any:
            lost = protocol.connection_lost

            def connection_lost(exc: Exception | None) -> None:
                try:
                    lost(exc)
                finally:
                    if not gone.done():
                        gone.set_result(None)  # what `close` waits for

            protocol.connection_lost = connection_lost
            transport, proto = await loop.create_connection(
                lambda: protocol, address[0], address[1], ssl=context
            )
            # Before NICK/USER: the server holds registration until we say CAP END.
            for line in self._handshake.start():
                transport.write(line.encode() + b"\r\n")
            return transport, proto

        self._conn = conn
        await asyncio.wait_for(
            conn.connect(
                self.settings.server,
                self.settings.port,
                self.settings.nick,
                username=self.settings.nick,
                ircname="opsroom",
                connect_factory=factory,
            ),
            self._connect_timeout,
        )
        self._last_heard = time.monotonic()
        watchdog = asyncio.create_task(self._watch())
        try:
            await asyncio.wait_for(self._connected.wait(), self._connect_timeout)
            log.info("IRC: connected as %s", self._me)
            await self._lost.wait()
        finally:
            watchdog.cancel()
        return True

    async def _watch(self) -> None:
        """PING a quiet server; drop a connection that stopped answering."""
        while True:
            await asyncio.sleep(self._keepalive / 3)
            quiet = time.monotonic() - self._last_heard
            if quiet > self._keepalive * 2:
                log.warning("IRC: server silent for %.0f s; reconnecting", quiet)
                self._disconnect()
                return
            if quiet > self._keepalive:
                self._write_raw(build_line("PING", "opsroom"))

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.disconnect("")
            # The library skips closing when it thinks it is already disconnected.
            transport = getattr(conn, "transport", None)
            if transport is not None:
                transport.close()
        self._lost.set()
        for future in self._whox.values():
            if not future.done():
                future.set_result(None)
        self._whox.clear()

    def _on_disconnect(self, connection: Any, event: Any) -> None:
        if connection is self._conn or self._conn is None:
            self._state = ConnectionState.DISCONNECTED
            self._connected.clear()
            self._lost.set()

    # -- lines from the server --------------------------------------------------------------

    def _on_raw(self, connection: Any, event: Any) -> None:
        """Every line the server sends, in order (called by the library's reactor)."""
        if connection is not self._conn:
            return
        self._last_heard = time.monotonic()
        msg = parse_line(event.arguments[0])
        if msg is None:
            return
        try:
            for line in self._handshake.feed(msg):
                self._write_raw(line)
            self._book.observe(msg)
            if msg.command in _JOIN_FAILURES:
                self._join_failed(msg)
            handler = getattr(self, f"_on_{msg.command.lower()}", None)
            if handler is not None:
                handler(msg)
        except AdapterUnavailable:
            pass  # the connection went away under us; the supervisor reconnects
        except Exception:
            log.exception("IRC: could not handle a line from the server")

    def _on_001(self, msg: IrcMessage) -> None:
        self._me = msg.params[0] if msg.params else self._me
        if self._handshake.sasl is False:
            log.error("IRC: SASL login as %s was refused", self._handshake.account)
        self._pending_joins = {fold(c) for c in self.settings.channels}
        for channel in self.settings.channels:
            self._write("JOIN", channel)
        self._maybe_connected()

    def _on_005(self, msg: IrcMessage) -> None:
        for token in msg.params[1:-1]:
            key, _, value = token.partition("=")
            if key == "CHANTYPES" and value:
                self._chantypes = value
            elif key == "WHOX":
                self._whox_supported = True

    def _on_433(self, msg: IrcMessage) -> None:
        """Nick in use (or refused): during registration, try an alternate."""
        if self._handshake.done:
            return  # our attempt to take back the configured nick failed: keep the current one
        self._tries += 1
        base = self.settings.nick
        self._me = f"{base}_" if self._tries == 1 else f"{base}{self._tries}"
        self._write("NICK", self._me)

    _on_432 = _on_433
    _on_436 = _on_433

    def _on_nick(self, msg: IrcMessage) -> None:
        new = msg.params[0] if msg.params else ""
        if fold(msg.nick) == fold(self._me):
            self._me = new
            return
        for room, nick in list(self._dm_nicks.items()):
            if fold(nick) == fold(msg.nick):
                self._dm_nicks[room] = new
        self._reclaim(msg.nick)

    def _on_quit(self, msg: IrcMessage) -> None:
        self._reclaim(msg.nick)

    def _reclaim(self, gone: str) -> None:
        """Whoever held our configured nick let it go: take it back."""
        wanted = self.settings.nick
        if fold(gone) == fold(wanted) and fold(self._me) != fold(wanted):
            self._write("NICK", wanted)

    def _on_join(self, msg: IrcMessage) -> None:
        if fold(msg.nick) == fold(self._me) and msg.params:
            self._pending_joins.discard(fold(msg.params[0]))
            self._maybe_connected()

    def _on_kick(self, msg: IrcMessage) -> None:
        if len(msg.params) >= 2 and fold(msg.params[1]) == fold(self._me):
            log.warning("IRC: kicked from %s; rejoining", msg.params[0])
            self._write("JOIN", msg.params[0])

    def _join_failed(self, msg: IrcMessage) -> None:
        if len(msg.params) >= 2:
            log.error("IRC: cannot join %s: %s", msg.params[1], msg.params[-1])
            self._pending_joins.discard(fold(msg.params[1]))
            self._maybe_connected()

    def _on_315(self, msg: IrcMessage) -> None:
        """End of WHO: whatever the server did not vouch for has no account."""
        nick = fold(msg.params[1]) if len(msg.params) >= 2 else ""
        future = self._whox.pop(nick, None)
        if future is not None and not future.done():
            future.set_result(None)

    def _on_privmsg(self, msg: IrcMessage) -> None:
        self._incoming.put_nowait(msg)

    def _maybe_connected(self) -> None:
        if self._handshake.done and not self._pending_joins:
            self._state = ConnectionState.CONNECTED
            self._connected.set()

    # -- inbound messages ---------------------------------------------------------------------

    async def _route(self) -> None:
        """Turn PRIVMSGs into events, one at a time (an account lookup may take a moment)."""
        while True:
            msg = await self._incoming.get()
            try:
                account = await self._account_of(msg)
                event = to_event(
                    msg,
                    me=self._me,
                    account=account,
                    prefix=self._prefix,
                    chantypes=self._chantypes,
                )
            except Exception:
                log.exception("IRC: could not handle a message")
                continue
            if isinstance(event, Inbound):
                if event.direct:
                    self._dm_nicks[event.room] = msg.nick
                self._events.put_nowait(event)

    async def _account_of(self, msg: IrcMessage) -> str | None:
        """The sender's services account: message tag, tracked state, then WHOX."""
        enabled = self._handshake.enabled
        if "account-tag" in enabled:
            return msg.tags.get("account")  # the server tags every message of a logged-in user
        tracked = "account-notify" in enabled and "extended-join" in enabled
        if tracked and self._book.known(msg.nick):
            return self._book.account(msg.nick)
        if not self._whox_supported or self._conn is None:
            return None  # nobody can vouch for this nick: treat it as having no account
        nick = fold(msg.nick)
        future = self._whox.get(nick)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._whox[nick] = future
            self._book.forget(msg.nick)
            self._write_raw(whox_line(msg.nick))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(future), _WHOX_WAIT)
        return self._book.account(msg.nick)

    # -- lines to the server ----------------------------------------------------------------

    def _target(self, room: str) -> str:
        """The channel or nick a room's messages go to."""
        name = room.removeprefix("irc:")
        if is_channel(name, self._chantypes):
            return name
        if name.startswith("@~"):
            return name[2:]
        if name.startswith("@"):
            return self._dm_nicks.get(room, name[1:])
        raise AdapterUnavailable(f"not an IRC room: {room}")

    def _line_budget(self, target: str) -> int:
        """Bytes of text one PRIVMSG to `target` may carry within the 512-byte limit."""
        overhead = len(f":{self._me}{'x' * _HOSTMASK_ROOM} PRIVMSG {target} :\r\n".encode())
        return min(self.capabilities.max_message_length, 512 - overhead)

    def _write(self, command: str, *params: str) -> None:
        self._write_raw(build_line(command, *params))

    def _write_raw(self, line: str) -> None:
        conn = self._conn
        if conn is None:
            raise AdapterUnavailable("not connected to the IRC server")
        try:
            conn.send_raw(line)
        except Exception as e:  # the library raises its own "not connected" errors
            raise AdapterUnavailable(f"IRC send failed: {e}") from None
