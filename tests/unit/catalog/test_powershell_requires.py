"""`#Requires` lines are read into the spec (SPEC §3.10) and described in one line."""

from __future__ import annotations

import pytest

from opsroom.catalog.parsers.base import Problem
from opsroom.catalog.parsers.powershell import parse_powershell
from opsroom.model.catalog import Severity
from opsroom.model.commands import ModuleRequirement, PowerShellRequires

HELP = "<#\n.SYNOPSIS\n    T.\n#>\nparam([string]$X)\n"


def requires(*lines: str) -> PowerShellRequires | None:
    parsed = parse_powershell("\n".join(lines) + "\n" + HELP)
    assert [p for p in parsed.problems if p.severity is Severity.ERROR] == []
    return parsed.ps_requires


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "#Requires -Modules ActiveDirectory",
            PowerShellRequires((ModuleRequirement("ActiveDirectory"),)),
        ),
        (
            "#requires -modules ActiveDirectory, 'Az.Accounts'",
            PowerShellRequires(
                (ModuleRequirement("ActiveDirectory"), ModuleRequirement("Az.Accounts"))
            ),
        ),
        (
            "#Requires -Modules @{ ModuleName = 'dbatools'; ModuleVersion = '1.1.0' }",
            PowerShellRequires((ModuleRequirement("dbatools", minimum="1.1.0"),)),
        ),
        (
            '#Requires -Modules @{ModuleName="Pester";RequiredVersion="5.5.0"}, '
            '@{ModuleName="PSScriptAnalyzer";ModuleVersion="1.0";MaximumVersion="1.99"}',
            PowerShellRequires(
                (
                    ModuleRequirement("Pester", exact="5.5.0"),
                    ModuleRequirement("PSScriptAnalyzer", minimum="1.0", maximum="1.99"),
                )
            ),
        ),
        ("#Requires -Version 7.2", PowerShellRequires(version="7.2")),
        ("#Requires -Version 3", PowerShellRequires(version="3.0")),
        ("#Requires -PSEdition Core", PowerShellRequires(editions=("Core",))),
        ("  #REQUIRES -RunAsAdministrator", PowerShellRequires(run_as_admin=True)),
        (
            "#Requires -Version 5.1 -Modules ActiveDirectory -RunAsAdministrator",
            PowerShellRequires((ModuleRequirement("ActiveDirectory"),), "5.1", (), True),
        ),
    ],
)
def test_requires_forms(line: str, expected: PowerShellRequires) -> None:
    assert requires(line) == expected


def test_several_lines_add_up_wherever_they_stand() -> None:
    source = (
        "#Requires -Modules ActiveDirectory\n" + HELP + "#Requires -Version 5.1\n"
        "function Get-X {\n    #Requires -Modules DnsServer\n}\n"
    )
    assert parse_powershell(source).ps_requires == PowerShellRequires(
        (ModuleRequirement("ActiveDirectory"), ModuleRequirement("DnsServer")), "5.1"
    )


def test_requires_inside_a_block_comment_or_a_string_is_not_a_directive() -> None:
    source = (
        "<#\n.SYNOPSIS\n    T.\n#Requires -Modules Nope\n#>\nparam()\n"
        "$s = @'\n#Requires -Version 9.9\n'@\n"
    )
    assert parse_powershell(source).ps_requires is None


def test_an_unreadable_requires_is_a_warning_at_its_line() -> None:
    parsed = parse_powershell("#Requires\n" + HELP)
    assert parsed.ps_requires is None
    assert parsed.problems == (Problem(1, "cannot read #Requires", Severity.WARNING),)


def test_the_label_shown_in_help() -> None:
    r = PowerShellRequires(
        (
            ModuleRequirement("ActiveDirectory"),
            ModuleRequirement("dbatools", minimum="1.1.0"),
            ModuleRequirement("Pester", exact="5.5.0"),
            ModuleRequirement("Old", minimum="1.0", maximum="1.9"),
        ),
        "5.1",
        ("Desktop",),
        True,
    )
    assert r.label == (
        "modules ActiveDirectory, dbatools >= 1.1.0, Pester = 5.5.0, Old >= 1.0 <= 1.9; "
        "PowerShell 5.1 or later; edition Desktop; run as administrator"
    )
    assert PowerShellRequires().label == ""
