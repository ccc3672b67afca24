"""PowerShell modules: one command per exported function, private helpers none (SPEC §3.10).

tests/fixtures/powershell/modules holds the three layouts public modules use: a `Public/` and
`Private/` folder dot-sourced by the .psm1 (AdTools), a manifest's FunctionsToExport (NetTools)
and a literal Export-ModuleMember (StoreOps).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from opsroom.catalog.scan import load_catalog
from opsroom.model.catalog import Catalog
from opsroom.model.commands import (
    CommandSpec,
    CredentialKind,
    CredentialParam,
    ModuleRequirement,
    PowerShellRequires,
)

MODULES = Path(__file__).parents[2] / "fixtures" / "powershell" / "modules"


def load(root: Path) -> Catalog:
    return load_catalog(root, commit="")


def by_name(catalog: Catalog) -> dict[str, CommandSpec]:
    return {c.name: c for c in catalog.commands}


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def test_exported_functions_are_commands_and_private_ones_are_not() -> None:
    catalog = load(MODULES)
    got = {
        c.name: (c.path, c.entry, c.summary, tuple(p.name for p in c.params))
        for c in catalog.commands
    }
    assert got == {
        "adtools disable-adstaleuser": (
            "AdTools/AdTools.psm1",
            "Disable-AdStaleUser",
            "Disable one stale account.",
            ("Identity",),
        ),
        "adtools get-adstaleuser": (
            "AdTools/AdTools.psm1",
            "Get-AdStaleUser",
            "List enabled accounts that have not logged on for a while.",
            ("Days", "SearchBase"),
        ),
        "nettools clear-dnscacheentry": (
            "NetTools/NetTools.psd1",
            "Clear-DnsCacheEntry",
            "Remove one name from the DNS servers' caches.",
            ("Name", "Server"),
        ),
        "nettools get-netlease": (
            "NetTools/NetTools.psd1",
            "Get-NetLease",
            "Show the DHCP leases of a site.",
            ("Site", "Server"),
        ),
        "storeops get-storestatus": (
            "StoreOps/StoreOps.psm1",
            "Get-StoreStatus",
            "Show the state of a store's tills.",
            ("Store",),
        ),
        "storeops restart-till": (
            "StoreOps/StoreOps.psm1",
            "Restart-Till",
            "Restart one till.",
            ("Store", "Till"),
        ),
    }
    # Resolve-SearchBase (Private/), Get-ScopeId (not in the manifest) and Write-StoreLog (not
    # exported) are no commands, and the module's .ps1 files are not scripts of their own.
    assert catalog.issues == ()


def test_module_requirements_come_from_requires_and_the_manifest() -> None:
    specs = by_name(load(MODULES))
    assert specs["adtools get-adstaleuser"].ps_requires == PowerShellRequires(
        (ModuleRequirement("ActiveDirectory"),)
    )
    assert specs["nettools get-netlease"].ps_requires == PowerShellRequires(
        (ModuleRequirement("DhcpServer"), ModuleRequirement("DnsServer", minimum="2.0.0.0")),
        version="5.1",
    )
    assert specs["storeops restart-till"].ps_requires == PowerShellRequires(version="7.2")


def test_sidecars_beside_a_function_file_or_named_for_the_function() -> None:
    specs = by_name(load(MODULES))
    disable = specs["adtools disable-adstaleuser"]
    assert disable.credentials == (
        CredentialParam("Credential", CredentialKind.PSCREDENTIAL, True, "AD_SVC", 16),
    )
    assert disable.secrets == ("AD_SVC",)
    # Its own file's directives apply to it alone.
    assert (disable.approval, specs["adtools get-adstaleuser"].approval) == (
        "identity-leads",
        None,
    )
    till = specs["storeops restart-till"]
    assert till.credentials == (
        CredentialParam("Pin", CredentialKind.SECURESTRING, False, "TILL_PIN", 19),
    )
    assert (till.should_process, till.dry_run) == (True, True)


def test_the_script_hash_covers_every_file_of_the_module(tmp_path: Path) -> None:
    shutil.copytree(MODULES / "AdTools", tmp_path / "AdTools")
    before = by_name(load(tmp_path))["adtools get-adstaleuser"].script_hash
    helper = tmp_path / "AdTools/Private/Resolve-SearchBase.ps1"
    helper.write_text(helper.read_text() + "# changed\n")
    after = by_name(load(tmp_path))["adtools get-adstaleuser"].script_hash
    assert before != after
    assert len(after) == len(hashlib.sha256().hexdigest())


def test_a_helper_psm1_among_scripts_is_no_module(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "scripts/Common.psm1": "function Write-Log($m) { $m }\n",
            "scripts/Get-Uptime.ps1": "<#\n.SYNOPSIS\n    Uptime.\n#>\nparam()\n"
            "Import-Module $PSScriptRoot/Common.psm1\n",
        },
    )
    catalog = load(tmp_path)
    assert [c.name for c in catalog.commands] == ["scripts get-uptime"]
    assert catalog.commands[0].entry is None


def test_a_versioned_module_folder_and_every_function_without_exports(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "Legacy/1.4.0/Legacy.psm1": (
                "function Get-Old {\n<#\n.SYNOPSIS\n    Old.\n#>\nparam([int]$N)\n}\n"
                "function Set-Old {\n<#\n.SYNOPSIS\n    Set.\n#>\nparam()\n}\n"
            ),
        },
    )
    catalog = load(tmp_path)
    assert [(c.name, c.path) for c in catalog.commands] == [
        ("legacy get-old", "Legacy/1.4.0/Legacy.psm1"),
        ("legacy set-old", "Legacy/1.4.0/Legacy.psm1"),
    ]


def test_manifest_wildcards_an_empty_export_list_and_a_name_it_lacks(tmp_path: Path) -> None:
    body = (
        "function Get-A {\n<#\n.SYNOPSIS\n    A.\n#>\nparam()\n}\n"
        "function Set-A {\n<#\n.SYNOPSIS\n    S.\n#>\nparam()\n}\n"
    )
    write(
        tmp_path,
        {
            "Wild/Wild.psm1": body,
            "Wild/Wild.psd1": "@{ RootModule = 'Wild.psm1'\n    FunctionsToExport = 'Get-*' }\n",
            "Empty/Empty.psm1": body,
            "Empty/Empty.psd1": "@{ RootModule = 'Empty.psm1'; FunctionsToExport = @() }\n",
            "Typo/Typo.psm1": body,
            "Typo/Typo.psd1": (
                "@{\n    RootModule = 'Typo.psm1'\n    FunctionsToExport = @('Get-A', 'Get-B')\n}\n"
            ),
        },
    )
    catalog = load(tmp_path)
    assert [c.name for c in catalog.commands] == ["typo get-a", "wild get-a"]
    assert [str(i) for i in catalog.issues] == [
        "Empty/Empty.psm1:1: warning: module exports no function: no command",
        "Typo/Typo.psd1:3: warning: FunctionsToExport names Get-B, which the module does not "
        "define",
    ]


def test_a_manifest_alone_names_its_root_module(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "Ops/Ops.psd1": "@{ RootModule = 'OpsCore.psm1' }\n",
            "Ops/OpsCore.psm1": "function Get-Ops {\n<#\n.SYNOPSIS\n    O.\n#>\nparam()\n}\n",
            "Ops/Get-Ops.ps1": "this file is part of the module, not a command\n",
        },
    )
    catalog = load(tmp_path)
    assert [(c.name, c.path, c.entry) for c in catalog.commands] == [
        ("ops get-ops", "Ops/Ops.psd1", "Get-Ops")
    ]
    assert catalog.issues == ()


def test_a_module_file_that_leads_outside_the_catalog_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.ps1"
    outside.write_text("function Get-Evil {\n<#\n.SYNOPSIS\n    E.\n#>\nparam()\n}\n")
    root = tmp_path / "catalog"
    write(root, {"Mod/Mod.psm1": "Get-ChildItem $PSScriptRoot/Public | % { . $_.FullName }\n"})
    (root / "Mod/Public").mkdir()
    os.symlink(outside, root / "Mod/Public/Get-Evil.ps1")
    catalog = load(root)
    assert catalog.commands == ()
    assert "Mod/Public/Get-Evil.ps1:1: symlink to a file outside the catalog folder: refused" in [
        str(i) for i in catalog.issues
    ]
