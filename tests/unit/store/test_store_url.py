"""Store URLs as users write them become async-driver URLs; bad ones are clear errors."""

from __future__ import annotations

import pytest

from opsroom.errors import StoreError
from opsroom.store.url import async_url, redacted, sqlite_path


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///opsroom.db", "sqlite+aiosqlite:///opsroom.db"),
        ("sqlite:////var/lib/opsroom/o.db", "sqlite+aiosqlite:////var/lib/opsroom/o.db"),
        ("sqlite+pysqlite:///o.db", "sqlite+aiosqlite:///o.db"),
        ("sqlite+aiosqlite:///o.db", "sqlite+aiosqlite:///o.db"),
        ("postgresql://ops:pw@db:5432/ops", "postgresql+psycopg://ops:pw@db:5432/ops"),
        ("postgres://db/ops", "postgresql+psycopg://db/ops"),
        ("postgresql+asyncpg://db/ops", "postgresql+psycopg://db/ops"),
    ],
)
def test_async_url(given: str, expected: str) -> None:
    assert async_url(given) == expected


@pytest.mark.parametrize(
    ("given", "fragment"),
    [("opsroom.db", "not a URL"), ("mysql://db/ops", "'mysql' is not supported")],
)
def test_unusable_urls_are_store_errors(given: str, fragment: str) -> None:
    with pytest.raises(StoreError, match=fragment):
        async_url(given)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://ops:s3cret@db/ops", "postgresql://ops:***@db/ops"),
        ("postgresql://ops@db/ops", "postgresql://ops@db/ops"),
        ("sqlite:///opsroom.db", "sqlite:///opsroom.db"),
    ],
)
def test_redacted_hides_passwords(given: str, expected: str) -> None:
    assert redacted(given) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///opsroom.db", "opsroom.db"),
        ("sqlite:////abs/o.db", "/abs/o.db"),
        ("sqlite:///file:o.db?mode=ro&uri=true", "o.db"),
        ("sqlite:///:memory:", None),
        ("sqlite://", None),
        ("postgresql://db/ops", None),
    ],
)
def test_sqlite_path(given: str, expected: str | None) -> None:
    assert sqlite_path(given) == expected
