"""Single sign-on with OpenID Connect: the authorization-code flow with PKCE, state and nonce.

`begin` builds the redirect to the provider and the `Pending` values the browser keeps in a
short-lived cookie; `finish` checks the state, exchanges the code, validates the ID token
against the provider's JWKS (signature, iss, aud, exp, nonce) and maps the claims to a
username. Nothing here logs or echoes a code or a token: errors name what was wrong only.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from opsroom.config import OidcSettings, resolve_reference
from opsroom.errors import ConfigError, UserError

if TYPE_CHECKING:
    import httpx

    from opsroom.store import Store

PENDING_COOKIE = "opsroom_oidc"
PENDING_TTL = 600  # seconds a sign-in may take at the provider
SSO_PASSWORD = "!oidc"  # noqa: S105 (not a hash: no password ever matches it)
DISCOVERY_TTL = 300.0
# Asymmetric algorithms only: "none" and HMAC (keyed with the client secret) are refused.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
CLOCK_LEEWAY = 60
# Local names, or an email-like name from the provider; at most the store's 100 characters.
SSO_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}(?:@[a-z0-9][a-z0-9.-]{0,35})?$")


class SsoError(UserError):
    """A sign-in that failed; `message` is safe to show (never a code or a token)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class Provider:
    """The endpoints a provider announces at `<issuer>/.well-known/openid-configuration`."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    auth_methods: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Pending:
    """What the browser carries from `/login/oidc` to the callback (an httponly cookie)."""

    state: str
    nonce: str
    verifier: str
    next: str
    started: float

    def encode(self) -> str:
        """The cookie value."""
        raw = json.dumps(asdict(self), separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode("ascii")

    @classmethod
    def decode(cls, text: str) -> Pending | None:
        """The pending sign-in in a cookie, or None when it is missing, broken or too old."""
        try:
            data = json.loads(base64.urlsafe_b64decode(text.encode("ascii")))
            pending = cls(
                **{k: data[k] for k in ("state", "nonce", "verifier", "next")},
                started=float(data["started"]),
            )
        except (ValueError, TypeError, KeyError, UnicodeError):
            return None
        fields = (pending.state, pending.nonce, pending.verifier, pending.next)
        if not all(isinstance(v, str) and v for v in fields):
            return None
        if not 0 <= time.time() - pending.started <= PENDING_TTL:
            return None
        return pending


def username_from_claims(claims: Mapping[str, Any], settings: OidcSettings) -> str:
    """The console username for validated ID-token claims; SsoError (403) when not allowed."""
    value = claims.get(settings.username_claim)
    if not isinstance(value, str) or not value.strip():
        raise SsoError(f"the provider sent no {settings.username_claim!r} claim", 403)
    username = value.strip().lower()
    if not SSO_USERNAME.match(username):
        raise SsoError(
            f"the {settings.username_claim!r} claim is not a usable username "
            "(letters, digits, '.', '_', '-', optionally @domain)",
            403,
        )
    if settings.allowed_domains is not None:
        email = claims.get("email")
        address = email if isinstance(email, str) and "@" in email else username
        domain = address.rpartition("@")[2].lower() if "@" in address else ""
        allowed = {d.lower() for d in settings.allowed_domains}
        if claims.get("email_verified") is False or domain not in allowed:
            raise SsoError("your account's email domain may not sign in here", 403)
    if settings.allowed_groups is not None:
        groups = claims.get(settings.groups_claim)
        have = {g for g in groups if isinstance(g, str)} if isinstance(groups, list) else set()
        if not have & set(settings.allowed_groups):
            raise SsoError("you are in none of the groups that may sign in here", 403)
    return username


class OidcLogin:
    """The OpenID Connect login provider (behind `LoginProvider`'s idea: it yields a username)."""

    name = "oidc"

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self._provider: Provider | None = None
        self._fetched = 0.0

    def _client(self) -> httpx.AsyncClient:
        import httpx

        return httpx.AsyncClient(timeout=self.settings.timeout, follow_redirects=False)

    async def discover(self) -> Provider:
        """The provider's endpoints (cached for a few minutes); SsoError 502 when unreachable."""
        if self._provider is not None and time.monotonic() - self._fetched < DISCOVERY_TTL:
            return self._provider
        issuer = self.settings.issuer
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc = await self._get_json(url, "discovery document")
        try:
            provider = Provider(
                issuer=_text(doc, "issuer"),
                authorization_endpoint=_text(doc, "authorization_endpoint"),
                token_endpoint=_text(doc, "token_endpoint"),
                jwks_uri=_text(doc, "jwks_uri"),
                auth_methods=tuple(
                    doc.get("token_endpoint_auth_methods_supported") or ("client_secret_basic",)
                ),
            )
        except (KeyError, TypeError):
            raise SsoError("the sign-in provider's discovery document is incomplete", 502) from None
        if provider.issuer != issuer:
            # OpenID Connect Discovery §4.3: a mismatch means someone else's document.
            raise SsoError("the sign-in provider announces a different issuer", 502)
        self._provider, self._fetched = provider, time.monotonic()
        return provider

    async def begin(self, redirect_uri: str, next_path: str) -> tuple[str, Pending]:
        """The provider's authorization URL to redirect to, and what the browser must keep."""
        from authlib.common.security import generate_token
        from authlib.oauth2.rfc7636 import create_s256_code_challenge

        provider = await self.discover()
        pending = Pending(
            state=generate_token(32),
            nonce=generate_token(32),
            verifier=generate_token(64),
            next=next_path,
            started=time.time(),
        )
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.settings.client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(self.settings.scopes),
                "state": pending.state,
                "nonce": pending.nonce,
                # types-Authlib leaves this one untyped; it returns the S256 challenge string.
                "code_challenge": create_s256_code_challenge(pending.verifier),  # type: ignore[no-untyped-call]
                "code_challenge_method": "S256",
            }
        )
        sep = "&" if "?" in provider.authorization_endpoint else "?"
        return f"{provider.authorization_endpoint}{sep}{query}", pending

    async def finish(
        self, pending: Pending | None, params: Mapping[str, str], redirect_uri: str
    ) -> dict[str, Any]:
        """The validated ID-token claims for the provider's answer; SsoError otherwise."""
        state = params.get("state", "")
        if pending is None or not state or not hmac.compare_digest(state, pending.state):
            raise SsoError("this sign-in link is stale or was not started here; try again")
        if error := params.get("error"):
            code = error if re.fullmatch(r"[a-z_]{1,40}", error) else "error"
            raise SsoError(f"the sign-in provider refused the sign-in ({code})")
        code = params.get("code", "")
        if not code:
            raise SsoError("the sign-in provider sent no authorization code")
        provider = await self.discover()
        id_token = await self._exchange(provider, code, pending.verifier, redirect_uri)
        keys = await self._get_json(provider.jwks_uri, "signing keys")
        return self._validate(id_token, keys, provider, pending.nonce)

    async def _exchange(self, provider: Provider, code: str, verifier: str, redirect: str) -> str:
        import httpx

        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect,
            "code_verifier": verifier,
            "client_id": self.settings.client_id,
        }
        headers = {"Accept": "application/json"}
        if self.settings.client_secret is not None:
            try:
                secret = resolve_reference(self.settings.client_secret)
            except ConfigError as e:
                raise SsoError(f"web.oidc.client_secret: {e}", 502) from None
            if "client_secret_basic" in provider.auth_methods:
                # RFC 6749 §2.3.1: both parts are form-encoded before Basic encoding.
                pair = f"{quote(self.settings.client_id, safe='')}:{quote(secret, safe='')}"
                headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
            else:
                form["client_secret"] = secret
        try:
            async with self._client() as client:
                response = await client.post(provider.token_endpoint, data=form, headers=headers)
        except httpx.HTTPError:
            raise SsoError("the sign-in provider could not be reached", 502) from None
        if response.status_code >= 500:
            raise SsoError("the sign-in provider failed to answer", 502)
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200:
            error = body.get("error") if isinstance(body, dict) else None
            label = error if isinstance(error, str) and re.fullmatch(r"[a-z_]{1,40}", error) else ""
            raise SsoError(f"the sign-in provider refused the code {f'({label})' if label else ''}")
        token = body.get("id_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise SsoError("the sign-in provider returned no ID token", 502)
        return token

    def _validate(
        self, token: str, jwks: Mapping[str, Any], provider: Provider, nonce: str
    ) -> dict[str, Any]:
        from joserfc import jwt
        from joserfc.errors import (
            BadSignatureError,
            ExpiredTokenError,
            JoseError,
            MissingClaimError,
        )
        from joserfc.jwk import KeySet
        from joserfc.jwt import JWTClaimsRegistry

        try:
            keys = KeySet.import_key_set(dict(jwks))  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError):
            raise SsoError("the sign-in provider's signing keys are not usable", 502) from None
        try:
            decoded = jwt.decode(token, keys, algorithms=list(ALGORITHMS))
        except BadSignatureError:
            raise SsoError("the ID token's signature is not valid") from None
        except (JoseError, ValueError, TypeError, KeyError):
            raise SsoError("the ID token is malformed or signed with an unknown key") from None
        claims: dict[str, Any] = dict(decoded.claims)
        registry = JWTClaimsRegistry(
            leeway=CLOCK_LEEWAY,
            iss={"essential": True, "value": provider.issuer},
            aud={"essential": True, "value": self.settings.client_id},
            exp={"essential": True},
            sub={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise SsoError("the ID token has expired") from None
        except MissingClaimError as e:
            raise SsoError(f"the ID token lacks a required claim ({e.claim})") from None
        except JoseError as e:
            which = getattr(e, "claim", "")
            raise SsoError(f"the ID token is not valid ({which or 'claims'})") from None
        audience = claims.get("aud")
        # OpenID Connect Core §3.1.3.7: several audiences need azp naming us.
        several = isinstance(audience, list) and len(audience) > 1
        if several and claims.get("azp") != self.settings.client_id:
            raise SsoError("the ID token is not valid (azp)")
        return claims

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        import httpx

        try:
            async with self._client() as client:
                response = await client.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, ValueError):
            raise SsoError(f"the sign-in provider could not be reached ({what})", 502) from None
        if not isinstance(data, dict):
            raise SsoError(f"the sign-in provider sent an unusable {what}", 502)
        return data


async def sso_account(store: Store, username: str) -> str:
    """Record (once) the account of an SSO user, without a usable password; its username.

    A local account of the same name is never taken over: a provider letting people pick
    `preferred_username` must not turn anyone into `admin`.
    """
    user = await store.web_user(username)
    if user is None:
        await store.put_web_user(username, password_hash=SSO_PASSWORD, admin=False)
    elif user.password_hash != SSO_PASSWORD:
        raise SsoError(
            f"a local account named {username!r} exists; it signs in with its password", 403
        )
    return username


def _text(doc: Mapping[str, Any], key: str) -> str:
    value = doc[key]
    if not isinstance(value, str) or not value:
        raise TypeError(key)
    return value
