"""Single sign-on with OpenID Connect against a real `opsroom serve` and a fake provider."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from oidc_provider import CLIENT_ID, CLIENT_SECRET, FakeProvider, running_provider
from test_web_serve import Served, start_serve

from support import bound_socket, port_of

SECRET_ENV = {"OIDC_CLIENT_SECRET": CLIENT_SECRET}


def write_config(workdir: Path, issuer: str | None) -> None:
    """An opsroom.toml, with `[web.oidc]` pointing at `issuer` when given."""
    text = ""
    if issuer is not None:
        text = (
            "[web.oidc]\n"
            f'issuer = "{issuer}"\n'
            f'client_id = "{CLIENT_ID}"\n'
            'client_secret = "env:OIDC_CLIENT_SECRET"\n'
            'allowed_domains = ["example.org"]\n'
            'allowed_groups = ["ops", "admins"]\n'
            'button_label = "Sign in with Example SSO"\n'
        )
    (workdir / "opsroom.toml").write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    """The fake OpenID provider, shared by this module's tests."""
    with running_provider() as p:
        yield p


@pytest.fixture(autouse=True)
def honest(provider: FakeProvider) -> Iterator[None]:
    """Every test starts with a provider that behaves."""
    provider.reset()
    yield
    provider.reset()


@pytest.fixture(scope="module")
def sso(provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`opsroom serve` configured with `[web.oidc]` at the fake provider."""
    workdir = tmp_path_factory.mktemp("sso")
    write_config(workdir, provider.issuer)
    served = start_serve(workdir, env=SECRET_ENV)
    yield served
    if served.proc.poll() is None:
        served.stop()


def browser(served: Served) -> httpx.Client:
    """A client that follows redirects like a browser."""
    return httpx.Client(base_url=served.url, timeout=30, follow_redirects=True)


def sso_login(client: httpx.Client, next_path: str = "/chat") -> httpx.Response:
    """Click the SSO button and follow the provider's round trip."""
    return client.get("/login/oidc", params={"next": next_path})


def assert_no_session(client: httpx.Client) -> None:
    """The refused sign-in left the browser logged out."""
    assert "opsroom_session" not in client.cookies
    assert client.get("/api/v1/me").status_code == 401


def test_sso_login_lands_in_the_chat_with_a_working_session(
    sso: Served, provider: FakeProvider
) -> None:
    with browser(sso) as c:
        r = sso_login(c)
        assert r.status_code == 200
        assert r.url.path.startswith("/chat")
        # The round trip really went through the provider and back.
        hops = [h.url.path for h in r.history]
        assert hops[:4] == ["/login/oidc", "/authorize", "/login/oidc/callback", "/chat"]
        me = c.get("/api/v1/me").json()
        assert me["principal"] == "web:alice"
        assert me["admin"] is False
        # The session works for the API exactly like a local one: reads, and CSRF-checked writes.
        assert c.get("/api/v1/catalog").status_code == 200
        say = {"room": "sso", "text": "hello from single sign-on"}
        assert c.post("/api/v1/messages", json=say).status_code == 403  # no CSRF token yet
        c.headers["X-CSRF-Token"] = me["csrf_token"]
        assert c.post("/api/v1/messages", json=say).status_code == 202
        history = c.get("/api/v1/rooms/sso/messages").json()
        assert any(
            e.get("author") == "web:alice" and "single sign-on" in str(e) for e in history
        ), history
        # The pending sign-in is used up.
        assert "opsroom_oidc" not in c.cookies
    # The SSO account has no password: a local login as alice is impossible.
    with browser(sso) as c:
        c.get("/login")
        r = c.post(
            "/login",
            data={
                "username": "alice",
                "password": "",
                "csrf_token": c.cookies["opsroom_login_csrf"],
            },
        )
        assert r.status_code in (401, 422)
        r = c.post(
            "/login",
            data={
                "username": "alice",
                "password": "!oidc",
                "csrf_token": c.cookies["opsroom_login_csrf"],
            },
        )
        assert r.status_code == 401
        assert_no_session(c)
    # No code and no token ever reaches the server's log.
    log = sso.log
    assert provider.issued
    assert not [secret for secret in provider.issued if secret in log]
    assert CLIENT_SECRET not in log


def test_a_second_sso_login_finds_the_same_account(sso: Served) -> None:
    with browser(sso) as c:
        assert sso_login(c).url.path.startswith("/chat")
    with browser(sso) as c:
        assert sso_login(c, "/jobs").url.path == "/jobs"
        assert c.get("/api/v1/me").json()["principal"] == "web:alice"


@pytest.mark.parametrize(
    ("bend", "status", "message"),
    [
        ({"sign_with_stranger": True}, 400, "signature is not valid"),
        ({"claims": {"aud": "someone-else"}}, 400, "not valid (aud)"),
        ({"claims": {"exp": int(time.time()) - 3600}}, 400, "has expired"),
        ({"claims": {"iss": "http://127.0.0.1:1"}}, 400, "not valid (iss)"),
        ({"claims": {"nonce": "not-the-one-we-sent"}}, 400, "not valid (nonce)"),
        ({"claims": {"preferred_username": None}}, 403, "no 'preferred_username' claim"),
        ({"claims": {"preferred_username": "al ice"}}, 403, "not a usable username"),
        ({"claims": {"email": "mallory@evil.example"}}, 403, "email domain"),
        ({"claims": {"email_verified": False}}, 403, "email domain"),
        ({"claims": {"groups": ["visitors"]}}, 403, "none of the groups"),
        # A provider letting people choose their name must not make them the local admin.
        ({"claims": {"preferred_username": "admin"}}, 403, "local account named 'admin'"),
    ],
    ids=[
        "wrong-signature",
        "wrong-audience",
        "expired",
        "wrong-issuer",
        "wrong-nonce",
        "no-username",
        "bad-username",
        "other-domain",
        "unverified-email",
        "other-group",
        "local-admin-name",
    ],
)
def test_bad_id_tokens_and_unwelcome_users_are_refused_without_a_session(
    sso: Served, provider: FakeProvider, bend: dict[str, Any], status: int, message: str
) -> None:
    provider.sign_with_stranger = bool(bend.get("sign_with_stranger"))
    provider.claims = dict(bend.get("claims", {}))
    with browser(sso) as c:
        r = sso_login(c)
        assert r.status_code == status
        assert r.url.path == "/login/oidc/callback"
        assert "Single sign-on failed" in r.text
        assert message in r.text.replace("&#39;", "'")
        assert 'id="sso-login"' in r.text  # the page offers to try again
        assert "opsroom_oidc" not in c.cookies
        assert_no_session(c)
    assert not [secret for secret in provider.issued if secret in sso.log]


def test_a_replayed_or_foreign_callback_is_refused(sso: Served) -> None:
    with browser(sso) as c:
        r = sso_login(c)
        assert r.url.path.startswith("/chat")
        callback = r.history[2].url
        assert callback.path == "/login/oidc/callback"
        # The same browser, again: its pending sign-in is gone.
        again = c.get(str(callback))
        assert again.status_code == 400
        assert "stale or was not started here" in again.text
    # Another browser with no pending sign-in.
    with browser(sso) as c:
        assert c.get(str(callback)).status_code == 400
        assert_no_session(c)
    # Login CSRF: a victim who started a sign-in is sent the attacker's code and state.
    with httpx.Client(timeout=30) as attacker:
        to_idp = attacker.get(f"{sso.url}/login/oidc", params={"next": "/chat"})
        assert to_idp.status_code == 303
        at_idp = attacker.get(to_idp.headers["location"])
        assert at_idp.status_code == 302
        attackers_callback = at_idp.headers["location"]
    with browser(sso) as victim:
        started = victim.get("/login/oidc", params={"next": "/chat"}, follow_redirects=False)
        assert started.status_code == 303
        assert "opsroom_oidc" in victim.cookies
        r = victim.get(attackers_callback)
        assert r.status_code == 400
        assert_no_session(victim)
    # A tampered state on an otherwise genuine round trip.
    with browser(sso) as c:
        to_idp = c.get("/login/oidc", params={"next": "/chat"}, follow_redirects=False)
        at_idp = c.get(to_idp.headers["location"], follow_redirects=False)
        tampered = at_idp.headers["location"].replace("state=", "state=x")
        r = c.get(tampered)
        assert r.status_code == 400
        assert_no_session(c)


def test_the_login_page_shows_the_sso_button_only_when_configured(
    sso: Served, tmp_path: Path
) -> None:
    with browser(sso) as c:
        page = c.get("/login", params={"next": "/jobs"})
        assert "Sign in with Example SSO" in page.text
        assert 'href="/login/oidc?next=/jobs"' in page.text
        assert 'name="password"' in page.text  # local login stays available
    plain = tmp_path / "plain"
    plain.mkdir()
    write_config(plain, None)
    served = start_serve(plain)
    try:
        with browser(served) as c:
            page = c.get("/login")
            assert page.status_code == 200
            assert 'name="password"' in page.text
            assert "sso-login" not in page.text
            assert "/login/oidc" not in page.text
            assert c.get("/login/oidc").status_code == 404
    finally:
        served.stop()


def test_an_unreachable_provider_gives_a_clear_502(tmp_path: Path) -> None:
    workdir = tmp_path / "down"
    workdir.mkdir()
    # Bound and never listening: the provider's address refuses every connection.
    with bound_socket() as dead:
        write_config(workdir, f"http://127.0.0.1:{port_of(dead)}")
        served = start_serve(workdir, env=SECRET_ENV)
        try:
            with browser(served) as c:
                r = sso_login(c)
                assert r.status_code == 502
                assert "could not be reached" in r.text
                assert 'id="sso-login"' in r.text
                assert_no_session(c)
        finally:
            served.stop()
