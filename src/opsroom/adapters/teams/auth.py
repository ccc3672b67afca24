"""The Bot Framework's inbound token check (SPEC §7.1), and the bot's own outbound token.

Every activity Teams posts to /hooks/teams carries `Authorization: Bearer <JWT>` signed by
the Bot Connector. It is accepted only when: its `alg` is RS256 (never `none`, never HMAC);
its `kid` names a key in the set the OpenID metadata's `jwks_uri` serves (fetched once,
cached, fetched again once when a token names a key not seen yet: keys rotate); the
signature verifies; `iss` is `https://api.botframework.com`; `aud` is our app id; `exp`
(and `nbf`) hold with at most 5 minutes of clock skew; and, once the body is read, the
activity's `serviceUrl` equals the token's `serviceurl` claim. The outbound side is a
client-credentials token from `token_url`, cached until shortly before it expires.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from opsroom.adapters.teams.settings import TeamsConfig
from opsroom.errors import AdapterError

log = logging.getLogger("opsroom.adapters.teams")

ISSUER = "https://api.botframework.com"
ALGORITHMS = ("RS256",)  # what the Bot Connector signs with; anything else is refused
SKEW = 300  # seconds of clock skew tolerated on exp/nbf (SPEC §7.1: 5 minutes at most)
KEYS_TTL = 24 * 3600.0  # the metadata document asks for daily refreshes
REFRESH_GAP = 5.0  # an unknown kid refetches the keys at most this often
TOKEN_MARGIN = 300  # seconds before expiry a cached outbound token is renewed
SCOPE = "https://api.botframework.com/.default"
TIMEOUT = 10.0


class Unauthorized(AdapterError):
    """An inbound token that must get 401; the message names what was wrong, never the token."""


@dataclass(frozen=True, slots=True)
class Verified:
    """What a valid inbound token says."""

    service_url: str
    claims: Mapping[str, Any]
    endorsements: tuple[str, ...] | None = None  # channels the signing key may sign for


def _segment(text: str) -> dict[str, Any]:
    padded = text + "=" * (-len(text) % 4)
    data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    if not isinstance(data, dict):
        raise ValueError("not an object")
    return data


def token_header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWT, unverified; Unauthorized when it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        raise Unauthorized("not a signed JWT")
    try:
        return _segment(parts[0])
    except (ValueError, UnicodeError):
        raise Unauthorized("unreadable token header") from None


class KeyCache:
    """The Bot Connector's signing keys, by kid, from the OpenID metadata's `jwks_uri`."""

    def __init__(
        self, metadata_url: str, client: httpx.AsyncClient, clock: Callable[[], float]
    ) -> None:
        self.metadata_url = metadata_url
        self.client = client
        self.clock = clock
        self.keys: dict[str, dict[str, Any]] = {}
        self._fetched: float | None = None
        self._refreshed_for_kid = -REFRESH_GAP
        self._lock = asyncio.Lock()

    async def fetch(self) -> None:
        """Read the metadata and the key set it names (httpx.HTTPError when unreachable)."""
        async with self._lock:
            response = await self.client.get(self.metadata_url)
            response.raise_for_status()
            jwks_uri = response.json().get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
                raise httpx.HTTPError("the OpenID metadata names no jwks_uri")
            response = await self.client.get(jwks_uri)
            response.raise_for_status()
            keys = response.json().get("keys")
            if not isinstance(keys, list):
                raise httpx.HTTPError("the key set holds no keys")
            self.keys = {
                str(k["kid"]): k
                for k in keys
                if isinstance(k, dict) and isinstance(k.get("kid"), str)
            }
            self._fetched = self.clock()

    async def key(self, kid: str) -> dict[str, Any] | None:
        """The key named `kid`; the set is fetched again (once) when it is not known."""
        stale = self._fetched is None or self.clock() - self._fetched > KEYS_TTL
        if kid not in self.keys and self.clock() - self._refreshed_for_kid >= REFRESH_GAP:
            self._refreshed_for_kid = self.clock()
            stale = True
        if stale:
            try:
                await self.fetch()
            except (httpx.HTTPError, ValueError) as e:
                log.warning("could not fetch the bot framework's signing keys: %s", e)
        return self.keys.get(kid)


class InboundVerifier:
    """Checks the Bot Connector's JWT on an inbound activity."""

    def __init__(self, config: TeamsConfig, keys: KeyCache, clock: Callable[[], float]) -> None:
        self.config = config
        self.keys = keys
        self.clock = clock

    async def verify(self, authorization: str) -> Verified:
        """The token's claims when it passes every check; Unauthorized otherwise."""
        from joserfc import jwt
        from joserfc.errors import JoseError
        from joserfc.jwk import RSAKey

        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("no bearer token")
        token = token.strip()
        header = token_header(token)
        if header.get("alg") not in ALGORITHMS:
            raise Unauthorized("token algorithm not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("token names no key")
        jwk = await self.keys.key(kid)
        if jwk is None:
            raise Unauthorized("token signed with an unknown key")
        try:
            key = RSAKey.import_key(dict(jwk))
            decoded = jwt.decode(token, key, algorithms=list(ALGORITHMS))
        except (JoseError, ValueError, TypeError, KeyError):
            raise Unauthorized("token signature not valid") from None
        claims = dict(decoded.claims)
        self._check_claims(claims)
        service_url = claims.get("serviceurl") or claims.get("serviceUrl")
        if not isinstance(service_url, str) or not service_url:
            raise Unauthorized("token has no serviceurl claim")
        listed = jwk.get("endorsements")
        endorsements = tuple(str(e) for e in listed) if isinstance(listed, list) else None
        return Verified(service_url=service_url, claims=claims, endorsements=endorsements)

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        if claims.get("iss") != ISSUER:
            raise Unauthorized("token issuer not accepted")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.config.app_id not in audiences:
            raise Unauthorized("token audience is not this bot")
        now = self.clock()
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise Unauthorized("token has no expiry")
        if now > exp + SKEW:
            raise Unauthorized("token expired")
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and not isinstance(nbf, bool) and now < nbf - SKEW:
            raise Unauthorized("token not valid yet")


class OutboundToken:
    """The bot's client-credentials token for the Bot Connector, cached until near expiry."""

    def __init__(
        self, config: TeamsConfig, client: httpx.AsyncClient, clock: Callable[[], float]
    ) -> None:
        self.config = config
        self.client = client
        self.clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    def forget(self) -> None:
        """Drop the cached token (the Connector refused it)."""
        self._token = None

    async def get(self) -> str:
        """A valid access token (httpx.HTTPError when the token endpoint fails)."""
        async with self._lock:
            if self._token is not None and self.clock() < self._expires - TOKEN_MARGIN:
                return self._token
            response = await self.client.post(
                self.config.token_url,
                data={
                    "grant_type": "client_credentials",
                    "client_id": self.config.app_id,
                    "client_secret": self.config.app_password,
                    "scope": SCOPE,
                },
                headers={"Accept": "application/json"},
            )
            if response.status_code != 200:
                # The body may echo the request: only the status is logged.
                raise httpx.HTTPStatusError(
                    f"token endpoint answered {response.status_code}",
                    request=response.request,
                    response=response,
                )
            body = response.json()
            token = body.get("access_token") if isinstance(body, dict) else None
            if not isinstance(token, str) or not token:
                raise httpx.HTTPError("the token endpoint returned no access token")
            try:
                seconds = float(body.get("expires_in", 3600))
            except (TypeError, ValueError):
                seconds = 3600.0
            self._token, self._expires = token, self.clock() + seconds
            return token
