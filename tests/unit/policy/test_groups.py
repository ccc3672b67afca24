"""Group membership: static `[groups]`, principal → directory user, filters, `[ldap]` config."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsroom.config import Settings, load_settings
from opsroom.errors import ConfigError
from opsroom.policy.groups import GroupResolver, static_groups_of
from opsroom.policy.ldap import in_chain_filter, member_filter, user_filter, username_for

TABLE = {
    "Storage-Leads": ["slack:UALICE", "group:oncall"],
    "oncall": ["matrix:@carol:example.org", "group:night"],
    "night": ["irc:dave"],
    "loop-a": ["group:loop-b", "web:eve"],
    "loop-b": ["group:loop-a"],
    "everyone-on-web": ["web:*"],
}


@pytest.mark.parametrize(
    ("principal", "seed", "expected"),
    [
        ("slack:UALICE", (), {"storage-leads"}),
        ("irc:dave", (), {"night", "oncall", "storage-leads"}),
        ("web:eve", (), {"loop-a", "loop-b", "everyone-on-web"}),
        ("slack:UBOB", (), set()),
        # directory groups feed static nesting: [groups] may contain group:<ldap group>
        ("slack:UBOB", ("NIGHT",), {"night", "oncall", "storage-leads"}),
        ("slack:UBOB", ("dba",), {"dba"}),
    ],
)
def test_static_groups_follow_nesting_and_globs(
    principal: str, seed: tuple[str, ...], expected: set[str]
) -> None:
    assert static_groups_of(principal, TABLE, seed=seed) == frozenset(expected)


@pytest.mark.parametrize(
    ("principal", "principal_map", "expected"),
    [
        ("web:alice", {}, "alice"),
        ("irc:alice", {}, "alice"),
        ("local:alice", {"local": "username"}, "alice"),
        ("slack:U024BE7LH", {"slack": "none"}, None),
        ("matrix:@alice:example.org", {"matrix": "localpart:example.org"}, "alice"),
        ("matrix:@alice:Example.ORG", {"matrix": "localpart:example.org"}, "alice"),
        # another homeserver's @alice is not our alice
        ("matrix:@alice:evil.example", {"matrix": "localpart:example.org"}, None),
        ("teams:alice@example.org", {"teams": "localpart:example.org"}, "alice"),
        ("teams:alice@example.org.evil", {"teams": "localpart:example.org"}, None),
        ("teams:8f1c-00aa", {"teams": "localpart:example.org"}, None),
        ("web:", {}, None),
    ],
)
def test_principal_maps_to_directory_user(
    principal: str, principal_map: dict[str, str], expected: str | None
) -> None:
    assert username_for(principal, principal_map) == expected


def test_filters_escape_what_the_user_typed() -> None:
    assert user_filter("(uid={user})", "alice") == "(uid=alice)"
    # a username can never widen the search
    assert user_filter("(uid={user})", "*)(uid=*") == r"(uid=\2a\29\28uid=\2a)"
    assert user_filter("(sAMAccountName={user})", "a\\b") == r"(sAMAccountName=a\5cb)"
    assert member_filter("(objectClass=groupOfNames)", "member", ["cn=a (x),dc=t", "cn=b"]) == (
        r"(&(objectClass=groupOfNames)(|(member=cn=a \28x\29,dc=t)(member=cn=b)))"
    )
    assert in_chain_filter("(objectClass=group)", "member", "cn=a,dc=t") == (
        "(&(objectClass=group)(member:1.2.840.113556.1.4.1941:=cn=a,dc=t))"
    )


async def test_resolver_without_directory_uses_static_groups() -> None:
    settings = Settings.model_validate({"groups": {"ops": ["slack:U1", "slack:U2"]}})
    resolver = GroupResolver(settings)
    assert await resolver.groups_of("slack:U1") == frozenset({"ops"})
    assert await resolver.groups_of("slack:U3") == frozenset()
    membership = await resolver.membership("slack:U2")
    assert membership.error is None


async def test_principals_never_looked_up_keep_static_groups() -> None:
    # The directory URL is unreachable; a principal mapped to "none" must never try it.
    settings = Settings.model_validate(
        {
            "groups": {"ops": ["slack:U1"]},
            "ldap": {
                "url": "ldap://127.0.0.1:1",
                "user_base": "dc=t",
                "group_base": "dc=t",
                "principal_map": {"slack": "none"},
            },
        }
    )
    membership = await GroupResolver(settings).membership("slack:U1")
    assert membership.groups == frozenset({"ops"})
    assert membership.error is None


LDAP = '[ldap]\nurl = "ldap://x"\nuser_base = "a"\ngroup_base = "b"\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[ldap]\nurl = "http://x"\nuser_base = "a"\ngroup_base = "b"\n',
            "ldap.url: expected ldap://host[:port] or ldaps://host[:port], got 'http://x'",
        ),
        ('[ldap]\nurl = "ldap://x"\ngroup_base = "b"\n', "ldap.user_base: Field required"),
        (
            LDAP + 'bind_dn = "cn=bot"\nbind_password = "hunter2"\n',
            'ldap.bind_password: expected a reference like "env:LDAP_PASSWORD" or "file:/path", '
            "never the password itself",
        ),
        (
            LDAP + 'user_filter = "(uid=alice)"\n',
            "ldap.user_filter: must contain {user}, e.g. (uid={user}) or (sAMAccountName={user})",
        ),
        (
            LDAP + 'group_filter = "objectClass=group"\n',
            "ldap.group_filter: an LDAP filter must be in parentheses",
        ),
        (
            LDAP + 'principal_map = { matrix = "email" }\n',
            'ldap.principal_map.matrix: expected "username", "none" or "localpart:<domain>"',
        ),
        (
            LDAP + 'bind_dn = "cn=bot"\n',
            "ldap: bind_dn and bind_password go together (leave both out to bind anonymously)",
        ),
        (LDAP + 'cache_ttl = "soon"\n', "ldap.cache_ttl: Value error, expected a duration"),
        (LDAP + 'nested = "yes"\n', "ldap.nested: Input should be a valid boolean"),
        (LDAP + "bogus = 1\n", "ldap.bogus: unknown key"),
    ],
)
def test_ldap_config_errors_name_the_key_path(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "opsroom.toml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(environ={}, cwd=tmp_path)
    assert expected in str(info.value)
    assert "hunter2" not in str(info.value)


def test_ldap_config_defaults_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "opsroom.toml").write_text(
        LDAP + 'bind_dn = "cn=bot"\nbind_password = "env:LDAP_PW"\n'
        '[[roles]]\nname = "leads"\nmembers = ["group:ops-leads"]\nallow = ["*"]\n'
    )
    settings = load_settings(environ={"OPSROOM_LDAP_CACHE_TTL": '"2m"'}, cwd=tmp_path)
    assert settings.ldap is not None
    assert settings.ldap.cache_ttl == 120.0
    assert settings.ldap.user_filter == "(uid={user})"
    assert settings.ldap.timeout == 10.0
    assert settings.ldap.nested is False
    # with a directory configured, group:<name> may name a group only the directory knows
    assert settings.roles[0].members == ("group:ops-leads",)
