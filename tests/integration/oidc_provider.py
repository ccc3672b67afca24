"""A small OpenID Connect provider for tests: discovery, JWKS, /authorize, /token.

It runs under uvicorn in a thread on 127.0.0.1. `/authorize` approves `user` at once and
sends the browser back with a code and the state; `/token` checks the client secret, the
redirect URI and the PKCE verifier, then returns an ID token signed with an RSA key made
here. Tests bend it: `claims` is merged into the next ID tokens, and `sign_with_stranger`
signs them with a key that is not in the JWKS.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from support import bound_socket, port_of

CLIENT_ID = "opsroom-console"
CLIENT_SECRET = "s3cret-of-the-client"


@dataclass
class Grant:
    """A code handed out by /authorize, waiting for /token."""

    client_id: str
    redirect_uri: str
    nonce: str
    challenge: str


@dataclass
class FakeProvider:
    """The provider's state; `issuer` is set once it listens."""

    user: dict[str, Any] = field(
        default_factory=lambda: {
            "sub": "u-1001",
            "preferred_username": "alice",
            "email": "alice@example.org",
            "email_verified": True,
            "groups": ["ops"],
        }
    )
    claims: dict[str, Any] = field(default_factory=dict)  # merged into the next ID tokens
    sign_with_stranger: bool = False
    issuer: str = ""
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, {"kid": "test-1"}))
    stranger: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, {"kid": "test-1"}))
    grants: dict[str, Grant] = field(default_factory=dict)
    issued: list[str] = field(default_factory=list)  # every code and ID token handed out

    def reset(self) -> None:
        """Back to honest behaviour for the default user."""
        self.claims = {}
        self.sign_with_stranger = False

    def app(self) -> Starlette:
        """The ASGI app."""
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/jwks", self.jwks),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
            ]
        )

    async def discovery(self, request: Request) -> Response:
        """The discovery document."""
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def jwks(self, request: Request) -> Response:
        """The public signing key."""
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    async def authorize(self, request: Request) -> Response:
        """Approve the configured user at once and send the browser back."""
        q = request.query_params
        if (
            q.get("response_type") != "code"
            or q.get("client_id") != CLIENT_ID
            or q.get("code_challenge_method") != "S256"
            or not q.get("code_challenge")
            or "openid" not in q.get("scope", "").split()
        ):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        code = secrets.token_urlsafe(24)
        self.issued.append(code)
        self.grants[code] = Grant(
            q["client_id"], q["redirect_uri"], q.get("nonce", ""), q["code_challenge"]
        )
        back = urlencode({"code": code, "state": q.get("state", "")})
        return RedirectResponse(f"{q['redirect_uri']}?{back}", status_code=302)

    async def token(self, request: Request) -> Response:
        """Exchange a code (once) for an ID token, checking client, redirect URI and PKCE."""
        form = await request.form()
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        client_id, _, secret = base64.b64decode(encoded or "").decode().partition(":")
        if scheme != "Basic" or unquote(client_id) != CLIENT_ID or unquote(secret) != CLIENT_SECRET:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = self.grants.pop(str(form.get("code", "")), None)
        verifier = str(form.get("code_verifier", ""))
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        if (
            grant is None
            or form.get("grant_type") != "authorization_code"
            or form.get("redirect_uri") != grant.redirect_uri
            or challenge != grant.challenge
        ):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": grant.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": grant.nonce,
            **self.user,
            **self.claims,
        }
        key = self.stranger if self.sign_with_stranger else self.key
        id_token = jwt.encode({"alg": "RS256", "kid": "test-1"}, claims, key)
        self.issued.append(id_token)
        return JSONResponse(
            {
                "access_token": secrets.token_urlsafe(16),
                "token_type": "Bearer",
                "id_token": id_token,
            }
        )


@contextmanager
def running_provider() -> Iterator[FakeProvider]:
    """A `FakeProvider` listening on 127.0.0.1 until the block ends."""
    provider = FakeProvider()
    sock = bound_socket()
    # Listening before uvicorn starts: a request made at once waits in the backlog until
    # the server takes it, so nobody has to wait for "started".
    sock.listen(64)
    provider.issuer = f"http://127.0.0.1:{port_of(sock)}"
    config = uvicorn.Config(
        provider.app(),
        log_level="warning",
        lifespan="off",
        ws="none",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
