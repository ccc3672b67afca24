"""`[adapters.teams]`: every key validated, and each one's effect on a running adapter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.fake_teams import ALICE, APP_ID, CHANNEL, ENV, TENANT, FakeTeams
from adapters.teams_support import make_adapter
from opsroom.adapters.teams.adapter import TeamsAdapter
from opsroom.adapters.teams.settings import OPENID_METADATA, TOKEN_URL, parse
from opsroom.config import Settings
from opsroom.errors import ConfigError
from opsroom.model.blocks import Reply, Text

BASE = {"app_id": "env:TEAMS_APP_ID", "app_password": "env:TEAMS_APP_PASSWORD", "tenant_id": TENANT}


def test_defaults_and_resolved_references() -> None:
    config = parse(BASE, ENV)
    assert (config.app_id, config.app_password, config.tenant_id) == (
        APP_ID,
        ENV["TEAMS_APP_PASSWORD"],
        TENANT,
    )
    assert config.openid_metadata == OPENID_METADATA
    assert config.token_url == TOKEN_URL
    assert ENV["TEAMS_APP_PASSWORD"] not in repr(config)
    assert parse({**BASE, "app_id": APP_ID}, ENV).app_id == APP_ID, "the id may be written as is"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"app_password": "pasted-secret"}, "adapters.teams.app_password: expected a reference"),
        ({"app_password": "env:MISSING"}, "adapters.teams.app_password: env:MISSING"),
        ({"tenant_id": ""}, "adapters.teams.tenant_id: expected a non-empty id"),
        ({"app_id": " x"}, "adapters.teams.app_id: expected a non-empty id"),
        ({"openid_metadata": "ftp://x"}, "adapters.teams.openid_metadata: expected an http(s) URL"),
        ({"token_url": "nowhere"}, "adapters.teams.token_url: expected an http(s) URL"),
        ({"tenant": "x"}, "adapters.teams.tenant: Extra inputs are not permitted"),
    ],
)
def test_bad_tables_name_the_key(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse({**BASE, **change}, ENV)
    assert message in str(caught.value)
    assert "pasted-secret" not in str(caught.value), "a pasted secret is never echoed"


@pytest.mark.parametrize("missing", ["app_id", "app_password", "tenant_id"])
def test_required_keys(missing: str) -> None:
    with pytest.raises(ConfigError, match=f"adapters.teams.{missing}: Field required"):
        parse({k: v for k, v in BASE.items() if k != missing}, ENV)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTeams]:
    server = await FakeTeams.start()
    yield server
    await server.stop()


def _settings(tmp: Path) -> Settings:
    return Settings.model_validate({"store": {"url": f"sqlite:///{tmp}/opsroom.db"}})


async def _refused_by_token_endpoint(fake: FakeTeams, adapter: TeamsAdapter) -> None:
    """Start connecting; return once the token endpoint has refused the client."""
    await adapter.transport.start()
    deadline = time.monotonic() + 10
    while not any(c.path == "/token" and c.status == 401 for c in fake.calls):
        assert time.monotonic() < deadline, "the token endpoint was never asked"
        await asyncio.sleep(0.02)


async def test_app_id_is_the_audience_and_the_client_id(fake: FakeTeams, tmp_path: Path) -> None:
    adapter = make_adapter(fake, _settings(tmp_path), app_id="another-app")
    try:
        await _refused_by_token_endpoint(fake, adapter)  # no client "another-app" there
        assert adapter.state.value != "connected"
        # A token for the fake's app id is not for "another-app"; one for it is.
        assert (await fake.post(fake.activity(ALICE, text="!help"))).status_code == 401
        token = fake.mint(aud="another-app")
        assert (await fake.post(fake.activity(ALICE, text="!help"), token=token)).status_code == 200
    finally:
        await adapter.close()


async def test_app_password_is_the_client_secret(fake: FakeTeams, tmp_path: Path) -> None:
    wrong = {**ENV, "TEAMS_APP_PASSWORD": "not-the-secret"}
    adapter = make_adapter(fake, _settings(tmp_path), environ=wrong)
    try:
        await _refused_by_token_endpoint(fake, adapter)
        assert adapter.state.value != "connected"
    finally:
        await adapter.close()
    good = make_adapter(fake, _settings(tmp_path))
    try:
        await good.connect()
        assert good.state.value == "connected"
    finally:
        await good.close()


async def test_tenant_id_decides_whose_activities_run(fake: FakeTeams, tmp_path: Path) -> None:
    adapter = make_adapter(
        fake, _settings(tmp_path), tenant_id="00000000-0000-0000-0000-00000000beef"
    )
    try:
        await adapter.connect()
        assert (await fake.post(fake.activity(ALICE, text="!help"))).status_code == 403
        theirs = fake.activity(ALICE, text="!help", tenant="00000000-0000-0000-0000-00000000beef")
        assert (await fake.post(theirs)).status_code == 200
    finally:
        await adapter.close()


async def test_openid_metadata_names_the_keys(fake: FakeTeams, tmp_path: Path) -> None:
    elsewhere = await FakeTeams.start()  # publishes a key set of its own
    adapter = make_adapter(fake, _settings(tmp_path), openid_metadata=f"{elsewhere.base}/openid")
    try:
        await adapter.connect()
        assert [c.path for c in elsewhere.calls][:2] == ["/openid", "/keys"]
        # Tokens signed with our fake's key are not in that set: refused.
        assert (await fake.post(fake.activity(ALICE, text="!help"))).status_code == 401
        token = elsewhere.mint(serviceurl=fake.service_url, aud=APP_ID)
        assert (await fake.post(fake.activity(ALICE, text="!help"), token=token)).status_code == 200
    finally:
        await adapter.close()
        await elsewhere.stop()


async def test_token_url_is_where_the_bearer_token_comes_from(
    fake: FakeTeams, tmp_path: Path
) -> None:
    issuer = await FakeTeams.start()
    adapter = make_adapter(fake, _settings(tmp_path), token_url=f"{issuer.base}/token")
    try:
        await adapter.connect()
        assert [c.path for c in issuer.calls] == ["/token"]
        assert not [c for c in fake.calls if c.path == "/token"]
        fake.issued |= issuer.issued  # the Connector trusts that issuer's tokens
        await fake.install()
        await adapter.send(f"teams:{CHANNEL}", Reply((Text("hello"),)))
        (post,) = fake.calls_to("POST")
        assert post.authorization.removeprefix("Bearer ") in issuer.issued
    finally:
        await adapter.close()
        await issuer.stop()
