"""PowerShell function files become the function they define (SPEC §3.10).

The fixtures in tests/fixtures/powershell/functions follow what public admin collections do:
help before the function or inside it (at the start or the end of its body), parameters over
several lines with comments between attributes, parameter sets, pipeline parameters,
`function Name($a, $b)`, library files, a file that calls its own function, and one whose body
has a syntax error.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from opsroom.catalog.parsers.base import ParsedScript, Problem
from opsroom.catalog.parsers.powershell import parse_powershell
from opsroom.catalog.scan import load_catalog
from opsroom.model.catalog import Severity
from opsroom.model.commands import (
    CredentialKind,
    CredentialParam,
    ModuleRequirement,
    ParamSpec,
    ParamType,
    PowerShellRequires,
)

FUNCTIONS = Path(__file__).parents[2] / "fixtures" / "powershell" / "functions"
S, INT, SW = ParamType.STRING, ParamType.INT, ParamType.SWITCH
WARN = Severity.WARNING
PSCRED, SECURE = CredentialKind.PSCREDENTIAL, CredentialKind.SECURESTRING


def fixture(name: str) -> ParsedScript:
    path = FUNCTIONS / name
    return parse_powershell(path.read_text(encoding="utf-8"), path.stem)


# (read_as, entry, summary, should_process, params, credentials, requires, problems)
EXPECTED: dict[str, tuple[object, ...]] = {
    "Get-DiskSpaceReport.ps1": (
        "function",
        "Get-DiskSpaceReport",
        "Report free disk space on one or more servers.",
        False,
        (
            ParamSpec(
                "ComputerName",
                S,
                multiple=True,
                required=True,
                length=(1, None),
                help="The servers to query. Accepts pipeline input.",
                aliases=("CN", "Server"),
                position=0,
                line=41,
            ),
            ParamSpec(
                "ThresholdPercent",
                INT,
                default=10,
                range=(1, 99),
                help="Disks with less free space than this are flagged.",
                line=46,
            ),
            ParamSpec("Unit", S, default="GB", choices=("GB", "MB"), line=49),
        ),
        (),
        PowerShellRequires(version="5.1"),
        (Problem(17, ".PARAMETER Drive documents no parameter of this script", WARN),),
    ),
    "Remove-StaleProfile.ps1": (
        "function",
        "Remove-StaleProfile",
        "Remove user profiles that have not been used for a while.",
        True,
        (
            ParamSpec(
                "ComputerName", S, required=True, help="The computer holding the profiles.", line=37
            ),
            # Mandatory in one parameter set of two: the command as a whole may go without.
            ParamSpec("UserName", S, help="Remove the profile of this user.", line=40),
            ParamSpec(
                "Sid",
                S,
                pattern="(?i)^S-1-5-21-",
                help="Remove the profile with this SID.",
                line=44,
            ),
            ParamSpec(
                "Days", INT, default=90, help="Only profiles unused for this many days.", line=48
            ),
        ),
        (CredentialParam("Credential", PSCRED, required=False, line=52),),
        None,
        (),  # .PARAMETER WhatIf and Confirm document PowerShell's own: no warning
    ),
    "Invoke-SqlIndexMaintenance.ps1": (
        "function",
        "Invoke-SqlIndexMaintenance",
        "Rebuild the indexes of the tables that match a filter.",
        False,
        (
            ParamSpec(
                "SqlInstance",
                S,
                multiple=True,
                required=True,
                help="The SQL Server instances (server\\instance, or a connection string). "
                "(PowerShell converts each text to [DbaInstanceParameter[]].)",
                line=6,
            ),
            ParamSpec(
                "Database",
                S,
                multiple=True,
                help="Only these databases. (PowerShell converts each text to [object[]].)",
                line=8,
            ),
            ParamSpec("InputObject", S, help="(PowerShell converts the text to [object].)", line=9),
            # [hashtable]$Options and [scriptblock]$Filter: optional, so left out.
            ParamSpec(
                "MaxDuration", S, help="(PowerShell converts the text to [timespan].)", line=12
            ),
            ParamSpec("EnableException", SW, line=13),
        ),
        (CredentialParam("SqlCredential", PSCRED, line=7),),
        PowerShellRequires(
            (ModuleRequirement("dbatools", minimum="1.1.0"), ModuleRequirement("SqlServer"))
        ),
        (),
    ),
    "Test-TcpPort.ps1": (
        "function",
        "Test-TcpPort",
        "Check that a TCP port answers.",
        False,
        (
            ParamSpec("ComputerName", S, required=True, help="The host to try.", line=9),
            ParamSpec("Port", INT, default=443, range=(1, 65535), help="The port to try.", line=9),
            ParamSpec("TimeoutMs", S, default="2000", line=9),
        ),
        (),
        None,
        (),
    ),
    "Set-ServiceAccount.ps1": (
        "function",
        "Set-ServiceAccount",
        "Set the account a Windows service runs as.",
        True,
        (ParamSpec("ServiceName", S, required=True, line=13),),
        (
            CredentialParam("Credential", PSCRED, required=True, line=16),
            CredentialParam("RecoveryPassword", SECURE, required=True, line=19),
        ),
        PowerShellRequires(
            (ModuleRequirement("ActiveDirectory"),), editions=("Desktop",), run_as_admin=True
        ),
        (),
    ),
    "Restart-AppFleet.ps1": (
        "function",
        "Restart-AppFleet",
        "Restart the application service on every node of a fleet, one at a time.",
        True,
        (
            ParamSpec("Fleet", S, required=True, choices=("web", "api", "batch"), line=15),
            ParamSpec("PauseSeconds", INT, default=30, range=(0, 600), line=16),
        ),
        (),
        None,
        (),
    ),
    "Get-BrokenReport.ps1": (
        "function",
        "Get-BrokenReport",
        "A report whose body has a syntax error the parser recovers from.",
        False,
        (
            ParamSpec("Name", S, required=True, line=9),
            ParamSpec("Top", INT, default=5, line=10),
        ),
        (),
        None,
        (),
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_function_files_are_read_as_their_function(name: str) -> None:
    parsed = fixture(name)
    got = (
        parsed.read_as,
        parsed.entry,
        parsed.summary,
        parsed.should_process,
        parsed.params,
        parsed.credentials,
        parsed.ps_requires,
        parsed.problems,
    )
    assert got == EXPECTED[name]


def test_every_function_fixture_has_expectations() -> None:
    others = {"AdHelpers.ps1", "Sync-Mailboxes.ps1"}  # tested below
    assert {p.name for p in FUNCTIONS.glob("*.ps1")} == set(EXPECTED) | others


def test_help_before_the_function_may_be_one_blank_line_away_not_more() -> None:
    near = "<#\n.SYNOPSIS\n    Near.\n#>\n\nfunction Get-X { param([int]$A) }\n"
    far = "<#\n.SYNOPSIS\n    Far.\n#>\n\n\n\nfunction Get-X { param([int]$A) }\n"
    inside = "function Get-X {\n<#\n.SYNOPSIS\n    Inside.\n#>\nparam([int]$A)\n}\n"
    assert parse_powershell(near, "Get-X").summary == "Near."
    assert parse_powershell(inside, "Get-X").summary == "Inside."
    # A file header further away still describes a file of one function.
    assert parse_powershell(far, "Get-X").summary == "Far."
    both = "<#\n.SYNOPSIS\n    File.\n#>\n\n\n" + inside
    assert parse_powershell(both, "Get-X").summary == "Inside."


def test_a_library_file_is_a_warning_and_no_command() -> None:
    parsed = fixture("AdHelpers.ps1")
    assert (parsed.library, parsed.read_as, parsed.params) == (True, "library", ())
    assert parsed.problems == (
        Problem(
            3,
            "library file, no command (it defines ConvertTo-DistinguishedName, "
            "Get-DomainController, Write-Log; none is named like the file)",
            WARN,
        ),
    )


def test_one_of_several_functions_named_like_the_file_is_the_command() -> None:
    source = (FUNCTIONS / "AdHelpers.ps1").read_text(encoding="utf-8")
    parsed = parse_powershell(source, "write-log")
    assert (parsed.read_as, parsed.entry, [p.name for p in parsed.params]) == (
        "function",
        "Write-Log",
        ["Message"],
    )


def test_a_file_that_calls_its_own_function_stays_a_script() -> None:
    # Dot-sourcing it and calling the function again would run the function twice.
    parsed = fixture("Sync-Mailboxes.ps1")
    assert (parsed.read_as, parsed.entry, parsed.params) == ("script", None, ())
    assert parsed.summary == "Synchronise the shared mailboxes (runs its own function at the end)."


def test_common_parameters_are_never_the_commands_own() -> None:
    source = (
        "function Invoke-Old {\n<#\n.SYNOPSIS\n    Old style.\n#>\n"
        "param([string]$Name, [switch]$WhatIf, [switch]$Verbose, $ErrorAction)\n}\n"
    )
    parsed = parse_powershell(source, "Invoke-Old")
    assert [p.name for p in parsed.params] == ["Name"]
    # A hand-written -WhatIf switch is the old way of offering a dry run.
    assert parsed.should_process is True


def test_a_function_with_a_top_level_param_block_is_a_script() -> None:
    source = (
        "<#\n.SYNOPSIS\n    S.\n#>\nparam([int]$N)\nfunction Get-Helper { param($Q) }\nGet-Helper\n"
    )
    parsed = parse_powershell(source, "Get-Helper")
    assert (parsed.read_as, parsed.entry, [p.name for p in parsed.params]) == (
        "script",
        None,
        ["N"],
    )


def test_a_filter_and_a_scoped_name() -> None:
    parsed = parse_powershell(
        "filter global:Select-Up {\n<#\n.SYNOPSIS\n    Up.\n#>\nparam([int]$Min)\n$_ }\n",
        "Select-Up",
    )
    assert (parsed.entry, parsed.summary, [p.name for p in parsed.params]) == (
        "Select-Up",
        "Up.",
        ["Min"],
    )


def test_garbage_is_a_precise_error_not_an_exception() -> None:
    parsed = parse_powershell("function {{{ ]] ((\n", "X")
    assert parsed.entry is None
    assert [p.severity for p in parsed.problems] == [Severity.ERROR]
    assert parsed.problems[0].line == 1


def test_in_a_catalog_a_function_file_is_a_command_and_a_library_file_is_not(
    tmp_path: Path,
) -> None:
    for name in ("Get-DiskSpaceReport.ps1", "AdHelpers.ps1", "Sync-Mailboxes.ps1"):
        (tmp_path / "tools").mkdir(exist_ok=True)
        (tmp_path / "tools" / name).write_bytes((FUNCTIONS / name).read_bytes())
    catalog = load_catalog(tmp_path, commit="")
    specs = {c.name: c for c in catalog.commands}
    assert sorted(specs) == ["tools get-diskspacereport", "tools sync-mailboxes"]
    disk = specs["tools get-diskspacereport"]
    assert (disk.path, disk.entry, disk.ps_requires) == (
        "tools/Get-DiskSpaceReport.ps1",
        "Get-DiskSpaceReport",
        PowerShellRequires(version="5.1"),
    )
    assert specs["tools sync-mailboxes"].entry is None
    assert [str(i) for i in catalog.issues] == [
        "tools/AdHelpers.ps1:3: warning: library file, no command (it defines "
        "ConvertTo-DistinguishedName, Get-DomainController, Write-Log; none is named like "
        "the file)",
        "tools/Get-DiskSpaceReport.ps1:17: warning: .PARAMETER Drive documents no parameter "
        "of this script",
    ]
