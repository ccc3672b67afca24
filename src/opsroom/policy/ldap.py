"""Group membership from an LDAP directory or Active Directory, through `ldap3`.

Blocking by design (ldap3's synchronous strategy, one short-lived connection per lookup):
`GroupResolver` calls it in a worker thread and caches the answer. Every failure — no
connection, a refused bind, a missing base, an ambiguous user — is a `DirectoryError`, so the
caller can fall back to static groups and never grant more because the directory was down.

A principal maps to a directory username through `[ldap] principal_map`, per adapter:
`"username"` (the default: the id part as is — `web:alice` → `alice`, `irc:alice` → the
services account `alice`), `"none"` (never looked up — e.g. Slack, whose ids are not
usernames), or `"localpart:<domain>"` (`matrix:@alice:example.org` or `teams:alice@example.org`
→ `alice`, only when the domain is exactly `<domain>`, so another homeserver's `@alice` is
not our alice).
"""

from __future__ import annotations

import contextlib
import math
import ssl
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from opsroom.config import LdapSettings, resolve_reference
from opsroom.errors import ConfigError, OpsroomError

# Active Directory's LDAP_MATCHING_RULE_IN_CHAIN: member of, through any depth of nesting.
IN_CHAIN_RULE = "1.2.840.113556.1.4.1941"
# rootDSE supportedCapabilities value that marks an Active Directory server.
_AD_CAPABILITY = "1.2.840.113556.1.4.800"
_MAX_DEPTH = 32  # nesting deeper than this is a directory mistake, not an org chart
_BATCH = 40  # member DNs per OR-filter in one search


def ldap3_module() -> Any:
    """The ldap3 module, imported on first use (it is untyped, and not needed at start-up)."""
    # ldap3 2.9.1 (the latest) imports names newer pyasn1 releases deprecate; the warning is
    # about ldap3's code, not ours, and nothing a user of opsroom can act on.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import ldap3
        import ldap3.core.exceptions

    return ldap3


class DirectoryError(OpsroomError):
    """The directory could not answer; says which server, at which step, and why."""

    def __init__(self, url: str, stage: str, detail: str) -> None:
        super().__init__(f"LDAP {url}: {stage} failed: {detail}")
        self.url = url
        self.stage = stage
        self.detail = detail


def escape_filter_value(value: str) -> str:
    """`value` safe inside an LDAP filter (RFC 4515): `*()\\` and NUL escaped."""
    out = []
    for ch in value:
        if ch in "\\*()\x00":
            out.append(f"\\{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def username_for(principal: str, principal_map: Mapping[str, str]) -> str | None:
    """The directory username of `principal`, or None when it is never looked up."""
    adapter, _, ident = principal.partition(":")
    rule = principal_map.get(adapter, "username")
    if not ident or rule == "none":
        return None
    if rule == "username":
        return ident
    domain = rule.partition(":")[2]
    if ident.startswith("@") and ":" in ident:  # Matrix: @localpart:server
        local, _, server = ident[1:].partition(":")
    elif "@" in ident:  # e-mail style: local@domain
        local, _, server = ident.rpartition("@")
    else:
        return None
    if not local or server.casefold() != domain.casefold():
        return None
    return local


def user_filter(template: str, username: str) -> str:
    """The user search filter with `{user}` replaced by the escaped username."""
    return template.replace("{user}", escape_filter_value(username))


def member_filter(group_filter: str, member_attribute: str, dns: Iterable[str]) -> str:
    """Groups (matching `group_filter`) having any of `dns` as a direct member."""
    terms = "".join(f"({member_attribute}={escape_filter_value(dn)})" for dn in dns)
    return f"(&{group_filter}(|{terms}))"


def in_chain_filter(group_filter: str, member_attribute: str, dn: str) -> str:
    """Active Directory: groups having `dn` as a member at any depth of nesting."""
    return f"(&{group_filter}({member_attribute}:{IN_CHAIN_RULE}:={escape_filter_value(dn)}))"


class LdapDirectory:
    """Looks up the groups of a directory user; blocking, raises DirectoryError."""

    def __init__(self, settings: LdapSettings, environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self._environ = environ

    def username_for(self, principal: str) -> str | None:
        """The directory username of `principal` under this directory's `principal_map`."""
        return username_for(principal, self.settings.principal_map)

    def groups_for_user(self, username: str) -> frozenset[str]:
        """Names of the groups `username` is in (nested ones too when `nested`)."""
        ldap3 = ldap3_module()
        s = self.settings
        stage = "connect"
        conn = self._connection()
        try:
            conn.open()
            if s.start_tls:
                stage = "StartTLS"
                conn.start_tls()
            stage = "bind"
            if not conn.bind():
                raise DirectoryError(s.url, stage, _result_text(conn))
            stage = "user search"
            dn = self._user_dn(conn, username)
            if dn is None:
                return frozenset()
            stage = "group search"
            return self._groups(conn, dn)
        except ldap3.core.exceptions.LDAPException as e:
            raise DirectoryError(s.url, stage, str(e) or type(e).__name__) from None
        finally:
            with contextlib.suppress(ldap3.core.exceptions.LDAPException):
                conn.unbind()  # the connection may be gone already
            # ldap3 leaves the socket of a failed connect open; close it, not the GC.
            if (sock := getattr(conn, "socket", None)) is not None:
                with contextlib.suppress(OSError):
                    sock.close()

    def _connection(self) -> Any:
        ldap3 = ldap3_module()
        s = self.settings
        password = None
        if s.bind_password is not None:
            try:
                password = resolve_reference(s.bind_password, self._environ)
            except ConfigError as e:
                raise DirectoryError(s.url, "bind", f"bind_password {e}") from None
        tls = None
        if s.url.startswith("ldaps://") or s.start_tls:
            tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=s.ca_cert)
        server = ldap3.Server(s.url, connect_timeout=s.timeout, tls=tls, get_info=ldap3.NONE)
        return ldap3.Connection(
            server,
            user=s.bind_dn,
            password=password,
            receive_timeout=max(1, math.ceil(s.timeout)),  # ldap3 packs it as an integer
            read_only=True,
            raise_exceptions=False,
            auto_bind=ldap3.AUTO_BIND_NONE,
        )

    def _search(self, conn: Any, base: str, filt: str, attributes: list[str], scope: str) -> Any:
        conn.search(base, filt, search_scope=scope, attributes=attributes)
        code = conn.result.get("result", 0)
        if code not in (0, 4):  # success; sizeLimitExceeded still returns what it found
            raise DirectoryError(self.settings.url, f"search in {base}", _result_text(conn))
        return [r for r in conn.response or () if r.get("type") == "searchResEntry"]

    def _user_dn(self, conn: Any, username: str) -> str | None:
        ldap3 = ldap3_module()
        s = self.settings
        filt = user_filter(s.user_filter, username)
        entries = self._search(conn, s.user_base, filt, [ldap3.NO_ATTRIBUTES], ldap3.SUBTREE)
        if len(entries) > 1:
            raise DirectoryError(
                s.url, "user search", f"{len(entries)} entries match {filt}; expected one"
            )
        return str(entries[0]["dn"]) if entries else None

    def _groups(self, conn: Any, user_dn: str) -> frozenset[str]:
        ldap3 = ldap3_module()
        s = self.settings
        attrs = [s.group_name_attribute]
        if s.nested and self._use_in_chain(conn):
            filt = in_chain_filter(s.group_filter, s.member_attribute, user_dn)
            found = self._search(conn, s.group_base, filt, attrs, ldap3.SUBTREE)
            return frozenset(n for e in found if (n := self._name(e)))
        names: dict[str, str] = {}  # group DN (casefolded) → name
        frontier = [user_dn]
        for _ in range(_MAX_DEPTH if s.nested else 1):
            fresh: list[str] = []
            for i in range(0, len(frontier), _BATCH):
                filt = member_filter(s.group_filter, s.member_attribute, frontier[i : i + _BATCH])
                for entry in self._search(conn, s.group_base, filt, attrs, ldap3.SUBTREE):
                    key = str(entry["dn"]).casefold()
                    if key not in names:
                        names[key] = self._name(entry)
                        fresh.append(str(entry["dn"]))
            if not fresh:
                break
            frontier = fresh
        return frozenset(n for n in names.values() if n)

    def _use_in_chain(self, conn: Any) -> bool:
        ldap3 = ldap3_module()
        method = self.settings.nested_method
        if method != "auto":
            return method == "in_chain"
        # Reading the rootDSE may be refused; then iterate, which works on every server.
        conn.search(
            "", "(objectClass=*)", search_scope=ldap3.BASE, attributes=["supportedCapabilities"]
        )
        for entry in conn.response or ():
            caps = entry.get("attributes", {}).get("supportedCapabilities", [])
            if _AD_CAPABILITY in caps:
                return True
        return False

    def _name(self, entry: Mapping[str, Any]) -> str:
        value = entry.get("attributes", {}).get(self.settings.group_name_attribute)
        if isinstance(value, list):
            value = value[0] if value else None
        return str(value) if value else ""


def _result_text(conn: Any) -> str:
    result = conn.result or {}
    text = f"{result.get('description', 'error')} ({result.get('result', '?')})"
    if message := result.get("message"):
        text += f": {message}"
    return text
