"""Which files are commands and what they are called (SPEC §3.1, §3.2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsroom.catalog.naming import command_name, is_candidate
from opsroom.catalog.scan import load_catalog


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


@pytest.mark.parametrize(
    ("relpath", "name"),
    [
        # a file named like its folder takes the folder's name alone (SPEC §3.10)
        ("Get-Disk/Get-Disk.ps1", "get-disk"),
        ("storage/Get-Disk/Get-Disk.ps1", "storage get-disk"),
        ("storage/get_disk/Get-Disk.PS1", "storage get-disk"),  # compared as names are
        ("ops/netapp-migrate/migrate.py", "ops netapp-migrate"),  # folder ends in -<file>
        ("tools/PS-Get-Disk/Get-Disk.ps1", "tools ps-get-disk"),
        # no collapse: a longer word that merely ends the same, or a different file
        ("deploy/redeploy/deploy.sh", "deploy redeploy deploy"),
        ("Get-Disk/Get-DiskSpace.ps1", "get-disk get-diskspace"),
        ("disk/disk/disk.sh", "disk disk"),
    ],
)
def test_file_named_like_its_folder(relpath: str, name: str) -> None:
    assert command_name(relpath) == name


def test_folder_named_files_that_collide_are_an_error_naming_both(tmp_path: Path) -> None:
    (tmp_path / "Get-Disk").mkdir()
    (tmp_path / "Get-Disk" / "Get-Disk.ps1").write_text("<#\n.SYNOPSIS\nA.\n#>\nparam()\n")
    (tmp_path / "get-disk.sh").write_text("# @describe B.\n")
    (tmp_path / "Get-Disk" / "Get-Disk-Report.ps1").write_text("<#\n.SYNOPSIS\nC.\n#>\nparam()\n")
    cat = load_catalog(tmp_path)
    assert [c.name for c in cat.commands] == ["get-disk", "get-disk get-disk-report"]
    assert [c.path for c in cat.commands] == [
        "Get-Disk/Get-Disk.ps1",
        "Get-Disk/Get-Disk-Report.ps1",
    ]
    assert [str(i) for i in cat.errors] == [
        "get-disk.sh:1: duplicate command name 'get-disk' (already defined by "
        "Get-Disk/Get-Disk.ps1; a file named like its folder takes the folder's name)"
    ]
