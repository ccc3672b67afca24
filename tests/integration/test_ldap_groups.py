"""Roles through LDAP groups, against a real OpenLDAP `slapd` (SPEC §6.1).

Needs the Debian packages `slapd` and `ldap-utils`; the fixture fails (never skips) without
them.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from opsroom.config import Settings
from opsroom.model.commands import CommandSpec, Language
from opsroom.policy.groups import GroupResolver
from opsroom.policy.ldap import ldap3_module
from opsroom.policy.rbac import decide
from support import bound_socket, port_for_a_server, port_of

SUFFIX = "dc=example,dc=test"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PW = "admin-secret"
BOT_DN = f"uid=opsroom-bot,{SUFFIX}"
BOT_PW = "bot-secret-7"
MIGRATE = CommandSpec(
    name="storage migrate", path="storage/migrate.ps1", language=Language.POWERSHELL
)

SLAPD_CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {dir}/slapd.pid
database mdb
maxsize 104857600
suffix "{suffix}"
rootdn "{admin_dn}"
rootpw {admin_pw}
directory {dir}/db
index objectClass,uid,member eq
access to attrs=userPassword by self read by anonymous auth by * none
access to * by users read by * none
"""

BASE_LDIF = f"""\
dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: {BOT_DN}
objectClass: account
objectClass: simpleSecurityObject
uid: opsroom-bot
userPassword: {BOT_PW}
"""


def _tool(name: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for d in ("/usr/sbin", "/usr/bin") if (p := Path(d) / name).is_file()), None
    )
    if found is None:
        pytest.fail(
            f"{name} is not installed; these tests need a real OpenLDAP server: "
            "apt-get install -y slapd ldap-utils"
        )
    return found


@dataclass(frozen=True)
class Slapd:
    """A running throwaway OpenLDAP server."""

    url: str
    folder: Path


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """A real slapd on 127.0.0.1, started in the foreground and stopped after the session."""
    slapd_bin, slapadd = _tool("slapd"), _tool("slapadd")
    folder = tmp_path_factory.mktemp("slapd")
    (folder / "db").mkdir()
    conf = folder / "slapd.conf"
    conf.write_text(
        SLAPD_CONF.format(dir=folder, suffix=SUFFIX, admin_dn=ADMIN_DN, admin_pw=ADMIN_PW)
    )
    (folder / "base.ldif").write_text(BASE_LDIF)
    subprocess.run(
        [slapadd, "-f", str(conf), "-l", str(folder / "base.ldif")], check=True, capture_output=True
    )
    port = port_for_a_server()
    url = f"ldap://127.0.0.1:{port}"
    ldap3 = ldap3_module()
    with (folder / "slapd.log").open("w") as log:
        proc = subprocess.Popen(
            [slapd_bin, "-f", str(conf), "-h", f"{url}/", "-d", "0"], stdout=log, stderr=log
        )
        try:
            deadline = time.monotonic() + 15
            while True:
                if proc.poll() is not None:
                    text = (folder / "slapd.log").read_text()
                    pytest.fail(f"slapd exited with {proc.returncode}: {text}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        pytest.fail("slapd did not listen within 15 s")
                    time.sleep(0.05)
            ldap3.Connection(ldap3.Server(url), ADMIN_DN, ADMIN_PW, auto_bind=True).unbind()
            yield Slapd(url, folder)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass(frozen=True)
class Tree:
    """One test's own subtree: users alice, bob, carol; storage-team inside ops-leads."""

    base: str
    people: str
    groups: str

    def dn(self, uid: str) -> str:
        """The DN of a seeded user."""
        return f"uid={uid},{self.people}"


@pytest.fixture
def tree(slapd: Slapd) -> Tree:
    """Seed a fresh subtree, so tests never see each other's changes."""
    ldap3 = ldap3_module()
    base = f"ou=t{uuid.uuid4().hex[:10]},{SUFFIX}"
    t = Tree(base, f"ou=people,{base}", f"ou=groups,{base}")
    conn = ldap3.Connection(ldap3.Server(slapd.url), ADMIN_DN, ADMIN_PW, auto_bind=True)
    for dn in (base, t.people, t.groups):
        assert conn.add(dn, ["organizationalUnit"], {"ou": dn.split(",")[0][3:]}), conn.result
    for uid in ("alice", "bob", "carol"):
        attrs = {"uid": uid, "cn": uid.title(), "sn": uid.title()}
        assert conn.add(t.dn(uid), ["inetOrgPerson"], attrs), conn.result
    team = f"cn=storage-team,{t.groups}"
    assert conn.add(
        team, ["groupOfNames"], {"cn": "storage-team", "member": [t.dn("alice"), t.dn("carol")]}
    ), conn.result
    assert conn.add(
        f"cn=ops-leads,{t.groups}", ["groupOfNames"], {"cn": "ops-leads", "member": [team]}
    ), conn.result
    conn.unbind()
    return t


def _settings(url: str, tree: Tree, folder: Path, **ldap: object) -> Settings:
    password = folder / f"bind-{uuid.uuid4().hex[:6]}"
    password.write_text(BOT_PW + "\n")
    table: dict[str, object] = {
        "url": url,
        "bind_dn": BOT_DN,
        "bind_password": f"file:{password}",
        "user_base": tree.people,
        "group_base": tree.groups,
        "nested": True,
        "cache_ttl": "1.5s",
        "timeout": 5,
    }
    table.update(ldap)
    return Settings.model_validate(
        {
            "groups": {"night-shift": ["web:zed"]},
            "ldap": table,
            "roles": [
                {"name": "leads", "members": ["group:ops-leads"], "allow": ["storage *"]},
                {"name": "night", "members": ["group:night-shift"], "allow": ["jobs"]},
            ],
        }
    )


def _remove_member(slapd: Slapd, group_dn: str, member_dn: str) -> None:
    ldif = f"dn: {group_dn}\nchangetype: modify\ndelete: member\nmember: {member_dn}\n"
    subprocess.run(
        [_tool("ldapmodify"), "-x", "-H", slapd.url, "-D", ADMIN_DN, "-w", ADMIN_PW],
        input=ldif,
        text=True,
        check=True,
        capture_output=True,
        env={**os.environ, "LDAPTLS_REQCERT": "never"},
    )


@pytest.mark.parametrize("method", ["auto", "iterative"])
async def test_nested_group_grants_role_until_removed_and_ttl_passes(
    slapd: Slapd, tree: Tree, method: str
) -> None:
    settings = _settings(slapd.url, tree, slapd.folder, nested_method=method)
    now = [0.0]  # the resolver's clock, moved by hand: the TTL passes without waiting
    resolver = GroupResolver(settings, clock=lambda: now[0])

    alice = await resolver.groups_of("web:alice")
    assert alice == frozenset({"storage-team", "ops-leads"})
    allowed = decide("web:alice", "web:ops", MIGRATE, settings, groups=alice)
    assert (allowed.allowed, allowed.role) == (True, "leads")

    bob = await resolver.groups_of("web:bob")
    assert bob == frozenset()
    refused = decide("web:bob", "web:ops", MIGRATE, settings, groups=bob)
    assert refused.reason == "denied: web:bob holds no role"

    _remove_member(slapd, f"cn=storage-team,{tree.groups}", tree.dn("alice"))
    now[0] = 1.4  # cache_ttl is 1.5 s
    within_ttl = await resolver.membership("web:alice")
    assert within_ttl.cached
    assert decide("web:alice", "web:ops", MIGRATE, settings, groups=within_ttl.groups).allowed

    now[0] = 1.6
    after_ttl = await resolver.membership("web:alice")
    assert not after_ttl.cached
    assert after_ttl.groups == frozenset()
    gone = decide("web:alice", "web:ops", MIGRATE, settings, groups=after_ttl.groups)
    assert gone.reason == "denied: web:alice holds no role"


async def test_without_nesting_only_direct_groups_count(slapd: Slapd, tree: Tree) -> None:
    settings = _settings(slapd.url, tree, slapd.folder, nested=False)
    alice = await GroupResolver(settings).groups_of("web:alice")
    assert alice == frozenset({"storage-team"})
    assert not decide("web:alice", "web:ops", MIGRATE, settings, groups=alice).allowed


async def test_username_cannot_widen_the_search(slapd: Slapd, tree: Tree) -> None:
    settings = _settings(slapd.url, tree, slapd.folder)
    resolver = GroupResolver(settings)
    for principal in ("web:al*", "web:*", "web:alice)(uid=*"):
        membership = await resolver.membership(principal)
        assert membership.groups == frozenset(), principal
        assert membership.error is None, principal


async def test_unreachable_directory_fails_closed(
    slapd: Slapd, tree: Tree, caplog: pytest.LogCaptureFixture
) -> None:
    closed = bound_socket()  # bound and never listening: connections are refused
    dead = f"ldap://127.0.0.1:{port_of(closed)}"
    settings = _settings(dead, tree, slapd.folder, timeout=2)
    resolver = GroupResolver(settings)
    with closed, caplog.at_level(logging.WARNING, logger="opsroom.policy.groups"):
        zed = await resolver.membership("web:zed")
        alice = await resolver.membership("web:alice")
    # static groups still count; nothing from the directory
    assert zed.groups == frozenset({"night-shift"})
    assert alice.groups == frozenset()
    assert alice.error is not None
    assert str(alice.error).startswith(f"LDAP {dead}: connect failed: ")
    assert f"LDAP {dead}: connect failed" in caplog.text
    assert "web:alice gets static [groups] only" in caplog.text
    assert decide("web:alice", "web:ops", MIGRATE, settings, groups=alice.groups).reason == (
        "denied: web:alice holds no role"
    )


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("wrong-password", "bind failed: invalidCredentials (49)"),
        (None, "bind failed: bind_password file:/nonexistent/ldap-pw: cannot read"),
    ],
)
async def test_bad_bind_fails_closed_with_a_clear_error(
    slapd: Slapd, tree: Tree, password: str | None, expected: str
) -> None:
    settings = _settings(slapd.url, tree, slapd.folder)
    assert settings.ldap is not None
    reference = "file:/nonexistent/ldap-pw"
    if password is not None:
        path = slapd.folder / "wrong-pw"
        path.write_text(password)
        reference = f"file:{path}"
    ldap = settings.ldap.model_copy(update={"bind_password": reference})
    settings = settings.model_copy(update={"ldap": ldap})
    membership = await GroupResolver(settings).membership("web:alice")
    assert membership.groups == frozenset()
    assert membership.error is not None
    assert str(membership.error).startswith(f"LDAP {slapd.url}: {expected}")
    assert "wrong-password" not in str(membership.error)
