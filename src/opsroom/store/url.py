"""Store URLs: what users write (`sqlite:///opsroom.db`) to what the async engine needs."""

from __future__ import annotations

from opsroom.errors import StoreError, require_extra

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    # psycopg 3: the one PostgreSQL driver, shared with the workers' job queue.
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
}


def async_url(url: str) -> str:
    """The URL with its async driver (`sqlite+aiosqlite`, `postgresql+psycopg`) filled in."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise StoreError(f"store url {url!r} is not a URL (expected e.g. sqlite:///opsroom.db)")
    backend = scheme.split("+", 1)[0].lower()
    driver = _ASYNC_DRIVERS.get(backend)
    if driver is None:
        raise StoreError(
            f"store url scheme {scheme!r} is not supported (use sqlite:/// or postgresql://)"
        )
    if backend in ("postgresql", "postgres"):
        # The driver is an extra; without it SQLAlchemy would fail deep inside engine set-up.
        require_extra("psycopg", "postgres", "a postgresql:// [store] url")
    return f"{driver}://{rest}"


def redacted(url: str) -> str:
    """The URL with any password replaced, fit for error messages and logs."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}"
    return f"{scheme}{sep}{netloc}{slash}{tail}"


def sqlite_path(url: str) -> str | None:
    """The file path of a SQLite URL (None for other backends and in-memory databases)."""
    scheme, _, rest = url.partition("://")
    if not scheme.lower().startswith("sqlite"):
        return None
    path = rest[1:] if rest.startswith("/") else rest
    path = path.split("?", 1)[0]
    if path.startswith("file:"):
        path = path[len("file:") :]
    if path in ("", ":memory:"):
        return None
    return path
