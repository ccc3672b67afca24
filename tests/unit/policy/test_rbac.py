"""Who may run what: roles, deny wins, rooms, `where` limits, groups, built-ins (SPEC §6)."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from opsroom.config import Settings, load_settings
from opsroom.errors import ConfigError
from opsroom.model.commands import CommandSpec, Language, ParamSpec
from opsroom.policy.rbac import Decision, decide, is_admin, roles_of

CONFIG = """
[ldap]  # never contacted here: decide() is pure, directory groups are passed in
url = "ldap://127.0.0.1:1"
user_base = "ou=people,dc=example,dc=test"
group_base = "ou=groups,dc=example,dc=test"

[groups]
storage-leads = ["slack:UALICE", "slack:UHD1", "group:oncall"]
oncall = ["matrix:@carol:example.org"]

[[roles]]
name = "noc"
members = ["slack:UNOC*"]
allow = ["network *", "store status"]
rooms = ["slack:CNOC*"]

[[roles]]
name = "helpdesk"
members = ["slack:UHD*", "slack:UNOC1"]
allow = ["*"]
deny = ["storage *"]

[[roles]]
name = "app-deploy"
members = ["group:deployers"]
allow = ["deploy app"]
where = { env = ["dev", "test"], region = ["emea-*"] }

[[roles]]
name = "storage"
members = ["group:storage-leads"]
allow = ["storage *"]

[[roles]]
name = "admins"
members = ["local:root", "group:opsroom-admins"]
allow = ["reload"]
admin = true

[[roles]]
name = "quiet"
members = ["slack:UQUIET"]
allow = ["store status"]
deny = ["help"]
"""

SETTINGS = Settings.model_validate(tomllib.loads(CONFIG))
NO_ROLES = Settings()


def _cmd(name: str, *params: ParamSpec) -> CommandSpec:
    return CommandSpec(
        name=name, path=name.replace(" ", "/") + ".ps1", language=Language.POWERSHELL, params=params
    )


def _builtin(name: str) -> CommandSpec:
    return CommandSpec(name=name, path="", language=Language.BUILTIN)


VLAN = _cmd("network vlan add")
MIGRATE = _cmd("storage migrate")
STATUS = _cmd("store status")
DEPLOY = _cmd("deploy app", ParamSpec("env", default="dev"), ParamSpec("region"))
DEPLOY_PROD_DEFAULT = _cmd(
    "deploy app", ParamSpec("env", default="prod"), ParamSpec("region", default="emea-west")
)
DEPLOY_MANY = _cmd("deploy app", ParamSpec("env", multiple=True), ParamSpec("region"))
DEPLOYERS = ("Deployers",)  # as a directory returns it; group names compare case-insensitively


@pytest.mark.parametrize(
    ("principal", "room", "spec", "groups", "params", "expected"),
    [
        # allow, and room globs
        (
            "slack:UNOC7",
            "slack:CNOC1",
            VLAN,
            (),
            None,
            Decision(True, "allowed by role noc", "noc"),
        ),
        (
            "slack:UNOC7",
            "slack:CGENERAL",
            VLAN,
            (),
            None,
            Decision(False, "denied: role noc may run network * only in slack:CNOC*"),
        ),
        # a second role may allow what the first does not allow in this room
        (
            "slack:UNOC1",
            "slack:CGENERAL",
            VLAN,
            (),
            None,
            Decision(True, "allowed by role helpdesk", "helpdesk"),
        ),
        # deny wins over another role's allow
        (
            "slack:UHD1",
            "slack:CGENERAL",
            MIGRATE,
            (),
            None,
            Decision(False, "denied: role helpdesk denies storage *"),
        ),
        # static groups, and a static group nested in another
        (
            "slack:UALICE",
            "slack:CGENERAL",
            MIGRATE,
            (),
            None,
            Decision(True, "allowed by role storage", "storage"),
        ),
        (
            "matrix:@carol:example.org",
            "matrix:!ops:example.org",
            MIGRATE,
            (),
            None,
            Decision(True, "allowed by role storage", "storage"),
        ),
        (
            "slack:U999",
            "slack:CNOC1",
            STATUS,
            (),
            None,
            Decision(False, "denied: slack:U999 holds no role"),
        ),
        (
            "slack:UALICE",
            "slack:CNOC1",
            VLAN,
            (),
            None,
            Decision(False, "denied: no rule allows network vlan add (your role: storage)"),
        ),
        # groups passed in (from the directory)
        (
            "web:dev",
            "web:ops",
            DEPLOY,
            (),
            {"env": "test", "region": "emea-west"},
            Decision(False, "denied: web:dev holds no role"),
        ),
        (
            "web:dev",
            "web:ops",
            DEPLOY,
            DEPLOYERS,
            {"env": "test", "region": "emea-west"},
            Decision(True, "allowed by role app-deploy", "app-deploy"),
        ),
        # where: given values
        (
            "web:dev",
            "web:ops",
            DEPLOY,
            DEPLOYERS,
            {"env": "prod", "region": "emea-west"},
            Decision(False, "denied: role app-deploy allows env dev, test — not prod"),
        ),
        (
            "web:dev",
            "web:ops",
            DEPLOY,
            DEPLOYERS,
            {"env": "dev", "region": "apac-1"},
            Decision(False, "denied: role app-deploy allows region emea-* — not apac-1"),
        ),
        (
            "web:dev",
            "web:ops",
            DEPLOY_MANY,
            DEPLOYERS,
            {"env": ("dev", "prod"), "region": "emea-north"},
            Decision(False, "denied: role app-deploy allows env dev, test — not prod"),
        ),
        (
            "web:dev",
            "web:ops",
            DEPLOY_MANY,
            DEPLOYERS,
            {"env": ("dev", "test"), "region": "emea-north"},
            Decision(True, "allowed by role app-deploy", "app-deploy"),
        ),
        # where: parameters not given fall back to the script's default, which must be allowed
        (
            "web:dev",
            "web:ops",
            DEPLOY,
            DEPLOYERS,
            {"region": "emea-west"},
            Decision(True, "allowed by role app-deploy", "app-deploy"),
        ),
        (
            "web:dev",
            "web:ops",
            DEPLOY_PROD_DEFAULT,
            DEPLOYERS,
            {},
            Decision(False, "denied: role app-deploy allows env dev, test — not the default prod"),
        ),
        (
            "web:dev",
            "web:ops",
            DEPLOY,
            DEPLOYERS,
            {"env": "dev"},
            Decision(
                False,
                "denied: role app-deploy allows region emea-* — region must be given explicitly",
            ),
        ),
        # without parameters (help listings, the check before binding) the answer is provisional
        (
            "web:dev",
            "web:ops",
            DEPLOY,
            DEPLOYERS,
            None,
            Decision(True, "allowed by role app-deploy", "app-deploy", provisional=True),
        ),
        # built-ins: open to every role holder, in any room; a deny still removes them
        (
            "slack:UNOC7",
            "slack:CGENERAL",
            _builtin("help"),
            (),
            None,
            Decision(True, "built-in open to every role holder", "noc"),
        ),
        (
            "slack:UNOC7",
            "slack:CGENERAL",
            _builtin("approve"),
            (),
            None,
            Decision(True, "built-in open to every role holder", "noc"),
        ),
        (
            "slack:UQUIET",
            "slack:CNOC1",
            _builtin("help"),
            (),
            None,
            Decision(False, "denied: role quiet denies help"),
        ),
        (
            "slack:U999",
            "slack:CNOC1",
            _builtin("whoami"),
            (),
            None,
            Decision(False, "denied: slack:U999 holds no role"),
        ),
        # schedule and reload follow allow
        (
            "slack:UNOC7",
            "slack:CNOC1",
            _builtin("reload"),
            (),
            None,
            Decision(False, "denied: no rule allows reload (your role: noc)"),
        ),
        (
            "local:root",
            "local:term",
            _builtin("reload"),
            (),
            None,
            Decision(True, "allowed by role admins", "admins"),
        ),
        (
            "slack:UHD9",
            "slack:CGENERAL",
            _builtin("schedule"),
            (),
            None,
            Decision(True, "allowed by role helpdesk", "helpdesk"),
        ),
        (
            "slack:UNOC1",
            "slack:CGENERAL",
            _builtin("reload"),
            (),
            None,
            Decision(True, "allowed by role helpdesk", "helpdesk"),
        ),
    ],
)
def test_decide(
    principal: str,
    room: str,
    spec: CommandSpec,
    groups: tuple[str, ...],
    params: Mapping[str, Any] | None,
    expected: Decision,
) -> None:
    assert decide(principal, room, spec, SETTINGS, groups=groups, params=params) == expected


NO_ROLES_TEXT = (
    "denied: no roles are configured, so only local and web users may run commands — "
    "an administrator must add [[roles]] to opsroom.toml"
)


@pytest.mark.parametrize(
    ("principal", "spec", "allowed", "reason"),
    [
        (
            "local:alice",
            MIGRATE,
            True,
            "no roles configured: local and web users may run everything",
        ),
        (
            "web:bob",
            _builtin("reload"),
            True,
            "no roles configured: local and web users may run everything",
        ),
        ("slack:U024BE7LH", STATUS, False, NO_ROLES_TEXT),
        ("matrix:@alice:example.org", _builtin("help"), False, NO_ROLES_TEXT),
    ],
)
def test_without_roles_only_local_and_web_may_run(
    principal: str, spec: CommandSpec, allowed: bool, reason: str
) -> None:
    assert decide(principal, "any:room", spec, NO_ROLES) == Decision(allowed, reason)


@pytest.mark.parametrize(
    ("settings", "principal", "groups", "expected"),
    [
        (SETTINGS, "local:root", (), True),
        (SETTINGS, "matrix:@ann:example.org", ("OpsRoom-Admins",), True),
        (SETTINGS, "slack:UNOC7", (), False),
        (SETTINGS, "web:root", (), False),
        (NO_ROLES, "local:alice", (), True),
        (NO_ROLES, "web:alice", (), True),
        (NO_ROLES, "slack:U1", (), False),
    ],
)
def test_is_admin(
    settings: Settings, principal: str, groups: tuple[str, ...], expected: bool
) -> None:
    assert is_admin(principal, settings, groups=groups) is expected


@pytest.mark.parametrize(
    ("principal", "groups", "expected"),
    [
        ("slack:UNOC1", (), ("noc", "helpdesk")),
        ("slack:UHD1", (), ("helpdesk", "storage")),
        ("web:dev", DEPLOYERS, ("app-deploy",)),
        ("slack:U999", (), ()),
    ],
)
def test_roles_of_lists_held_roles_in_config_order(
    principal: str, groups: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    assert roles_of(principal, SETTINGS, groups=groups) == expected


def test_where_accepts_a_single_value_and_numbers(tmp_path: Path) -> None:
    (tmp_path / "opsroom.toml").write_text(
        '[[roles]]\nname = "r"\nmembers = ["web:*"]\nallow = ["scale"]\n'
        'where = { env = "dev", replicas = [1, 2], force = [false] }\n'
    )
    settings = load_settings(environ={}, cwd=tmp_path)
    spec = _cmd("scale", ParamSpec("env"), ParamSpec("replicas"), ParamSpec("force", default=False))
    ok = decide("web:a", "web:x", spec, settings, params={"env": "dev", "replicas": 2})
    assert ok == Decision(True, "allowed by role r", "r")
    too_many = decide("web:a", "web:x", spec, settings, params={"env": "dev", "replicas": 3})
    assert too_many.reason == "denied: role r allows replicas 1, 2 — not 3"
    forced = decide(
        "web:a", "web:x", spec, settings, params={"env": "dev", "replicas": 1, "force": True}
    )
    assert forced.reason == "denied: role r allows force false — not true"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[roles]]\nname = "a"\nalow = ["*"]\n', "roles.0.alow: unknown key"),
        ('[[roles]]\nallow = ["*"]\n', "roles.0.name: Field required"),
        (
            '[[roles]]\nname = "a"\n[[roles]]\nname = "a"\n',
            "roles: role name 'a' is used twice (roles.0 and roles.1)",
        ),
        (
            '[[roles]]\nname = "a"\nmembers = ["slack:U1", "alice"]\n',
            "roles.0.members.1: expected a principal like slack:U024BE7LH, a glob like slack:U*, "
            "or group:<name>, got 'alice'",
        ),
        (
            '[[roles]]\nname = "a"\nmembers = ["group:nope"]\n',
            "roles: role 'a' (roles.0.members) names group:nope, which is not in [groups], "
            "and no [ldap] is configured",
        ),
        (
            '[[roles]]\nname = "a"\nwhere = { env = [] }\n',
            'roles.0.where.env: expected a list of allowed values, e.g. ["dev", "test"]',
        ),
        ('[[roles]]\nname = "a"\nrooms = []\n', "roles.0.rooms: Tuple should have at least 1 item"),
        (
            '[[roles]]\nname = "a"\nallow = "network *"\n',
            "roles.0.allow: Input should be a valid tuple",
        ),
        (
            '[[roles]]\nname = "a"\nadmin = "yes"\n',
            "roles.0.admin: Input should be a valid boolean",
        ),
        (
            '[groups]\nops = ["bob"]\n',
            "groups.ops.0: expected a principal like slack:U024BE7LH, a glob like slack:U*, "
            "or group:<name>, got 'bob'",
        ),
    ],
    ids=[
        "unknown-key",
        "no-name",
        "duplicate-name",
        "bare-name-member",
        "undefined-group",
        "empty-where",
        "empty-rooms",
        "allow-not-a-list",
        "admin-not-bool",
        "group-bare-member",
    ],
)
def test_role_config_errors_name_the_key_path(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "opsroom.toml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(environ={}, cwd=tmp_path)
    assert expected in str(info.value)
