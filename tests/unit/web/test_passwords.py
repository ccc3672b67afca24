"""Password hashes and token hashes keep no secret in plain text."""

from __future__ import annotations

import pytest

from opsroom.web.passwords import hash_password, new_password, token_hash, verify_password


def test_a_password_hash_is_salted_and_verifies_only_the_right_password() -> None:
    password = new_password()
    first, second = hash_password(password), hash_password(password)
    assert first != second  # salted
    assert password not in first
    assert verify_password(password, first)
    assert verify_password(password, second)
    assert not verify_password(password + "x", first)


@pytest.mark.parametrize(
    "stored", ["", "plain", "scrypt$1$2", "bcrypt$a$b$c$d$e", "scrypt$x$8$1$a$b"]
)
def test_a_malformed_stored_hash_never_verifies(stored: str) -> None:
    assert not verify_password("anything", stored)


def test_a_token_hash_is_stable_and_not_the_token() -> None:
    assert token_hash("opsr_abc") == token_hash("opsr_abc")
    assert "opsr_abc" not in token_hash("opsr_abc")
