"""Configuration errors are caught before serving: every section and every chat platform.

Each row is one section of opsroom.toml, tried through the real `opsroom config check`: a
good value is applied, an unknown key and a bad value are refused with their key paths,
an `OPSROOM_<SECTION>_<KEY>` override is applied, and a variable that names no key is
refused, naming the variable — while the variables opsroom sets for scripts are not config.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from support import OPSROOM, Opsroom, Result

# What every job's script receives (SPEC §5.1): a script that calls `opsroom` passes them on.
RESERVED = {
    "OPSROOM_JOB_ID": "7",
    "OPSROOM_REQUESTER": "local:bob",
    "OPSROOM_ROOM": "local:terminal",
    "OPSROOM_DRY_RUN": "0",
    "OPSROOM_JOB_TOKEN": "f00d",
    "OPSROOM_EVENTS_FD": "3",
    "OPSROOM_PARAMS": "{}",
    "OPSROOM_PARAM_TYPES": "{}",
    "OPSROOM_ARG_TARGET": "web01",
}

OIDC = '[web.oidc]\nissuer = "https://idp.example.org"\nclient_id = "opsroom"\n'
LDAP = (
    '[ldap]\nurl = "ldaps://dc.example.org"\nuser_base = "ou=people,dc=example,dc=org"\n'
    'group_base = "ou=groups,dc=example,dc=org"\ncache_ttl = "2m"\n'
)
ROLE = '[[roles]]\nname = "noc"\nmembers = ["slack:U1"]\nallow = ["*"]\n'
SLACK = '[adapters.slack]\nbot_token = "env:SLACK_BOT"\napp_token = "env:SLACK_APP"\n'
MATRIX = (
    '[adapters.matrix]\nhomeserver = "https://matrix.example.org"\n'
    'user_id = "@ops:example.org"\naccess_token = "env:MX_TOKEN"\n'
)
IRC = '[adapters.irc]\nserver = "irc.example.org"\nnick = "ops"\nchannels = ["#ops"]\n'


@dataclass(frozen=True)
class Section:
    """One section's contract, as data."""

    good: str  # a valid config using the section
    good_key: str  # a key path and the effective value `config check` shows for it
    good_value: object
    refused: str  # a config with an unknown key and a bad value in the section
    refused_lines: tuple[str, ...]  # each must be on the error output
    env: dict[str, str]  # an override of the good config...
    env_key: str  # ...and the effective value it gives
    env_value: object
    typo: str  # an OPSROOM_ variable naming no key of the section
    typo_says: str  # what the refusal names besides the variable
    typo_config: str | None = None  # the config the typo is tried on (default: good)
    never_echoed: tuple[str, ...] = field(default=())


SECTIONS = {
    "bot": Section(
        good='[bot]\nname = "robot"\n',
        good_key="bot.name",
        good_value="robot",
        refused='[bot]\nprefx = "?"\nprefix = 5\n',
        refused_lines=("bot.prefx: unknown key", "bot.prefix: "),
        env={"OPSROOM_BOT_PREFIX": "?"},
        env_key="bot.prefix",
        env_value="?",
        typo="OPSROOM_BOT_PREFX",
        typo_says="bot.prefx: unknown key",
    ),
    "catalog": Section(
        good='[catalog]\npoll_interval = "2m"\n',
        good_key="catalog.poll_interval",
        good_value=120.0,
        refused='[catalog]\nbrnch = "main"\npoll_interval = "soon"\n',
        refused_lines=("catalog.brnch: unknown key", "catalog.poll_interval: "),
        env={"OPSROOM_CATALOG_BRANCH": "release"},
        env_key="catalog.branch",
        env_value="release",
        typo="OPSROOM_CATALOG_POLL",
        typo_says="catalog.poll: unknown key",
    ),
    "store": Section(
        good='[store]\nurl = "sqlite:///other.db"\n',
        good_key="store.url",
        good_value="sqlite:///other.db",
        refused='[store]\nuri = "sqlite:///x.db"\nurl = 5\n',
        refused_lines=("store.uri: unknown key", "store.url: "),
        env={"OPSROOM_STORE_URL": "sqlite:///from-env.db"},
        env_key="store.url",
        env_value="sqlite:///from-env.db",
        typo="OPSROOM_STORE_URI",
        typo_says="store.uri: unknown key",
    ),
    "web": Section(
        good='[web]\nsession_ttl = "1h"\n',
        good_key="web.session_ttl",
        good_value=3600.0,
        refused='[web]\nlisten_on = "0.0.0.0:80"\nsession_ttl = "soon"\n',
        refused_lines=("web.listen_on: unknown key", "web.session_ttl: "),
        env={"OPSROOM_WEB_BASE_URL": "https://ops.example.org"},
        env_key="web.base_url",
        env_value="https://ops.example.org",
        typo="OPSROOM_WEB_BASEURL",
        typo_says="web.baseurl: unknown key",
    ),
    "web.oidc": Section(
        good=OIDC,
        good_key="web.oidc.client_id",
        good_value="opsroom",
        refused=OIDC.replace("https://", "http://") + 'clientid = "x"\n',
        refused_lines=("web.oidc.clientid: unknown key", "web.oidc.issuer: "),
        env={"OPSROOM_WEB_OIDC_ALLOWED_DOMAINS": '["example.org"]'},
        env_key="web.oidc.allowed_domains",
        env_value=["example.org"],
        typo="OPSROOM_WEB_OIDC_CLIENTID",
        typo_says="web.oidc.clientid: unknown key",
    ),
    "runner": Section(
        good='[runner]\nkill_grace = "2s"\n',
        good_key="runner.kill_grace",
        good_value=2.0,
        refused="[runner]\ntimeot = 5\nconcurrency = 0\n",
        refused_lines=("runner.timeot: unknown key", "runner.concurrency: "),
        env={"OPSROOM_RUNNER_ENV_PASSTHROUGH": '["LANG", "TZ"]'},
        env_key="runner.env_passthrough",
        env_value=["LANG", "TZ"],
        typo="OPSROOM_RUNNER_TIMEOT",
        typo_says="runner.timeot: unknown key",
    ),
    "secrets": Section(
        good='[secrets]\nNETAPP_PASSWORD = "env:NETAPP_PW"\n',
        good_key="secrets.NETAPP_PASSWORD",
        good_value="env:NETAPP_PW",
        refused='[secrets]\n"bad-name" = "env:X"\nNETAPP_PASSWORD = "hunter2-inline"\n',
        refused_lines=("secrets.bad-name", "secrets.NETAPP_PASSWORD: "),
        env={"OPSROOM_SECRETS_SMB_PASSWORD": "file:/run/secrets/smb"},
        env_key="secrets.SMB_PASSWORD",
        env_value="file:/run/secrets/smb",
        # A free-form table: a name is unresolvable when two entries could be meant.
        typo="OPSROOM_SECRETS_NETAPP_PW",
        typo_says="secrets.netapp_pw or secrets.NETAPP_PW",
        typo_config='[secrets]\nnetapp_pw = "env:A"\nNETAPP_PW = "env:B"\n',
        never_echoed=("hunter2-inline",),
    ),
    "vault": Section(
        good="[vault]\nkv_version = 1\n",
        good_key="vault.kv_version",
        good_value=1,
        refused='[vault]\nurll = "https://vault"\nkv_version = 3\n',
        refused_lines=("vault.urll: unknown key", "vault.kv_version: "),
        env={"OPSROOM_VAULT_CA_CERT": "/etc/ssl/vault.pem"},
        env_key="vault.ca_cert",
        env_value="/etc/ssl/vault.pem",
        typo="OPSROOM_VAULT_CACERT",
        typo_says="vault.cacert: unknown key",
    ),
    "groups": Section(
        good='[groups]\noncall = ["slack:U1"]\nstorage-leads = ["slack:U2"]\n',
        good_key="groups.oncall",
        good_value=["slack:U1"],
        refused='[groups]\n"bad:name" = []\noncall = ["U1"]\n',
        refused_lines=("groups.bad:name", "groups.oncall.0: "),
        # `-` cannot be spelled in a variable name: STORAGE_LEADS finds storage-leads.
        env={"OPSROOM_GROUPS_STORAGE_LEADS": '["slack:U3"]'},
        env_key="groups.storage-leads",
        env_value=["slack:U3"],
        typo="OPSROOM_GROUPS_STORAGE_LEADS",
        typo_says="groups.storage-leads or groups.storage_leads",
        typo_config="[groups]\nstorage-leads = []\nstorage_leads = []\n",
    ),
    "ldap": Section(
        good=LDAP,
        good_key="ldap.cache_ttl",
        good_value=120.0,
        refused=LDAP.replace("ldaps://", "http://") + "nestd = true\n",
        refused_lines=("ldap.nestd: unknown key", "ldap.url: "),
        env={"OPSROOM_LDAP_PRINCIPAL_MAP_MATRIX": "localpart:example.org"},
        env_key="ldap.principal_map.matrix",
        env_value="localpart:example.org",
        typo="OPSROOM_LDAP_BASE_DN",
        typo_says="ldap.base_dn: unknown key",
    ),
    "roles": Section(
        good=ROLE,
        good_key="roles.0.allow",
        good_value=["*"],
        refused=ROLE.replace('"slack:U1"', '"U1"') + 'alow = ["*"]\n',
        refused_lines=("roles.0.alow: unknown key", "roles.0.members.0: "),
        env={"OPSROOM_ROLES": '[{name = "web", members = ["web:*"], allow = ["status *"]}]'},
        env_key="roles.0.name",
        env_value="web",
        typo="OPSROOM_ROLES_0_NAME",
        typo_says="roles is set as a whole: OPSROOM_ROLES",
    ),
    "adapters.slack": Section(
        good=SLACK,
        good_key="adapters.slack.api_url",
        good_value="https://slack.com/api/",
        refused=(
            '[adapters.slack]\nbot_tokn = "env:SLACK_BOT"\nbot_token = "xoxb-inline-secret"\n'
            'app_token = "env:SLACK_APP"\nmode = "webhook"\n'
        ),
        refused_lines=(
            "adapters.slack.bot_tokn: unknown key",
            "adapters.slack.bot_token: ",
            "adapters.slack.mode: ",
        ),
        env={"OPSROOM_ADAPTERS_SLACK_BOT_TOKEN": "env:OTHER_BOT"},
        env_key="adapters.slack.bot_token",
        env_value="env:OTHER_BOT",
        typo="OPSROOM_ADAPTERS_SLACK_BOT_TOKN",
        typo_says="adapters.slack.bot_tokn: unknown key",
        never_echoed=("xoxb-inline-secret",),
    ),
    "adapters.matrix": Section(
        good=MATRIX,
        good_key="adapters.matrix.rooms",
        good_value=[],
        refused=MATRIX.replace("@ops:example.org", "ops") + "room = []\n",
        refused_lines=("adapters.matrix.room: unknown key", "adapters.matrix.user_id: "),
        env={"OPSROOM_ADAPTERS_MATRIX_USER_ID": "@bot:example.org"},
        env_key="adapters.matrix.user_id",
        env_value="@bot:example.org",
        typo="OPSROOM_ADAPTERS_MATRIX_USERID",
        typo_says="adapters.matrix.userid: unknown key",
    ),
    "adapters.irc": Section(
        good=IRC,
        good_key="adapters.irc.port",
        good_value=6697,
        refused=IRC + "port = 70000\ncolour = true\n",
        refused_lines=("adapters.irc.colour: unknown key", "adapters.irc.port: "),
        env={"OPSROOM_ADAPTERS_IRC_MAX_LINES": "5"},
        env_key="adapters.irc.max_lines",
        env_value=5,
        typo="OPSROOM_ADAPTERS_IRC_MAXLINES",
        typo_says="adapters.irc.maxlines: unknown key",
    ),
}


def check(opsroom: Opsroom, workdir: Path, config: str, env: dict[str, str]) -> Result:
    """`opsroom config check` on `config` (as ./opsroom.toml) with `env` added."""
    (workdir / "opsroom.toml").write_text(config, encoding="utf-8")
    return opsroom("config", "check", env=env)


def effective(result: Result, path: str) -> Any:
    """The value `config check` printed at the dotted `path`."""
    assert result.code == 0, result.stderr
    node: Any = json.loads(result.stdout)
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


@pytest.mark.parametrize("name", list(SECTIONS))
def test_every_section_applies_refuses_and_takes_overrides(
    opsroom: Opsroom, workdir: Path, name: str
) -> None:
    case = SECTIONS[name]

    good = check(opsroom, workdir, case.good, RESERVED)
    assert effective(good, case.good_key) == case.good_value

    overridden = check(opsroom, workdir, case.good, {**RESERVED, **case.env})
    assert effective(overridden, case.env_key) == case.env_value

    refused = check(opsroom, workdir, case.refused, {})
    assert refused.code == 2, refused.stdout
    assert refused.stdout == "", "nothing is printed as if it were the effective config"
    for line in case.refused_lines:
        assert line in refused.stderr, refused.stderr
    for secret in case.never_echoed:
        assert secret not in refused.stderr

    typo = check(opsroom, workdir, case.typo_config or case.good, {**RESERVED, case.typo: "1"})
    assert typo.code == 2, typo.stdout
    assert case.typo in typo.stderr
    assert case.typo_says in typo.stderr, typo.stderr
    assert not [var for var in RESERVED if var in typo.stderr], "script variables are not config"


def test_platforms_this_version_does_not_run_are_named(opsroom: Opsroom, workdir: Path) -> None:
    config = (
        '[adapters.mattermost]\nurl = "https://mm.example.org"\n'
        '[adapters.discord]\ntoken = "MTE4.pasted-discord-token"\n'
        '[adapters.slak]\nbot_token = "env:X"\n'
        '[adapters.web]\nlisten = "x"\n'
    )
    env = {"OPSROOM_ADAPTERS_TEAMS_APP_ID": "env:TEAMS_APP_ID", "OPSROOM_ADAPTERS_ZULIP_X": "1"}
    result = check(opsroom, workdir, config, env)
    assert result.code == 2
    lines = result.stderr
    # Mattermost is run now: its table is checked by its own settings, key by key.
    assert "adapters.mattermost.token: Field required" in lines
    assert "Mattermost is not supported" not in lines
    # Discord is run now: its table is checked by its own settings; a pasted token not echoed.
    assert "adapters.discord.token: expected a reference" in lines
    assert "Discord is not supported" not in lines
    assert "pasted-discord-token" not in lines
    # Teams is run now: the table the override starts is checked by its own settings.
    assert "adapters.teams.app_password: Field required" in lines
    assert "Microsoft Teams is not supported" not in lines
    known = "(known: discord, irc, matrix, mattermost, slack, teams)"
    assert f"adapters.slak: unknown chat platform {known}" in lines
    assert "adapters.web: the web chat needs no adapter table" in lines
    assert f"OPSROOM_ADAPTERS_ZULIP_X: names no chat platform {known}" in lines


def test_every_error_is_listed_not_just_the_first(opsroom: Opsroom, workdir: Path) -> None:
    config = "[runner]\ntimeot = 5\n[bot]\nprefix = 5\n" + SLACK + "colour = 1\n" + IRC
    result = check(opsroom, workdir, config, {"OPSROOM_ADAPTERS_IRC_PORT": "0"})
    assert result.code == 2
    for line in (
        "runner.timeot: unknown key",
        "bot.prefix: ",
        "adapters.slack.colour: unknown key",
        "adapters.irc.port: ",
        "(from OPSROOM_ADAPTERS_IRC_PORT)",
        "4 problems",
    ):
        assert line in result.stderr, result.stderr


def test_secrets_in_overrides_stay_references(opsroom: Opsroom, workdir: Path) -> None:
    resolved = {"NETAPP_PW": "n3tapp-s3cret", "OTHER_BOT": "xoxb-from-env-0001"}
    env = {
        **resolved,
        "OPSROOM_SECRETS_NETAPP_PASSWORD": "env:NETAPP_PW",
        "OPSROOM_ADAPTERS_SLACK_BOT_TOKEN": "env:OTHER_BOT",
        "OPSROOM_WEB_OIDC_CLIENT_SECRET": "env:NETAPP_PW",
    }
    ok = check(opsroom, workdir, OIDC + SLACK, env)
    assert effective(ok, "secrets.NETAPP_PASSWORD") == "env:NETAPP_PW"
    assert effective(ok, "adapters.slack.bot_token") == "env:OTHER_BOT"
    assert effective(ok, "web.oidc.client_secret") == "env:NETAPP_PW"
    assert not [v for v in resolved.values() if v in ok.stdout + ok.stderr]

    inline = {
        "OPSROOM_SECRETS_NETAPP_PASSWORD": "pasted-password-1",
        "OPSROOM_ADAPTERS_SLACK_APP_TOKEN": "xapp-pasted-token-2",
    }
    refused = check(opsroom, workdir, SLACK, inline)
    assert refused.code == 2
    assert "secrets.NETAPP_PASSWORD: " in refused.stderr
    assert "adapters.slack.app_token: " in refused.stderr
    assert not [v for v in inline.values() if v in refused.stdout + refused.stderr]


def test_serve_refuses_to_start_with_the_same_messages(workdir: Path) -> None:
    (workdir / "opsroom.toml").write_text(
        SLACK + "bot_tokn = 1\n" + IRC + "colour = true\n[adapters.teams]\napp_id = 'x'\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")}
    env["OPSROOM_RUNNER_COLOUR"] = "blue"
    proc = subprocess.run(
        [OPSROOM, "serve", "--listen", "127.0.0.1:0"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    for line in (
        "adapters.slack.bot_tokn: unknown key",
        "adapters.irc.colour: unknown key",
        "adapters.teams.app_password: Field required",
        "runner.colour: unknown key (from OPSROOM_RUNNER_COLOUR)",
    ):
        assert line in proc.stderr, proc.stderr
    assert "serving on" not in proc.stdout
    assert not (workdir / "opsroom.db").exists(), "nothing was opened before the refusal"


def test_adapter_tables_are_checked_without_their_sdks(workdir: Path) -> None:
    # The platforms' SDKs are made unimportable: checking a table must not need them.
    mattermost = '[adapters.mattermost]\nurl = "https://mm.example.org"\ntoken = "env:MM"\ny = 2\n'
    (workdir / "opsroom.toml").write_text(SLACK + MATRIX + mattermost + IRC + "x = 1\n")
    probe = """
import importlib.abc, sys
SDKS = ("slack_bolt", "slack_sdk", "nio", "irc", "aiohttp")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in SDKS:
            raise ImportError("blocked: " + name)
        return None
sys.meta_path.insert(0, Block())
from opsroom.config import load_settings
from opsroom.errors import ConfigError
try:
    load_settings(environ={})
except ConfigError as e:
    print(e)
print("sdks imported:", sorted(m for m in sys.modules if m.split(".")[0] in SDKS))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")}
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "adapters.irc.x: unknown key" in proc.stdout
    assert "adapters.mattermost.y: unknown key" in proc.stdout
    assert "sdks imported: []" in proc.stdout
