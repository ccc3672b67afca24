"""The PowerShell parser: what an operations team's scripts turn into (SPEC §3.3)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from opsroom.catalog.parsers.base import ParsedScript, Problem
from opsroom.catalog.parsers.powershell import parse_powershell
from opsroom.model.catalog import Severity
from opsroom.model.commands import ParamSpec, ParamType

FIXTURES = Path(__file__).parents[2] / "fixtures" / "powershell"
S, INT, F, B, SW, DT = (
    ParamType.STRING,
    ParamType.INT,
    ParamType.FLOAT,
    ParamType.BOOL,
    ParamType.SWITCH,
    ParamType.DATETIME,
)
WARN = Severity.WARNING


def fixture(name: str) -> ParsedScript:
    return parse_powershell((FIXTURES / name).read_text(encoding="utf-8"))


def with_params(body: str, prefix: str = "") -> ParsedScript:
    return parse_powershell(f"<#\n.SYNOPSIS\n    Test.\n#>\n{prefix}param(\n{body}\n)\n'body'\n")


def only_param(body: str) -> ParamSpec:
    parsed = with_params(body)
    assert parsed.problems == ()
    (param,) = parsed.params
    return param


# ----------------------------------------------------------------------- fixture scripts

EXPECTED_PARAMS = {
    "Unlock-ADAccount.ps1": (
        ParamSpec(
            "Identity",
            S,
            required=True,
            pattern="(?i)^[a-z][a-z0-9._-]{1,19}$",
            help="The sAMAccountName or UPN of the locked account.",
            aliases=("User", "SamAccountName"),
            position=0,
            line=54,
        ),
        ParamSpec(
            "Domain",
            S,
            default="corp",
            choices=("corp", "emea", "apac"),
            help="Which AD domain the account lives in.",
            line=57,
        ),
        ParamSpec(
            "Reason",
            S,
            default="routine",
            length=(1, None),
            help="Ticket number or reason, recorded in the log.",
            line=61,
        ),
        ParamSpec("ResetPassword", SW, help="Also set a temporary password.", line=63),
    ),
    "New-VMSnapshot.ps1": (
        ParamSpec(
            "VMName",
            S,
            multiple=True,
            required=True,
            length=(1, None),
            help="One or more VM names (wildcards allowed).",
            position=0,
            line=45,
        ),
        ParamSpec(
            "Cluster",
            S,
            required=True,
            choices=("prod-a", "prod-b", "dr"),
            help="The vSphere cluster.",
            position=1,
            line=49,
        ),
        ParamSpec(
            "RetentionDays",
            INT,
            default=7,
            range=(1, 30),
            help="How many days to keep the snapshot.",
            line=52,
        ),
        ParamSpec(
            "SnapshotName",
            S,
            default_text='"opsroom-$(Get-Date -Format yyyyMMdd-HHmm)"',
            length=(1, 64),
            help="Name of the snapshot; by default today's date.",
            line=55,
        ),
        ParamSpec(
            "ExpiresAt",
            DT,
            default_text="(Get-Date).AddDays(7)",
            help="When the snapshot may be deleted.",
            line=57,
        ),
        ParamSpec("Memory", B, default=False, help="Include the memory state (slower).", line=59),
        ParamSpec(
            "Quiesce", SW, help="Quiesce the guest file system through VMware Tools.", line=62
        ),
    ),
    "Restart-AppPool.ps1": (
        ParamSpec("PoolName", S, required=True, help="Name of the application pool.", line=15),
        ParamSpec(
            "Nodes",
            S,
            multiple=True,
            default=("web01", "web02", "web03"),
            help="Nodes to restart, in order. Defaults to the whole farm.",
            line=19,
        ),
        ParamSpec(
            "DrainSeconds",
            INT,
            default=30,
            range=(1, None),
            help="Seconds to wait for the drain",
            line=23,
        ),
        ParamSpec("MaxErrorRate", F, default=0.5, line=25),
        ParamSpec("Environment", S, default="prod", line=27),
    ),
    "Clear-TempFiles.ps1": (
        ParamSpec("OlderThanDays", INT, default=14, range=(0, None), help="Age in days.", line=4),
        ParamSpec(
            "Path",
            S,
            default="C:\\Windows\\Temp",
            choices=("C:\\Windows\\Temp", "D:\\Temp"),
            help="Folder to clean.",
            line=7,
        ),
        ParamSpec("MinFreeGB", F, default=10.5, line=9),
        ParamSpec("Verbosity", INT, default=1, line=10),
        ParamSpec("Ratio", F, default=2.0, line=11),
    ),
    "Get-ServerUptime.ps1": (),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_fixture_params_are_read_exactly(name: str) -> None:
    assert fixture(name).params == EXPECTED_PARAMS[name]


EXPECTED_PROBLEMS = {
    "Unlock-ADAccount.ps1": (),
    "New-VMSnapshot.ps1": (),
    "Restart-AppPool.ps1": (),
    "Clear-TempFiles.ps1": (),
    "Get-ServerUptime.ps1": (
        Problem(1, "missing .SYNOPSIS", WARN),
        Problem(6, ".PARAMETER ComputerName documents no parameter of this script", WARN),
    ),
    # Optional [hashtable], [PSCredential] and [scriptblock] parameters are left out of chat.
    "Set-ServiceConfig.ps1": (),
    "Invoke-DbFailover.ps1": (
        Problem(14, "parameter $AvailabilityGroup is mandatory but has a default"),
    ),
    "Broken-Deploy.ps1": (Problem(6, "cannot parse param() block"),),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_PROBLEMS))
def test_fixture_problems_point_at_the_right_line(name: str) -> None:
    assert fixture(name).problems == EXPECTED_PROBLEMS[name]


def test_every_fixture_has_expectations() -> None:
    on_disk = {p.name for p in FIXTURES.glob("*.ps1")}
    assert on_disk == set(EXPECTED_PROBLEMS)


def test_block_help_is_read_section_by_section() -> None:
    parsed = fixture("Unlock-ADAccount.ps1")
    assert parsed.summary == (
        "Unlock an Active Directory user account and optionally reset its password."
    )
    assert parsed.summary_line == 6
    assert parsed.description == (
        "Looks the account up in the given domain, unlocks it and writes an entry to the\n"
        "service-desk log. With -ResetPassword a temporary password is set and the user\n"
        "must change it at next logon.\n"
        "\n"
        "Runs against the PDC emulator so the unlock replicates at once."
    )
    assert parsed.examples == (
        ".\\Unlock-ADAccount.ps1 -Identity jdoe -Domain corp\n\nUnlocks jdoe in the corp domain.",
        ".\\Unlock-ADAccount.ps1 jdoe -ResetPassword -Reason INC0012345\n\n"
        "Unlocks jdoe and sets a temporary password, recording the incident number.",
    )
    assert parsed.notes == (
        'Owner: identity team (#ops-identity)\nNeeds the "Account Operators" delegation.'
    )
    assert parsed.links == ("https://wiki.example.internal/identity/unlock", "Unlock-ADAccount")
    assert parsed.should_process is True


def test_lower_case_keywords_and_continued_example_lines() -> None:
    parsed = fixture("New-VMSnapshot.ps1")
    assert (
        parsed.summary == "Take a snapshot of one or more VMware virtual machines before a change."
    )
    assert parsed.examples == (
        "./New-VMSnapshot.ps1 -VMName web01,web02 -Cluster prod-a `\n      -RetentionDays 3\n\n"
        "Snapshots two web servers and keeps them three days.",
    )
    assert parsed.links == ("https://developer.vmware.com/powercli",)
    assert parsed.should_process is True


def test_line_comment_help_next_to_requires_and_directives() -> None:
    parsed = fixture("Restart-AppPool.ps1")
    assert parsed.summary == "Restart an IIS application pool on a web farm, one node at a time."
    assert parsed.summary_line == 3
    assert parsed.description == (
        "Drains the node from the load balancer, recycles the pool and puts it back."
    )
    assert parsed.examples == ("./Restart-AppPool.ps1 -PoolName Shop -Nodes web01,web02",)
    assert parsed.notes == "PowerShell 7 only: uses ?? and ?. in the body."


def test_help_at_the_end_of_the_script() -> None:
    parsed = fixture("Clear-TempFiles.ps1")
    assert parsed.summary == "Delete old files from a temp folder."
    assert parsed.summary_line == 18
    assert parsed.should_process is False


def test_script_without_synopsis_falls_back_to_the_description() -> None:
    parsed = fixture("Get-ServerUptime.ps1")
    assert parsed.summary == "Prints how long this server has been up."
    assert (
        parsed.description
        == "Prints how long this server has been up.\n\nUsed by the NOC dashboard."
    )


# ------------------------------------------------------------------------ inline tables


@pytest.mark.parametrize(
    ("declaration", "type_", "multiple"),
    [
        ("$X", S, False),
        ("[string]$X", S, False),
        ("[System.String]$X", S, False),
        ("[String]$X", S, False),
        ("[int]$X", INT, False),
        ("[Int32]$X", INT, False),
        ("[System.Int64]$X", INT, False),
        ("[long]$X", INT, False),
        ("[byte]$X", INT, False),
        ("[double]$X", F, False),
        ("[single]$X", F, False),
        ("[decimal]$X", F, False),
        ("[bool]$X", B, False),
        ("[switch]$X", SW, False),
        ("[System.Management.Automation.SwitchParameter]$X", SW, False),
        ("[datetime]$X", DT, False),
        ("[DateTime]$X", DT, False),
        ("[string[]]$X", S, True),
        ("[System.String[]]$X", S, True),
        ("[int[]]$X", INT, True),
    ],
)
def test_types(declaration: str, type_: ParamType, multiple: bool) -> None:
    param = only_param(declaration)
    assert (param.type, param.multiple) == (type_, multiple)


@pytest.mark.parametrize(
    ("declaration", "written"),
    [
        ("[hashtable]$X", "[hashtable]"),
        ("[System.Collections.Hashtable]$X", "[System.Collections.Hashtable]"),
        ("[scriptblock]$X", "[scriptblock]"),
        ("[switch[]]$X", "[switch[]]"),
    ],
)
def test_types_chat_cannot_write_are_left_out_or_mandatory_errors(
    declaration: str, written: str
) -> None:
    optional = with_params(declaration)
    assert (optional.params, optional.credentials, optional.problems) == ((), (), ())
    mandatory = with_params(f"[Parameter(Mandatory)]{declaration}")
    assert mandatory.params == ()
    assert mandatory.problems == (
        Problem(6, f"parameter $X: type {written} cannot be given in chat, and it is mandatory"),
    )


@pytest.mark.parametrize(
    ("declaration", "multiple", "note"),
    [
        ("[DbaInstanceParameter[]]$X", True, "each text to [DbaInstanceParameter[]]"),
        ("[object]$X", False, "the text to [object]"),
        ("[psobject]$X", False, "the text to [psobject]"),
        ("[ipaddress]$X", False, "the text to [ipaddress]"),
        ("[System.IO.FileInfo]$X", False, "the text to [System.IO.FileInfo]"),
        (
            "[System.Collections.Generic.List[string]]$X",
            True,
            "each text to [System.Collections.Generic.List[string]]",
        ),
    ],
)
def test_other_types_are_text_converted_by_powershell(
    declaration: str, multiple: bool, note: str
) -> None:
    parsed = parse_powershell(
        f"<#\n.SYNOPSIS\n    T.\n.PARAMETER X\n    The thing.\n#>\nparam({declaration})\n"
    )
    assert parsed.problems == ()
    assert parsed.params == (
        ParamSpec(
            "X", S, multiple=multiple, help=f"The thing. (PowerShell converts {note}.)", line=7
        ),
    )


@pytest.mark.parametrize(
    ("declaration", "default", "default_text"),
    [
        ("[string]$X = 'dev'", "dev", None),
        ('[string]$X = "dev"', "dev", None),
        ("[string]$X = 'it''s'", "it's", None),
        ('[string]$X = "tab`there"', "tab\there", None),
        ('[string]$X = "cost `$5"', "cost $5", None),
        ("[string]$X = @'\nline one\nline two\n'@", "line one\nline two", None),
        ('[string]$X = @"\nplain `"q`"\n"@', 'plain "q"', None),
        ("[string]$X = 42", "42", None),
        ("$X = 'untyped'", "untyped", None),
        ("[int]$X = 60", 60, None),
        ("[int]$X = -3", -3, None),
        ("[int]$X = 0x10", 16, None),
        ("[int]$X = '8'", 8, None),
        ("[double]$X = 1.5", 1.5, None),
        ("[double]$X = 2", 2.0, None),
        ("[bool]$X = $true", True, None),
        ("[bool]$X = $False", False, None),
        ("[switch]$X = $false", False, None),
        ("[string[]]$X = @('a', \"b\")", ("a", "b"), None),
        ("[int[]]$X = @(1\n    2)", (1, 2), None),
        ("[string[]]$X = 'solo'", ("solo",), None),
        ("[string[]]$X = @()", (), None),
        ("[datetime]$X = '2024-01-31'", "2024-01-31", None),
        ("[string]$X = $null", None, None),
        ('[string]$X = "$env:USERNAME"', None, '"$env:USERNAME"'),
        ('[string]$X = "x$y"', None, '"x$y"'),
        ("[string]$X = $env:COMPUTERNAME", None, "$env:COMPUTERNAME"),
        ("[datetime]$X = (Get-Date).AddDays(-1)", None, "(Get-Date).AddDays(-1)"),
        ("[string]$X = [string]::Empty", None, "[string]::Empty"),
        ("[int]$X = 'many'", None, "'many'"),
        ("[int]$X = 1kb", None, "1kb"),
        ("[string]$X = @('a', 'b')", None, "@('a', 'b')"),
        ("[datetime]$X = 'next tuesday'", None, "'next tuesday'"),
    ],
)
def test_defaults_are_values_only_when_literal(
    declaration: str, default: object, default_text: str | None
) -> None:
    param = only_param(declaration)
    assert (param.default, param.default_text) == (default, default_text)


@pytest.mark.parametrize(
    ("attributes", "field", "expected"),
    [
        ("[ValidateSet('a', 'b', \"c\")]", "choices", ("a", "b", "c")),
        ("[ValidateSet('a', 'b', IgnoreCase = $false)]", "choices", ("a", "b")),
        ("[ValidateRange(1, 600)]", "range", (1, 600)),
        ("[ValidateRange(-10, 10)]", "range", (-10, 10)),
        ("[ValidateRange(0.5, 2.5)]", "range", (0.5, 2.5)),
        ("[ValidateRange('Positive')]", "range", (1, None)),
        ("[ValidateRange('NonNegative')]", "range", (0, None)),
        ("[ValidateRange(1, [int]::MaxValue)]", "range", (1, None)),
        ("[ValidatePattern('^[a-z]+$')]", "pattern", "(?i)^[a-z]+$"),
        ("[ValidatePattern('^[a-z]+$', Options = 'None')]", "pattern", "^[a-z]+$"),
        ("[ValidateLength(1, 20)]", "length", (1, 20)),
        ("[ValidateNotNullOrEmpty()]", "length", (1, None)),
        ("[ValidateNotNull()]", "length", (1, None)),
        ("[ValidateNotNullOrEmpty()][ValidateLength(3, 8)]", "length", (3, 8)),
        ("[ValidateScript({ Test-Path $_ })]", "length", None),
        ("[Alias('cn', 'host')]", "aliases", ("cn", "host")),
        ("[Parameter(Mandatory)]", "required", True),
        ("[Parameter(Mandatory = $true)]", "required", True),
        ("[Parameter(Mandatory = $false)]", "required", False),
        ("[Parameter()]", "required", False),
        (
            "[Parameter(Mandatory, ParameterSetName = 'ByName', ValueFromPipeline)]",
            "required",
            True,
        ),
        (
            "[Parameter(Mandatory, ParameterSetName = 'A')][Parameter(ParameterSetName = 'B')]",
            "required",
            False,
        ),
        ("[Parameter(Position = 2)]", "position", 2),
        ("[Parameter()]", "position", None),
        ("[Parameter(HelpMessage = 'Who to page')]", "help", "Who to page"),
    ],
)
def test_attributes(attributes: str, field: str, expected: object) -> None:
    type_ = "[int]" if "Range" in attributes else "[string]"
    assert getattr(only_param(f"{attributes}\n{type_}$X"), field) == expected


@pytest.mark.parametrize(
    ("prefix", "should_process"),
    [
        ("[CmdletBinding(SupportsShouldProcess)]\n", True),
        ("[CmdletBinding(SupportsShouldProcess = $true, ConfirmImpact = 'High')]\n", True),
        ("[CmdletBinding(SupportsShouldProcess = $false)]\n", False),
        ("[CmdletBinding()]\n", False),
        ("", False),
    ],
)
def test_should_process(prefix: str, should_process: bool) -> None:
    assert with_params("[string]$X", prefix).should_process is should_process


def test_parameter_help_prefers_dot_parameter_then_comment_then_help_message() -> None:
    parsed = parse_powershell(
        "<#\n.SYNOPSIS\n    Page someone.\n.PARAMETER team\n    From .PARAMETER.\n#>\n"
        "param(\n"
        "    # From the comment.\n"
        "    [Parameter(HelpMessage = 'From HelpMessage')]\n"
        "    [string]$Team,\n"
        "    # From the comment.\n"
        "    [Parameter(HelpMessage = 'From HelpMessage')]\n"
        "    [string]$Person,\n"
        "    [Parameter(HelpMessage = 'From HelpMessage')]\n"
        "    [string]$Pager\n"
        ")\n"
    )
    assert [p.help for p in parsed.params] == [
        "From .PARAMETER.",
        "From the comment.",
        "From HelpMessage",
    ]


def test_psscriptinfo_block_is_skipped_and_double_hash_help_read() -> None:
    parsed = parse_powershell(
        "<#PSScriptInfo\n.VERSION 1.2.0\n.GUID 6f1c\n.AUTHOR ops\n.DESCRIPTION Gallery text\n#>\n"
        "\n## .SYNOPSIS\n##   Rotate the logs.\n## .EXAMPLE\n##\nparam()\n"
    )
    assert (parsed.summary, parsed.description, parsed.summary_line) == ("Rotate the logs.", "", 8)
    assert parsed.examples == ()


def test_script_that_is_only_a_param_block() -> None:
    parsed = parse_powershell("param(\n    [int]$Count = 3\n)")
    assert parsed.params == (ParamSpec("Count", INT, default=3, line=2),)
    assert parsed.problems == (Problem(1, "missing .SYNOPSIS", WARN),)


def test_help_of_a_function_is_not_the_script_help() -> None:
    source = "function Get-Thing {\n<#\n.SYNOPSIS\n    Inner.\n#>\nparam($Y)\n}\nGet-Thing\n"
    parsed = parse_powershell(source)
    assert (parsed.summary, parsed.params) == ("", ())
    assert parsed.problems == (Problem(1, "missing .SYNOPSIS", WARN),)


def test_help_just_after_the_param_block() -> None:
    parsed = parse_powershell('param($Name)\n<#\n.SYNOPSIS\n    Greets.\n#>\n"hi $Name"\n')
    assert parsed.summary == "Greets."
    assert parsed.problems == ()


def test_parameter_names_keep_their_case_and_duplicates_are_errors() -> None:
    parsed = with_params("[string]$ComputerName,\n[string]$computername")
    assert [p.name for p in parsed.params] == ["ComputerName", "computername"]
    assert parsed.problems == (Problem(7, "parameter $computername is declared twice"),)


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("}}}} ((( ]]", Problem(1, "cannot parse script")),
        (
            "<#\n.SYNOPSIS\n    Forgot to close.\nparam($X)\n",
            Problem(1, "comment `<#` is never closed with `#>`"),
        ),
        ("param(\n    [string]$X =\n", Problem(2, "cannot parse param() block")),
        # PowerShell itself rejects a list default without @( ).
        ("param(\n    [string[]]$X = 'a', 'b'\n)\n", Problem(2, "cannot parse param() block")),
        (
            "param(\n    [Parameter(Mandatory]\n    [string]$X\n)\n",
            Problem(2, "cannot parse param() block"),
        ),
    ],
)
def test_broken_scripts_are_errors_not_exceptions(source: str, problem: Problem) -> None:
    parsed = parse_powershell(source)
    assert problem in parsed.problems
    assert problem.severity is Severity.ERROR


def test_using_lines_do_not_hide_the_param_block() -> None:
    source = (
        "using namespace System.Net\nusing module ./Helpers.psm1\n"
        "<#\n.SYNOPSIS\n    Resolve.\n#>\n[CmdletBinding()]\nparam([string]$HostName)\n"
        "[Dns]::GetHostAddresses($HostName)\n"
    )
    parsed = parse_powershell(source)
    assert parsed.params == (ParamSpec("HostName", S, line=8),)
    assert (parsed.summary, parsed.summary_line, parsed.problems) == ("Resolve.", 3, ())


@pytest.mark.parametrize("name", sorted(EXPECTED_PROBLEMS))
def test_windows_line_endings_and_bom_read_the_same(name: str) -> None:
    text = (FIXTURES / name).read_text(encoding="utf-8")
    windows = "\ufeff" + text.replace("\n", "\r\n")
    assert parse_powershell(windows) == parse_powershell(text)


def test_bom_before_a_using_line() -> None:
    parsed = parse_powershell("\ufeffusing namespace System.IO\r\nparam([string]$Path)\r\n")
    assert parsed.params == (ParamSpec("Path", S, line=2),)


def test_parsing_from_many_threads_gives_the_same_result() -> None:
    sources = [p.read_text(encoding="utf-8") for p in sorted(FIXTURES.glob("*.ps1"))] * 25
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(parse_powershell, sources))
    assert threaded == [parse_powershell(s) for s in sources]


def test_repeated_parses_agree() -> None:
    # How fast: bench/bench_powershell.py (500 function files, cold).
    sources = [p.read_text(encoding="utf-8") for p in sorted(FIXTURES.glob("*.ps1"))]
    first = [parse_powershell(s) for s in sources]
    assert len(first) >= 5
    for _ in range(20):
        assert [parse_powershell(s) for s in sources] == first
