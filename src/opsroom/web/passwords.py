"""Password hashes (salted scrypt) and random secrets for sessions and API tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# scrypt cost: n=2**14, r=8, p=1 uses 16 MiB and ~50 ms: slow for guessers, fine for logins.
_N, _R, _P = 2**14, 8, 1
_SCHEME = "scrypt"


def hash_password(password: str) -> str:
    """A salted scrypt hash: `scrypt$n$r$p$salt$hash` (base64), never the password."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return "$".join(
        (_SCHEME, str(_N), str(_R), str(_P), _b64(salt), _b64(digest)),
    )


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches a hash made by `hash_password` (constant-time compare)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != _SCHEME:
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def new_password() -> str:
    """A generated password people can type: 20 URL-safe characters."""
    return secrets.token_urlsafe(15)


def new_token(prefix: str = "") -> str:
    """A random bearer secret (session cookie or API token)."""
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the store keeps of a session cookie or API token: its sha256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
