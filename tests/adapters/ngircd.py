"""A real ngircd for the IRC adapter's tests, and a person who talks to it over a socket.

ngircd starts in tens of milliseconds, so every test gets its own server on free ports:
plain TCP and TLS (a self-signed certificate made with `openssl req`). It has no services,
so nobody on it has an account. Missing ngircd or openssl fails the tests, never skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from adapters.contract import Seen
from opsroom.adapters.irc.translate import IrcMessage, parse_line
from support import port_for_a_server


def _need(program: str) -> str:
    path = shutil.which(program) or (
        f"/usr/sbin/{program}" if Path(f"/usr/sbin/{program}").exists() else None
    )
    if path is None:
        pytest.fail(f"{program} is not installed (apt-get install -y ngircd openssl)")
    return path


class Ngircd:
    """One ngircd process in `folder`, restartable on the same ports."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = port_for_a_server()
        self.tls_port = port_for_a_server()
        self.cert = folder / "cert.pem"
        self.process: subprocess.Popen[bytes] | None = None
        self._binary = _need("ngircd")
        folder.chmod(0o777)  # ngircd writes its pid file after dropping to nobody
        subprocess.run(
            [
                _need("openssl"), "req", "-x509", "-newkey", "ec",
                "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", str(folder / "key.pem"), "-out", str(self.cert), "-days", "2",
                "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        (folder / "key.pem").chmod(0o644)
        user = "\tServerUID = 65534\n\tServerGID = 65534\n" if os.geteuid() == 0 else ""
        self.config = folder / "ngircd.conf"
        self.config.write_text(
            "[Global]\n\tName = irc.test.local\n\tInfo = opsroom test ircd\n"
            f"\tListen = 127.0.0.1\n\tPorts = {self.port}\n\tPidFile = {folder}/ngircd.pid\n"
            f"\tMotdPhrase = test\n{user}"
            "[Limits]\n\tMaxConnectionsIP = 0\n\tMaxNickLength = 30\n\tMaxPenaltyTime = 0\n"
            "[Options]\n\tPAM = no\n\tDNS = no\n\tIdent = no\n\tRequireAuthPing = no\n"
            f"[SSL]\n\tCertFile = {self.cert}\n\tKeyFile = {folder}/key.pem\n"
            f"\tPorts = {self.tls_port}\n"
            "[Channel]\n\tName = #ops\n"
        )

    def start(self) -> None:
        """Start ngircd and wait until both ports accept connections."""
        with (self.folder / "ngircd.log").open("ab") as log:
            self.process = subprocess.Popen(
                [self._binary, "-n", "-f", str(self.config)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + 10
        for port in (self.port, self.tls_port):
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                assert self.process.poll() is None, (self.folder / "ngircd.log").read_text()
                assert time.monotonic() < deadline, "ngircd did not start"
                time.sleep(0.02)

    def stop(self) -> None:
        """Kill ngircd the way a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


@dataclass
class Person:
    """Someone in an IRC client: a plain socket, no account (ngircd has no services)."""

    server: Ngircd
    nick: str
    channel: str = "#ops"
    heard: list[tuple[float, IrcMessage]] = field(default_factory=list)
    _writer: asyncio.StreamWriter | None = None
    _reader_task: asyncio.Task[None] | None = None
    _joined: asyncio.Event = field(default_factory=asyncio.Event)
    _count: int = 0

    async def connect(self) -> None:
        """Register with the server and join the channel."""
        self._joined.clear()
        reader, self._writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        self._reader_task = asyncio.create_task(self._read(reader))
        self.send(f"NICK {self.nick}", f"USER {self.nick} 0 * :{self.nick}")
        self.send(f"JOIN {self.channel}")
        await asyncio.wait_for(self._joined.wait(), 10)

    def send(self, *lines: str) -> None:
        """Raw lines to the server."""
        assert self._writer is not None
        for line in lines:
            self._writer.write(line.encode() + b"\r\n")

    async def say(self, text: str, to: str | None = None) -> str:
        """A PRIVMSG to the channel (or a nick); returns a local id."""
        self.send(f"PRIVMSG {to or self.channel} :{text}")
        assert self._writer is not None
        await self._writer.drain()
        self._count += 1
        return str(self._count)

    def lines_from(self, nick: str, target: str | None = None) -> list[tuple[float, str]]:
        """(arrival time, text) of every PRIVMSG `nick` sent to `target` (default: channel)."""
        want = target or self.channel
        return [
            (t, m.params[1])
            for t, m in self.heard
            if m.command == "PRIVMSG" and m.nick == nick and m.params[0] == want
        ]

    def seen(self, bot: str) -> list[Seen]:
        """The channel's messages from the bot, as Seen."""
        return [
            Seen(id=str(i), text=text, sender=bot)
            for i, (_, text) in enumerate(self.lines_from(bot))
        ]

    async def close(self) -> None:
        """Leave."""
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while raw := await reader.readline():
            msg = parse_line(raw.decode(errors="replace"))
            if msg is None:
                continue
            if msg.command == "PING":
                self.send("PONG :" + (msg.params[0] if msg.params else ""))
            elif msg.command == "JOIN" and msg.nick == self.nick:
                self._joined.set()
            self.heard.append((time.monotonic(), msg))


async def wait_for(predicate: object, timeout: float = 15.0) -> None:
    """Poll until `predicate()` is true, or fail."""
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.fixture(name="ngircd")
def ngircd_server(tmp_path: Path) -> Iterator[Ngircd]:
    """A running ngircd, stopped after the test."""
    folder = tmp_path / "ngircd"
    folder.mkdir()
    server = Ngircd(folder)
    server.start()
    yield server
    server.stop()
