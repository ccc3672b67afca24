"""`opsroom serve`: the engine, the web app under uvicorn, background work, shutdown.

Shutdown (SIGTERM/SIGINT): new messages get 503 and /healthz turns 503; running jobs get
`[web] shutdown_grace` to finish; then they are cancelled through the store (so they end
`cancelled`, process trees and all); whatever still hangs is cancelled in-process and
marked `interrupted`. No job is left `running`, then the store is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from opsroom.adapters.base import ChatAdapter, ConnectionState
from opsroom.engine.adapters import create_adapters, engine_services
from opsroom.engine.bridge import Bridge
from opsroom.engine.loop import on_stop_signals
from opsroom.errors import ConfigError, MissingExtra, StoreError
from opsroom.model.jobs import JobState
from opsroom.tasks import raise_if_cancelled
from opsroom.web.accounts import ADMIN, bootstrap_admin, has_demo_roles
from opsroom.web.app import context_of, create_app
from opsroom.web.context import WebContext

if TYPE_CHECKING:
    from opsroom.app import App
    from opsroom.engine.scheduler import Scheduler
    from opsroom.engine.watch import Watch

log = logging.getLogger("opsroom.serve")
ADOPT_EVERY = 3.0  # seconds between looks for orphaned queued jobs
EXPIRE_EVERY = 30.0  # seconds between approval expiry sweeps
_CANCEL_WAIT_EXTRA = 3.0  # beyond the kill grace, for cancelled jobs to report their end


@dataclass(frozen=True, slots=True)
class Listen:
    """Where to listen."""

    host: str
    port: int


def parse_listen(text: str) -> Listen:
    """`HOST:PORT` (`[::1]:8080` for IPv6); ValueError with a readable message."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, e.g. 127.0.0.1:8080, got {text!r}")
    return Listen(host, int(port))


def bind(listen: Listen) -> socket.socket:
    """A bound socket for uvicorn (binding here gives a clear error and the real port)."""
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((listen.host, listen.port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def timed_h11(timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol with a deadline for each request's head.

    uvicorn waits forever for headers, so a client trickling them holds a connection (and
    a file descriptor) for as long as it likes; this closes it after `timeout` seconds.
    Bodies get the same deadline from the gate (`opsroom.web.gate`).
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class TimedH11(H11Protocol):
        _timer: asyncio.TimerHandle | None = None
        _served: object = None  # the request cycle whose head already arrived

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and self.cycle is not self._served:
                self._served = self.cycle  # a new request's head is complete
                self._disarm()

        def on_response_complete(self) -> None:
            self._arm()  # the next request's head has the same deadline
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._timer = self.loop.call_later(timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _too_slow(self) -> None:
            if not self.transport.is_closing():
                self.transport.write(_HEAD_TIMEOUT)
                self.transport.close()

    return TimedH11


_SLOW_HEAD = b"request headers not received in time"
_HEAD_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_SLOW_HEAD), _SLOW_HEAD)
)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling (`serve` drains jobs before it stops), and
    saying when it listens: uvicorn only sets a flag, which would have to be polled."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.up = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.up.set()


async def serve(
    engine: App,
    *,
    listen: Listen,
    reset_admin_password: bool = False,
    echo: Callable[[str], None] = print,
) -> int:
    """Serve until SIGTERM/SIGINT, then drain and close the engine; the exit code."""
    try:
        sock = bind(listen)
    except OSError as e:
        echo(f"opsroom: cannot listen on {listen.host}:{listen.port}: {e.strerror or e}")
        await engine.close()
        return 2
    try:
        adapters = create_adapters(engine.settings, engine_services(engine.dispatcher))
    except MissingExtra as e:
        echo(f"opsroom: {e}")  # one line, as for every other missing extra
        await engine.close()
        return 2
    except ConfigError as e:
        echo(f"opsroom: configuration error: {e}")
        await engine.close()
        return 2
    web = create_app(engine)
    ctx = context_of(web)
    _mount_hooks(web, adapters)
    server = _Server(
        uvicorn.Config(
            web,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
            server_header=False,
            # h11 caps a request line and headers at 16 KiB; bodies are capped by the gate.
            http=timed_h11(engine.settings.web.body_timeout),
        )
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    undo_signals = on_stop_signals(loop, stop.set)  # Ctrl+C and Ctrl+Break on Windows
    server_task = asyncio.create_task(server.serve(sockets=[sock]))
    background: list[asyncio.Task[Any]] = []
    watch: Watch | None = None
    try:
        up = asyncio.create_task(server.up.wait())
        await asyncio.wait({server_task, up}, return_when=asyncio.FIRST_COMPLETED)
        up.cancel()
        if server_task.done() or not server.started:
            echo("opsroom: the web server did not start")
            return 1
        password = await bootstrap_admin(engine.store, reset=reset_admin_password)
        host, port = sock.getsockname()[:2]
        url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
        _announce(echo, url, engine, password)
        log.info("serving", extra={"listen": url})
        background = [
            asyncio.create_task(_every(ADOPT_EVERY, lambda: _adopt(ctx))),
            asyncio.create_task(_every(EXPIRE_EVERY, engine.dispatcher.approvals.expire)),
            # The web chat is a chat adapter like the others, with its own bridge.
            asyncio.create_task(ctx.start_chat().run()),
        ]
        for adapter in adapters:
            # Replies wait in the store while the platform is away, across restarts.
            bridge = Bridge(adapter, engine.dispatcher, outbox=engine.store)
            ctx.bridges[adapter.name] = bridge
            background.append(asyncio.create_task(bridge.run()))
            echo(f"  chat: {adapter.name} adapter started")
        # Schedules fire once the bridges exist: their replies take the same way as chat's.
        background.append(asyncio.create_task(_scheduler(ctx).run()))
        # Bots sharing the store: this one's heartbeat, and what gone bots and workers left.
        watch = _watch(ctx)
        background.append(asyncio.create_task(watch.run()))
        if adapters:
            background.append(asyncio.create_task(_every(5.0, lambda: _adapter_states(ctx))))
        background += await _keep_catalog_current(ctx, echo)
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({stopped, server_task}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        log.info("shutting down")
        ctx.accepting = False
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await drain(ctx, grace=engine.settings.web.shutdown_grace)
        if watch is not None:
            with contextlib.suppress(StoreError):  # unrecorded: found lost after lost_after
                await watch.stop()
        for bridge in ctx.bridges.values():
            await bridge.close()
    finally:
        undo_signals()
        ctx.hub.close()
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await server_task
        await engine.close()
        log.info("stopped")
    return 0


def _announce(echo: Callable[[str], None], url: str, engine: App, password: str | None) -> None:
    echo(f"opsroom is serving on {url}")
    count = len(engine.catalog.commands)
    echo(f"  catalog: {engine.deployer.label} ({count} command{'' if count == 1 else 's'})")
    if password is not None:
        echo(f'  web account "{ADMIN}" has the password: {password}')
        echo("  It is shown only this once and stored only as a hash.")
        echo(f"  Log in at {url}/login")
        echo(f"  Lost it? Start with: {opsroom_command()} serve --reset-admin-password")
    else:
        echo(f"  Log in at {url}/login with your web account")
    if has_demo_roles(engine.settings):
        echo(
            "  Approvals demo: !storage decommission netapp-legacy waits until a second "
            f"account approves it; add one with: {opsroom_command()} user add bob"
        )
    sys.stdout.flush()


def opsroom_command(
    argv0: str | None = None, *, cwd: Path | None = None, path: str | None = None
) -> str:
    """How to run opsroom again from this folder: `opsroom` only when that is on PATH.

    Started by `./scripts/start` (a checkout's own .venv), that script; else the path of
    the running executable, relative to the folder when it lies inside it.
    """
    here = Path.cwd() if cwd is None else cwd
    started = Path(argv0 if argv0 is not None else sys.argv[0])
    if started.name == "__main__.py":  # python -m opsroom
        return f"{Path(sys.executable).name} -m opsroom"
    exe = (here / started).resolve() if not started.is_absolute() else started.resolve()
    found = shutil.which("opsroom", path=path)
    if found is not None and Path(found).resolve() == exe:
        return "opsroom"
    start = here / "scripts" / "start"
    if start.is_file() and exe == (here / ".venv" / "bin" / "opsroom").resolve():
        return "./scripts/start"
    try:
        return str(exe.relative_to(here.resolve()))
    except ValueError:
        return str(exe)


def _mount_hooks(web: Any, adapters: list[ChatAdapter]) -> None:
    """Platforms that call us over HTTP get the endpoints their plugin names."""
    from starlette.routing import Route

    from opsroom.adapters.plugin import load_plugins

    plugins = load_plugins()
    for adapter in adapters:
        plugin = plugins.get(adapter.name)
        if plugin is None or plugin.hooks is None:
            continue
        for hook in plugin.hooks(adapter):
            # A route, not a mount: a mount would redirect the bare path. Each endpoint
            # verifies its platform's signature or token itself, so no login applies here.
            web.router.routes.append(Route(hook.path, hook.app, methods=["POST"]))


def _watch(ctx: WebContext) -> Watch:
    """This bot's heartbeat and the care of what gone bots and workers left (scale.md)."""
    from opsroom.engine.watch import Watch

    return Watch(
        ctx.engine.dispatcher,
        send_for=ctx.sender_for,
        can_tell=lambda room: room.partition(":")[0] in ctx.bridges,
        spawn=ctx.spawn,
    )


def _scheduler(ctx: WebContext) -> Scheduler:
    """The firing loop of schedules (SPEC §5.7); its jobs are tracked like the web's."""
    from opsroom.engine.scheduler import Scheduler

    return Scheduler(ctx.engine.dispatcher, send_for=ctx.sender_for, spawn=ctx.spawn)


async def _keep_catalog_current(
    ctx: WebContext, echo: Callable[[str], None]
) -> list[asyncio.Task[Any]]:
    """Announce catalog changes (SPEC §10) and start polling or watching for them."""
    deployer = ctx.engine.deployer

    async def announce(room: str, reply: Any) -> None:
        await ctx.sender_for(room)(reply)

    await deployer.attach(announce, console=echo)
    if deployer.webhook_error:
        echo(f"  warning: {deployer.webhook_error}; POST /hooks/git answers 401")
    tasks = [asyncio.create_task(deployer.warm())]
    if deployer.polls:
        tasks.append(asyncio.create_task(deployer.poll_forever()))
    if deployer.watches:
        tasks.append(asyncio.create_task(deployer.watch_forever()))
    return tasks


async def _adapter_states(ctx: WebContext) -> None:
    for name, bridge in ctx.bridges.items():
        connected = bridge.adapter.state is ConnectionState.CONNECTED
        ctx.metrics.adapter_connected.labels(name).set(1 if connected else 0)
        if connected and bridge.outbox.waiting:
            await bridge.outbox.flush()


async def _every(seconds: float, work: Callable[[], Any]) -> None:
    while True:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            raise_if_cancelled()
            log.exception("periodic work failed")
        await asyncio.sleep(seconds)


async def _adopt(ctx: WebContext) -> None:
    """Start adopting orphaned queued jobs; the jobs run as tracked background tasks."""
    if not ctx.accepting:
        return
    # adopt_orphans returns when the adopted jobs end: never wait for it here.
    ctx.spawn(ctx.engine.dispatcher.adopt_orphans(ctx.sender_for))


async def drain(ctx: WebContext, *, grace: float) -> None:
    """Let jobs finish for `grace` s, cancel the rest honestly, leave none `running`."""
    engine = ctx.engine
    owner = engine.dispatcher.ctx.owner
    await _wait(ctx.tasks, grace)
    mine = await _my_running(engine, owner)
    if mine:
        log.info("cancelling %d job(s) still running after the grace period", len(mine))
        for job_id in mine:
            await engine.store.request_cancel(job_id, by="opsroom serve (shutting down)")
        await _wait(ctx.tasks, engine.settings.runner.kill_grace + _CANCEL_WAIT_EXTRA)
    for task in list(ctx.tasks):
        task.cancel()  # queued jobs stay queued: the next start adopts them
    await asyncio.gather(*ctx.tasks, return_exceptions=True)
    from opsroom.store.owner import owner_alive

    # Anything of ours still `running` could not report its end: say so, honestly.
    await engine.store.reconcile(is_owner_alive=lambda o: o != owner and owner_alive(o))


async def _wait(tasks: set[asyncio.Task[Any]], timeout: float) -> None:
    if tasks:
        await asyncio.wait(set(tasks), timeout=timeout)


async def _my_running(engine: App, owner: str) -> list[int]:
    jobs = await engine.store.find_jobs(states=[JobState.RUNNING], limit=10_000)
    return [j.id for j in jobs if j.owner == owner]
