"""Which files are commands and what they are called (SPEC §3.1, §3.2)."""

from __future__ import annotations

import pytest

from opsroom.catalog.naming import command_name, is_candidate


@pytest.mark.parametrize(
    ("relpath", "name"),
    [
        ("network/Get-Status.ps1", "network get-status"),
        ("storage/migrate_volume.py", "storage migrate-volume"),
        ("deploy.sh", "deploy"),
        ("VMware/Snapshots/New_VM-Snapshot.PS1", "vmware snapshots new-vm-snapshot"),
        ("tools/netbox-sync", "tools netbox-sync"),
        ("tools/backup.v2.py", "tools backup.v2"),
    ],
)
def test_command_name(relpath: str, name: str) -> None:
    assert command_name(relpath) == name


@pytest.mark.parametrize(
    ("relpath", "expected"),
    [
        ("network/Get-Status.ps1", True),
        ("storage/migrate_volume.py", True),
        ("deploy.sh", True),
        ("_lib/helpers.py", False),
        ("storage/_common.sh", False),
        (".github/check.py", False),
        ("storage/.hidden.py", False),
        ("network/Get-Status.Tests.ps1", False),
        ("storage/test_migrate_volume.py", False),
        ("storage/migrate_volume_test.py", True),
        ("README.md", False),
        ("storage/migrate_volume.py.opsroom.toml", False),
        ("defaults.opsroom.toml", False),
    ],
)
def test_is_candidate_for_scripts(relpath: str, expected: bool) -> None:
    assert is_candidate(relpath) is expected


def test_other_executables_need_a_sidecar() -> None:
    assert not is_candidate("tools/netbox-sync", executable=True)
    assert not is_candidate("tools/netbox-sync", has_sidecar=True, executable=False)
    assert is_candidate("tools/netbox-sync", has_sidecar=True, executable=True)
    assert not is_candidate("_bin/netbox-sync", has_sidecar=True, executable=True)
