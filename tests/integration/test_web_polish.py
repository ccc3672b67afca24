"""Console polish on a real `opsroom serve`: adapter states, "Run in chat", console.css in <head>.

One server for the module: its config enables an IRC adapter pointed at a closed local
port, so the IRC connection never comes up while the web chat is always connected.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from test_web_serve import Served, start_serve

from support import bound_socket, port_of, wait_for

CONFIG = """
[[roles]]
name = "ops"
members = ["irc:alice", "web:admin"]
allow = ["*"]

[adapters.irc]
server = "127.0.0.1"
port = {port}
tls = false
nick = "opsbot"
channels = ["#ops"]
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`opsroom serve` with the bundled catalog and an IRC adapter that cannot connect."""
    workdir: Path = tmp_path_factory.mktemp("polish")
    # Bound and never listening: the IRC server's address refuses every connection.
    with bound_socket() as irc:
        (workdir / "opsroom.toml").write_text(CONFIG.format(port=port_of(irc)))
        s = start_serve(workdir)
        yield s
        if s.proc.poll() is None:
            s.stop()


@pytest.fixture(scope="module")
def client(served: Served) -> Iterator[httpx.Client]:
    """A logged-in admin session."""
    with served.login() as c:
        yield c


class _Tags(HTMLParser):
    """Start tags with their (unescaped) attributes, and where <head> and <main> are."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None], tuple[str, ...]]] = []
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs), tuple(self._open)))
        if tag in ("head", "main", "body"):
            self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("head", "main", "body") and tag in self._open:
            self._open.remove(tag)


def tags(html: str) -> list[tuple[str, dict[str, str | None], tuple[str, ...]]]:
    """(tag, attributes, enclosing head/body/main) of every start tag."""
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def message_box(html: str) -> dict[str, str | None]:
    """The chat page's message input's attributes."""
    [attrs] = [a for t, a, _ in tags(html) if t == "input" and a.get("id") == "message"]
    return attrs


# --- adapter states ------------------------------------------------------------------------


def test_the_api_shows_irc_not_connected_and_web_connected(
    served: Served, client: httpx.Client
) -> None:
    with served.client() as anonymous:
        assert anonymous.get("/api/v1/adapters").status_code == 401
    r = client.get("/api/v1/adapters")
    assert r.status_code == 200
    adapters = {a["name"]: a for a in r.json()}
    assert set(adapters) == {"web", "irc"}
    assert adapters["web"] == {"name": "web", "state": "connected", "waiting": 0}
    assert adapters["irc"]["state"] in ("connecting", "disconnected")
    assert adapters["irc"]["waiting"] == 0
    assert [a["name"] for a in r.json()] == ["web", "irc"]  # the web chat first


def test_metrics_show_the_irc_adapter_down_and_the_web_chat_up(served: Served) -> None:
    with served.client() as c:

        def irc_metric() -> str:
            text = c.get("/metrics").text
            return text if 'opsroom_adapter_connected{adapter="irc"}' in text else ""

        text = wait_for(irc_metric, 10, what="the IRC adapter's metric")
    assert 'opsroom_adapter_connected{adapter="irc"} 0.0' in text
    assert 'opsroom_adapter_connected{adapter="web"} 1.0' in text


def test_the_chat_page_shows_a_status_strip_that_polls_every_5_seconds(
    client: httpx.Client,
) -> None:
    page = client.get("/chat/general")
    assert page.status_code == 200
    found = tags(page.text)
    [strip] = [a for t, a, _ in found if a.get("id") == "adapters"]
    assert strip["hx-get"] == "/partials/adapters"
    assert strip["hx-trigger"] == "every 5s"
    dots = {a["data-adapter"]: a for t, a, _ in found if t == "li" and "data-adapter" in a}
    assert dots["web"]["data-state"] == "connected"
    assert dots["irc"]["data-state"] in ("connecting", "disconnected")
    assert "adapter-connected" in (dots["web"]["class"] or "")
    assert "adapter-connected" not in (dots["irc"]["class"] or "")
    # The polled fragment is the strip alone, with the same states.
    fragment = client.get("/partials/adapters", headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<ul class="adapters" id="adapters"')
    assert "<html" not in fragment.text
    assert 'data-adapter="irc"' in fragment.text
    assert 'data-state="connected"' in fragment.text


# --- "Run in chat" -------------------------------------------------------------------------


def test_run_in_chat_puts_the_command_in_the_message_box_unsent(client: httpx.Client) -> None:
    name = client.get("/api/v1/catalog").json()[0]["name"]
    command_page = client.get(f"/catalog/{name}").text
    [link] = re.findall(r'<a class="button" href="([^"]+)">Run in chat</a>', command_page)
    assert link.startswith("/chat/general?say=")
    chat = client.get(link.replace("&amp;", "&"))
    box = message_box(chat.text)
    assert box["value"] == f"!{name} " == unquote(link.split("say=", 1)[1])
    assert "autofocus" in box
    # Only filled in: nothing was said in the room.
    assert client.get("/api/v1/rooms/general/messages").json() == []


@pytest.mark.parametrize(
    "say",
    [
        '"><script>alert(1)</script>',
        "' onfocus='alert(1)",
        '!demo <b>bold</b> & "quoted"',
    ],
)
def test_a_prefilled_value_is_escaped(client: httpx.Client, say: str) -> None:
    chat = client.get("/chat/general", params={"say": say})
    assert chat.status_code == 200
    assert "<script>alert" not in chat.text
    assert "<b>bold" not in chat.text
    box = message_box(chat.text)
    assert box["value"] == say  # exactly what was asked for, as the value and nothing more
    assert "onfocus" not in box


def test_without_say_the_message_box_is_empty_and_not_autofocused(client: httpx.Client) -> None:
    box = message_box(client.get("/chat/general").text)
    assert "value" not in box
    assert "autofocus" not in box


# --- console.css in <head> -----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/catalog", "/approvals", "/audit", "/insights", None])
def test_console_pages_link_console_css_in_the_head(client: httpx.Client, path: str | None) -> None:
    if path is None:  # a command page
        path = f"/catalog/{client.get('/api/v1/catalog').json()[0]['name']}"
    page = client.get(path)
    assert page.status_code == 200, path
    links = [
        where
        for t, a, where in tags(page.text)
        if t == "link" and a.get("href") == "/static/console.css"
    ]
    assert links == [("head",)], path


def test_other_pages_do_not_load_console_css(client: httpx.Client) -> None:
    assert "/static/console.css" not in client.get("/chat/general").text
