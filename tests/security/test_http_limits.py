"""Hostile HTTP clients against a real `opsroom serve`: nothing is read before it is allowed.

Raw sockets, so the test controls exactly what is sent and when: a 50 MB upload is
announced and the answer is read before its body goes out; a chunked body streams until
the server cuts it off; a slow client trickles bytes. The server's memory is read from
/proc (VmRSS now, VmHWM its peak) before and after a stream of 50 MB bodies.
"""

from __future__ import annotations

import json
import select
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from test_web_serve import Served, start_serve

from adapters.fake_slack import FakeSlack, sign
from adapters.slack_support import SECRET, make_adapter, store_settings
from opsroom.testing import Bot

MB = 1024 * 1024
BIG = 50 * MB
PIECE = b"A" * (64 * 1024)


@dataclass(frozen=True)
class Answer:
    """An HTTP response as it came off the socket."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


def _address(s: Served) -> tuple[str, int]:
    parts = urlsplit(s.url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: opsroom.test",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _read_answer(sock: socket.socket) -> Answer:
    """One response: the head, then as many body bytes as Content-Length says."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed without an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    size = int(headers.get("content-length", "0"))
    while len(body) < size:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return Answer(int(status_line.split()[1]), headers, body)


def _answered(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def push(
    s: Served, path: str, headers: dict[str, str], *, total: int = BIG, chunked: bool = False
) -> tuple[Answer, int]:
    """Send a request with a `total`-byte body until the server answers; (answer, bytes sent).

    The answer is looked for before every 64 KiB piece, so a server that answers early
    is seen as soon as it answers; one that reads everything answers after all of it.
    """
    framing = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(total)}
    with socket.create_connection(_address(s), timeout=60) as sock:
        sock.sendall(_head("POST", path, {**headers, **framing}))
        sent = 0
        try:
            while sent < total and not _answered(sock):
                piece = b"%x\r\n%s\r\n" % (len(PIECE), PIECE) if chunked else PIECE
                sock.sendall(piece)
                sent += len(PIECE)
            if sent >= total and chunked:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server hung up on the rest: its answer is already here
        return _read_answer(sock), sent


def ask_before_sending(s: Served, path: str, headers: dict[str, str]) -> Answer:
    """Announce a 50 MB body, send none of it, and read the answer."""
    with socket.create_connection(_address(s), timeout=30) as sock:
        sock.sendall(_head("POST", path, {**headers, "Content-Length": str(BIG)}))
        return _read_answer(sock)


def vm(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


@pytest.fixture
def served(workdir: Path) -> Iterator[Served]:
    """`opsroom serve` on the embedded defaults."""
    s = start_serve(workdir)
    yield s
    if s.proc.poll() is None:
        s.stop()


def api_token(s: Served) -> str:
    """A fresh API token of the admin."""
    with s.login() as c:
        r = c.post("/api/v1/tokens", json={"name": "limits"})
        assert r.status_code == 201, r.text
        token: str = r.json()["token"]
        return token


JSON_TYPE = {"Content-Type": "application/json"}


# --- refused by the headers, before a byte of the body --------------------------------------


def test_a_request_without_a_login_is_refused_before_its_body_is_sent(served: Served) -> None:
    api = ask_before_sending(served, "/api/v1/messages", JSON_TYPE)
    assert api.status == 401
    assert api.json() == {"detail": "log in or send Authorization: Bearer <token>"}
    assert api.headers["connection"] == "close"
    forged = ask_before_sending(
        served, "/api/v1/messages", {**JSON_TYPE, "Authorization": "Bearer opsr_forged"}
    )
    assert forged.status == 401
    stale = ask_before_sending(
        served, "/api/v1/tokens", {**JSON_TYPE, "Cookie": "opsroom_session=not-a-session"}
    )
    assert stale.status == 401
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    page = ask_before_sending(served, "/approvals/1/approve", form)
    assert page.status == 303
    assert page.headers["location"] == "/login?next=/"
    # The login form itself is open to anyone, so it takes only a small body.
    login = ask_before_sending(served, "/login", form)
    assert login.status == 413
    assert len(login.body) < 200
    with served.client() as c:
        assert c.get("/healthz").status_code == 200


def test_a_body_declared_over_the_limit_gets_413_at_once(served: Served) -> None:
    token = api_token(served)
    answer = ask_before_sending(
        served, "/api/v1/messages", {**JSON_TYPE, "Authorization": f"Bearer {token}"}
    )
    assert answer.status == 413
    assert answer.json() == {"detail": "request body too large (limit 1048576 bytes)"}
    assert answer.headers["connection"] == "close"


def test_a_chunked_body_is_cut_off_when_it_passes_the_limit(served: Served) -> None:
    token = api_token(served)
    answer, sent = push(
        served,
        "/api/v1/messages",
        {**JSON_TYPE, "Authorization": f"Bearer {token}"},
        chunked=True,
    )
    assert answer.status == 413
    assert len(answer.body) < 200
    assert MB < sent < BIG  # read up to the limit, not to the end
    with served.client() as c:
        assert c.get("/healthz").status_code == 200


def test_a_body_of_the_wrong_type_gets_415_and_does_nothing(served: Served) -> None:
    token = api_token(served)
    with served.client() as c:
        c.headers["Authorization"] = f"Bearer {token}"
        say = json.dumps({"room": "limits", "text": "hello from a text body"})
        for content_type in ("text/plain", "application/x-www-form-urlencoded", ""):
            r = c.post("/api/v1/messages", content=say, headers={"Content-Type": content_type})
            assert r.status_code == 415, (content_type, r.text)
            assert r.json() == {"detail": "send the body as application/json"}
        assert c.get("/api/v1/rooms/limits/messages").json() == []
        ok = c.post("/api/v1/messages", content=say, headers={"Content-Type": "application/json"})
        assert ok.status_code == 202


def test_a_validation_error_names_the_field_but_never_echoes_the_value(served: Served) -> None:
    token = api_token(served)
    marker = "Z" * 300_000
    bodies: list[Any] = [
        {"room": "limits", "text": marker},  # too long
        {"room": "limits", "text": "hi", "extra": marker},  # unknown key, huge value
        {"room": "limits", "text": "hi", marker: 1},  # unknown key, huge name
        [marker],  # not an object
    ]
    with served.client() as c:
        c.headers["Authorization"] = f"Bearer {token}"
        for body in bodies:
            r = c.post("/api/v1/messages", json=body)
            assert r.status_code == 422
            assert "Z" * 100 not in r.text
            assert len(r.content) < 2000
            assert all("input" not in e for e in r.json()["detail"])
        broken = c.post(
            "/api/v1/messages", content=b'{"text": "' + marker.encode(), headers=JSON_TYPE
        )
        assert broken.status_code == 422
        assert "Z" * 100 not in broken.text
        too_long = c.post("/api/v1/messages", json=bodies[0]).json()["detail"]
        assert too_long == [
            {
                "loc": ["body", "text"],
                "msg": "String should have at most 8000 characters",
                "type": "string_too_long",
            }
        ]


async def test_a_forged_slack_request_is_refused_before_its_body_is_parsed(tmp_path: Path) -> None:
    from opsroom.web.app import create_app
    from opsroom.web.server import _mount_hooks

    fake = await FakeSlack.start()
    settings = store_settings(tmp_path)
    try:
        async with Bot.open(store_url=settings.store.url, settings=settings) as bot:
            adapter = make_adapter(fake, settings, "http")
            web = create_app(bot.app)
            _mount_hooks(web, [adapter])  # as `opsroom serve` mounts it
            transport = httpx.ASGITransport(app=web)
            async with httpx.AsyncClient(transport=transport, base_url="http://opsroom") as c:
                now = str(int(time.time()))
                forged = {"x-slack-request-timestamp": now, "x-slack-signature": "v0=" + "0" * 64}
                for body in (b'{"type": "event_callback", ', b"[" * 100_000):
                    r = await c.post("/hooks/slack", content=body, headers={**forged, **JSON_TYPE})
                    assert r.status_code == 401, r.text
                form = {"content-type": "application/x-www-form-urlencoded"}
                r = await c.post(
                    "/hooks/slack", content=b"payload=%7B%22", headers={**forged, **form}
                )
                assert r.status_code == 401
                # Signed, but not a type Slack sends, or bigger than the limit.
                text = b"hello"
                signed = {
                    "x-slack-request-timestamp": now,
                    "x-slack-signature": sign(SECRET, now, text),
                }
                r = await c.post(
                    "/hooks/slack", content=text, headers={**signed, "content-type": "text/plain"}
                )
                assert r.status_code == 415
                huge = b'{"x": "' + b"A" * (2 * MB) + b'"}'
                signed["x-slack-signature"] = sign(SECRET, now, huge)
                r = await c.post("/hooks/slack", content=huge, headers={**signed, **JSON_TYPE})
                assert r.status_code == 413
            assert await bot.app.store.find_jobs() == []
    finally:
        await fake.stop()


# --- slow bodies ------------------------------------------------------------------------------


TRICKLE = 100  # bytes sent at 0.2 s apart: ten times the 2 s body timeout of these tests


def trickle(s: Served, path: str, headers: dict[str, str]) -> Answer:
    """Announce a 1000-byte body and send it a byte at a time until the server answers.

    While it trickles, other requests must still be answered.
    """
    others = []
    with socket.create_connection(_address(s), timeout=60) as sock:
        sock.sendall(_head("POST", path, {**headers, "Content-Length": "1000"}))
        sent = 0
        # A byte whenever the server has said nothing for 0.2 s: a pace, not a barrier.
        while not select.select([sock], [], [], 0.2)[0]:
            assert sent < TRICKLE, f"still reading a body that trickled {sent} bytes"
            sock.sendall(b"a")
            sent += 1
            if sent % 5 == 0:
                with s.client() as c:
                    others.append(c.get("/healthz").status_code)
        answer = _read_answer(sock)
    assert others
    assert set(others) == {200}
    return answer


def test_a_slow_body_is_cut_off_after_the_body_timeout(workdir: Path) -> None:
    (workdir / "opsroom.toml").write_text('[web]\nbody_timeout = "2s"\n')
    s = start_serve(workdir)
    try:
        token = api_token(s)
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        login = trickle(s, "/login", form)
        assert login.status == 408
        assert login.json() == {"detail": "request body not received within 2s"}
        assert login.headers["connection"] == "close"
        api = trickle(s, "/api/v1/messages", {**JSON_TYPE, "Authorization": f"Bearer {token}"})
        assert api.status == 408
    finally:
        s.stop()


def test_slow_headers_are_cut_off_too(workdir: Path) -> None:
    (workdir / "opsroom.toml").write_text('[web]\nbody_timeout = "2s"\n')
    s = start_serve(workdir)
    try:
        with socket.create_connection(_address(s), timeout=60) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: opsroom.test\r\nX-Slow: ")
            sent = 0
            while not select.select([sock], [], [], 0.2)[0]:
                assert sent < TRICKLE, f"still waiting for headers that trickled {sent} bytes"
                sock.sendall(b"a")
                sent += 1
                with s.client() as c:
                    assert c.get("/healthz").status_code == 200
            answer = _read_answer(sock)
            assert sock.recv(1) == b""  # and the connection is closed
        assert answer.status == 408
        assert answer.body == b"request headers not received in time"
        # A kept-alive connection gets the same deadline for its next request.
        with socket.create_connection(_address(s), timeout=60) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: opsroom.test\r\n\r\n")
            assert _read_answer(sock).status == 200
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
            sent = 0
            while not select.select([sock], [], [], 0.2)[0]:
                assert sent < TRICKLE, f"still waiting for headers that trickled {sent} bytes"
                sock.sendall(b"X")
                sent += 1
            assert _read_answer(sock).status == 408
    finally:
        s.stop()


# --- configuration ----------------------------------------------------------------------------


def test_max_body_sets_the_limit(workdir: Path, tmp_path: Path) -> None:
    message = {"room": "limits", "text": "x" * 6000}  # valid: at most 8000 characters
    plain = tmp_path / "plain"
    plain.mkdir()
    s = start_serve(plain)
    try:
        with s.login() as c:
            assert c.post("/api/v1/messages", json=message).status_code == 202
    finally:
        s.stop()
    (workdir / "opsroom.toml").write_text('[web]\nmax_body = "4KiB"\n')
    s = start_serve(workdir)
    try:
        with s.login() as c:
            r = c.post("/api/v1/messages", json=message)
            assert r.status_code == 413
            assert r.json() == {"detail": "request body too large (limit 4096 bytes)"}
            assert c.post("/api/v1/messages", json={"text": "x" * 3000}).status_code == 202
    finally:
        s.stop()


def test_bad_limits_are_refused_naming_the_key(workdir: Path, opsroom: Any) -> None:
    (workdir / "opsroom.toml").write_text('[web]\nmax_body = "a lot"\n')
    checked = opsroom("config", "check")
    assert checked.code != 0
    assert "web.max_body" in checked.stdout + checked.stderr
    (workdir / "opsroom.toml").write_text('[web]\nmax_body = "2MiB"\nbody_timeout = "10s"\n')
    checked = opsroom("config", "check")
    assert checked.code == 0, checked.stderr
    assert "2097152" in checked.stdout


# --- memory -----------------------------------------------------------------------------------


def test_memory_stays_flat_under_a_stream_of_50_mb_bodies(served: Served) -> None:
    token = api_token(served)
    bearer = {**JSON_TYPE, "Authorization": f"Bearer {token}"}
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    kinds: list[tuple[str, dict[str, str], bool, int]] = [
        ("/api/v1/messages", JSON_TYPE, False, 401),  # no login, declared length
        ("/api/v1/messages", JSON_TYPE, True, 401),  # no login, chunked
        ("/login", form, True, 413),  # the open login form, chunked
        ("/api/v1/messages", bearer, False, 413),  # logged in, declared too big
        ("/api/v1/messages", bearer, True, 413),  # logged in, chunked past the limit
    ]
    for path, headers, chunked, _ in kinds:  # warm up every path once
        push(served, path, headers, chunked=chunked)
    before = vm(served.proc.pid)
    seen: list[tuple[int, int]] = []  # (status, bytes sent) per request
    for _ in range(4):
        for path, headers, chunked, _ in kinds:
            answer, sent = push(served, path, headers, chunked=chunked)
            seen.append((answer.status, sent))
    after = vm(served.proc.pid)
    pushed = sum(sent for _, sent in seen) // MB
    print(f"{len(seen) * 50} MB offered, {pushed} MB sent; {before} -> {after}", file=sys.stderr)
    assert after["VmRSS"] - before["VmRSS"] < 30 * MB
    assert after["VmHWM"] - before["VmHWM"] < 30 * MB  # the peak, between the two reads
    assert [status for status, _ in seen] == [status for *_, status in kinds] * 4
    assert all(sent < BIG for _, sent in seen)  # answered without waiting for the rest
    with httpx.Client(base_url=served.url, timeout=30) as c:
        assert c.get("/healthz").status_code == 200
