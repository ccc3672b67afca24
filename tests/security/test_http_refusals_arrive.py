"""A refused request with a small body still gets its answer, and no connection reset.

The server answers some requests from their headers alone (415, 401, a route that never
reads its body) and closes the connection. Closing with body bytes unread, or having them
arrive after the close, makes the kernel answer with a TCP reset, and the client, still
sending its body, sees "connection reset" instead of the answer. Raw sockets against a
real `opsroom serve` send the head, wait until the answer has arrived, and only then send
the body: the worst order for a server that closes without reading it. The client then
waits until its socket is closed at the TCP level, by a FIN or a reset, before reading,
so the outcome does not depend on which packet wins a race.
"""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_web_serve import Served, start_serve

from security.test_http_limits import _address, _head, api_token
from support import wait_for

TCP_CLOSE = 7  # tcpi_state of a socket whose connection is over (Linux <netinet/tcp.h>)


@dataclass(frozen=True)
class Outcome:
    """What the client saw: the bytes it got and how its socket calls ended."""

    data: bytes
    errors: tuple[str, ...]  # OSError names from sending the body, shutting down, reading

    @property
    def status(self) -> int:
        """The status code of the answer."""
        return int(self.data.split(b" ", 2)[1])

    @property
    def body(self) -> bytes:
        """The answer's body (everything after the head)."""
        return self.data.partition(b"\r\n\r\n")[2]


def _tcp_state(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]


def body_after_answer(s: Served, method: str, path: str, headers: dict[str, str]) -> Outcome:
    """Send the head, wait for the answer, then send a small body and read to the end."""
    body = json.dumps({"room": "refusals", "text": "sent after the answer"}).encode()
    errors: list[str] = []
    with socket.create_connection(_address(s), timeout=30) as sock:
        sock.sendall(_head(method, path, {**headers, "Content-Length": str(len(body))}))
        readable, _, _ = select.select([sock], [], [], 30)
        assert readable, "no answer to the head within 30 s"
        try:
            sock.sendall(body)
        except OSError as e:
            errors.append(type(e).__name__)
        try:
            sock.shutdown(socket.SHUT_WR)  # and nothing more: the server may end the exchange
        except OSError as e:
            errors.append(type(e).__name__)
        wait_for(lambda: _tcp_state(sock) == TCP_CLOSE, what="the connection to end")
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except OSError as e:
            errors.append(type(e).__name__)
    return Outcome(data, tuple(errors))


@pytest.fixture
def served(workdir: Path) -> Iterator[Served]:
    """`opsroom serve` on the embedded defaults."""
    s = start_serve(workdir)
    yield s
    if s.proc.poll() is None:
        s.stop()


def test_a_415_reaches_a_client_that_sends_its_body_after_the_answer(served: Served) -> None:
    token = api_token(served)
    bearer = {"Authorization": f"Bearer {token}"}
    for _ in range(3):  # one reset-free exchange could be luck; three in a row are not
        got = body_after_answer(
            served, "POST", "/api/v1/messages", {**bearer, "Content-Type": "text/plain"}
        )
        assert got.errors == (), got
        assert got.status == 415
        assert json.loads(got.body) == {"detail": "send the body as application/json"}
    with served.client() as c:
        c.headers["Authorization"] = f"Bearer {token}"
        assert c.get("/api/v1/rooms/refusals/messages").json() == []  # and nothing was said


def test_a_401_reaches_a_client_that_sends_its_body_after_the_answer(served: Served) -> None:
    got = body_after_answer(
        served, "POST", "/api/v1/messages", {"Content-Type": "application/json"}
    )
    assert got.errors == (), got
    assert got.status == 401
    assert json.loads(got.body) == {"detail": "log in or send Authorization: Bearer <token>"}


def test_a_route_that_answers_without_reading_still_delivers(served: Served) -> None:
    token = api_token(served)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    got = body_after_answer(served, "TRACE", "/api/v1/rooms/web:general/interactions", headers)
    assert got.errors == (), got
    assert got.status == 405
    assert b"connection: close" in got.data.lower()


def test_a_client_waiting_for_100_continue_gets_the_refusal_and_the_close(workdir: Path) -> None:
    # An hour to send a body: a server waiting for the unsent one would outlast the read below.
    (workdir / "opsroom.toml").write_text('[web]\nbody_timeout = "1h"\n')
    s = start_serve(workdir)
    try:
        token = api_token(s)
        head = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "text/plain",
            "Content-Length": "40",
            "Expect": "100-continue",
        }
        with socket.create_connection(_address(s), timeout=30) as sock:
            sock.sendall(_head("POST", "/api/v1/messages", head))
            data = b""
            while chunk := sock.recv(65536):  # to the close: the body is not waited for
                data += chunk
        assert data.startswith(b"HTTP/1.1 415 ")
        assert b"100 Continue" not in data
    finally:
        s.stop()
