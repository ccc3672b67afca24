"""Notices between the processes sharing a SQLite store: a doorbell beside its file.

SQLite has no LISTEN/NOTIFY. So each process that waits for what another may do (a cancel
asked from a terminal, the end of a job it waits for, a freed place in the queue) binds a
Unix datagram socket in a hidden folder beside the database, `.<file>.notices/` (hidden, so
that `cp opsroom.db* backup/` and the like still find files only), and a writer, once
its transaction has committed, sends that transaction's notices (`<topic>:<job id>`, as on
PostgreSQL) to every socket there: one datagram per listener per commit, never blocking.
Notices are hints, never the record: one lost (a listener's full buffer, a writer killed
between its commit and its ring) costs its waiter a look every `[workers] recheck`, as on
PostgreSQL. A socket left by a process that died is removed by the first ring it refuses.
Where the folder cannot be had (not writable, someone else's, a path too long for a
socket), the process does without: its waiters look twice a second, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import stat

from opsroom.store.notify import Listening

log = logging.getLogger("opsroom.store")

_PATH_MAX = 107  # a Unix socket's path (sun_path, less its terminating zero)
_DATAGRAM = 65536  # the most one datagram carries here


def folder_of(database: str) -> str:
    """The doorbell folder of the SQLite file at `database`: `.<name>.notices` beside it."""
    where, name = os.path.split(os.path.abspath(database))
    return os.path.join(where, f".{name}.notices")


class Doorbell(Listening):
    """This process's socket in the folder, and the waiters the notices it gets wake."""

    def __init__(self, folder: str) -> None:
        super().__init__()
        self.folder = folder
        self._sock: socket.socket | None = None
        self._path = ""
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self) -> bool:
        """Bind this process's socket in the folder (made if need be); whether it could."""
        if self._sock is not None:
            return True
        if not hasattr(socket, "AF_UNIX"):
            return False  # Windows: its workers share PostgreSQL, which has notices
        name = f"{os.getpid()}-{secrets.token_hex(4)}"
        path = os.path.join(self.folder, name)
        if len(os.fsencode(path)) > _PATH_MAX:
            log.debug("no doorbell: %s is too long a path for a socket", path)
            return False
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(self.folder, 0o700)
            found = os.lstat(self.folder)
            if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.geteuid():
                log.debug("no doorbell: %s is not a folder of this user", self.folder)
                return False
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.setblocking(False)
                sock.bind(path)
            except OSError:
                sock.close()
                raise
        except OSError as e:
            log.debug("no doorbell in %s: %s", self.folder, e)
            return False
        self._sock, self._path = sock, path
        return True

    def start(self) -> None:
        """Hear notices on the running event loop from now on."""
        loop = asyncio.get_running_loop()
        if self._sock is None or self._loop is loop:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._sock.fileno())
        self._loop = loop
        loop.add_reader(self._sock.fileno(), self._receive)
        # Rung before this loop listened (an earlier `asyncio.run` of a CLI): look again.
        self._wake_all()

    async def close(self) -> None:
        """Stop hearing notices and take the socket out of the folder."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(sock.fileno())
        self._loop = None
        sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self._path)

    def _receive(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(_DATAGRAM)
            except OSError:  # read them all (BlockingIOError), or the socket went
                return
            for payload in data.decode("utf-8", "replace").split("\n"):
                self._dispatch(payload)


def ring(folder: str, payloads: list[str]) -> int:
    """Send `payloads` to every listener in `folder` now; how many heard them."""
    if not hasattr(socket, "AF_UNIX"):
        return 0
    data = "\n".join(payloads).encode("utf-8")
    try:
        names = os.listdir(folder)
    except OSError:
        return 0  # nobody ever listened here
    heard = 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        for name in names:
            path = os.path.join(folder, name)
            try:
                sock.sendto(data, path)
            except ConnectionRefusedError:
                # Nobody listens on it any more: its process died without closing it.
                with contextlib.suppress(OSError):
                    os.unlink(path)
            except OSError:
                continue  # a full buffer (it will look on its own), not a socket, gone
            else:
                heard += 1
    return heard
