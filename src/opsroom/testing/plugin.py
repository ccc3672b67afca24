"""opsroom's pytest plugin: the `bot` fixture and its options (docs/testing-your-scripts.md).

pytest loads this module through `opsroom.testing` (the `pytest11` entry point), which names
it in `pytest_plugins`; it is kept apart so that importing `opsroom.testing.Bot` outside
pytest does not import pytest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from opsroom.testing import CONFIG_NAME, SyncBot

if TYPE_CHECKING:
    from opsroom.config import Settings


def pytest_addoption(parser: pytest.Parser) -> None:
    """The options of the `bot` fixture: which catalog and which opsroom.toml."""
    group = parser.getgroup("opsroom", "opsroom's bot fixture")
    group.addoption(
        "--opsroom-catalog",
        dest="opsroom_catalog",
        metavar="DIR",
        default=None,
        help="the scripts folder the bot fixture serves (default: [catalog] path of opsroom.toml)",
    )
    group.addoption(
        "--opsroom-config",
        dest="opsroom_config",
        metavar="FILE",
        default=None,
        help="the opsroom.toml the bot fixture reads (default: the nearest from rootdir up)",
    )
    parser.addini("opsroom_catalog", "the scripts folder the bot fixture serves")
    parser.addini("opsroom_config", "the opsroom.toml the bot fixture reads")


def _given(config: pytest.Config, name: str) -> tuple[Path, str] | None:
    """A path from the command line (relative to where pytest runs) or the ini file (to it)."""
    option = config.getoption(name)
    if option:
        flag = "--" + name.replace("_", "-")
        return config.invocation_params.dir / str(option), flag
    value = config.getini(name)
    if value:
        ini = config.inipath
        base = ini.parent if ini is not None else config.rootpath
        where = f"{name} in {ini.name}" if ini is not None else name
        return base / str(value), where
    return None


@pytest.fixture
def opsroom_config(pytestconfig: pytest.Config) -> Path | None:
    """The opsroom.toml the bot reads (None: there is none).

    --opsroom-config, the `opsroom_config` ini option, else the nearest opsroom.toml from
    pytest's rootdir up to the repository's root.
    """
    given = _given(pytestconfig, "opsroom_config")
    if given is not None:
        path, where = given
        if not path.is_file():
            pytest.fail(f"opsroom: {path} (from {where}) is not a file", pytrace=False)
        return path
    for folder in (pytestconfig.rootpath, *pytestconfig.rootpath.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
        if (folder / ".git").exists():
            break  # never a file outside the repository under test
    return None


@pytest.fixture
def opsroom_settings(opsroom_config: Path | None) -> Settings:
    """The settings the bot runs with: that file's, as `opsroom serve` reads them.

    Roles, approvals, runner limits and secrets as in production, but without OPSROOM_*
    overrides from the test run's environment: a developer's shell cannot change a result.
    """
    from opsroom.config import Settings, load_settings
    from opsroom.errors import ConfigError

    if opsroom_config is None:
        return Settings()
    try:
        return load_settings(str(opsroom_config), environ={})
    except ConfigError as e:
        problem = str(e)
    pytest.fail(f"opsroom: {problem}", pytrace=False)  # outside `except`: the message alone


@pytest.fixture
def opsroom_catalog(pytestconfig: pytest.Config, opsroom_settings: Settings) -> Path:
    """The scripts folder the bot serves.

    --opsroom-catalog, the `opsroom_catalog` ini option, else `[catalog] path` of
    opsroom.toml. Override this fixture to choose it in code.
    """
    given = _given(pytestconfig, "opsroom_catalog")
    if given is not None:
        path, where = given
    elif opsroom_settings.catalog.path is not None:
        path, where = (
            Path(opsroom_settings.catalog.path),
            f"[catalog] path of {opsroom_settings.path}",
        )
    else:
        how = (
            "pass --opsroom-catalog DIR, set opsroom_catalog in the pytest ini file, "
            "or override the opsroom_catalog fixture"
        )
        if opsroom_settings.catalog.git is not None:
            pytest.fail(
                f"opsroom: {opsroom_settings.path} deploys the catalog from git; the bot fixture "
                f"serves a folder of scripts: {how}",
                pytrace=False,
            )
        pytest.fail(
            f"opsroom: the bot fixture has no catalog to serve: set [catalog] path in "
            f"{CONFIG_NAME}, {how}",
            pytrace=False,
        )
    if not path.is_dir():
        pytest.fail(
            f"opsroom: the catalog folder {path} (from {where}) does not exist", pytrace=False
        )
    return path.resolve()


@pytest.fixture
def bot(
    opsroom_settings: Settings, opsroom_catalog: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SyncBot]:
    """A running opsroom serving the team's catalog on a fresh SQLite store of its own."""
    from opsroom.errors import OpsroomError

    store = tmp_path_factory.mktemp("opsroom") / "opsroom.db"
    try:
        opened = SyncBot.open(
            catalog_dir=opsroom_catalog, store_url=f"sqlite:///{store}", settings=opsroom_settings
        )
    except OpsroomError as e:
        problem = str(e)
    else:
        with opened:
            yield opened
        return
    pytest.fail(f"opsroom: {problem}", pytrace=False)
