"""The PowerShell bootstrap (SPEC §5.1, §5.3, §5.4).

pwsh is not on every host: the content checks below pin the behaviour that matters for safety,
and the `pwsh` tests run it for real wherever PowerShell is installed.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import MappingProxyType

import pytest

from opsroom.catalog.scan import load_catalog
from opsroom.config import RunnerSettings
from opsroom.model.commands import CommandSpec, Invocation, Language, ParamSpec, ParamType
from opsroom.model.jobs import (
    AttachmentEvent,
    JobEvent,
    JobState,
    OutputLine,
    ProgressEvent,
    TableEvent,
)
from opsroom.runner.argv import POWERSHELL_BOOTSTRAP, Launch, build_launch
from opsroom.runner.local import run_local

SOURCE = POWERSHELL_BOOTSTRAP.read_text(encoding="utf-8")


def code_lines() -> list[str]:
    return [line for line in SOURCE.splitlines() if not line.lstrip().startswith("#")]


def test_reads_parameters_from_the_environment_not_the_command_line() -> None:
    code = "\n".join(code_lines())
    assert "$env:OPSROOM_PARAMS" in code
    assert "$env:OPSROOM_PARAM_TYPES" in code
    # The script path is the only argument; no param() block could bind a value.
    assert "$args.Count -ne 1" in code
    assert "Invoke-Expression" not in code
    assert "iex " not in code.lower()
    assert "[scriptblock]::Create" not in code


def test_binds_only_declared_non_common_parameters() -> None:
    code = "\n".join(code_lines())
    assert "$command.Parameters.Keys" in code
    assert "[System.Management.Automation.PSCmdlet]::CommonParameters" in code
    assert "[System.Management.Automation.PSCmdlet]::OptionalCommonParameters" in code
    assert "$common -notcontains $name" in code
    # An unknown name stops the bootstrap before the script runs.
    assert re.search(r"if \(-not \$real\) \{ Stop-OpsroomBootstrap .*nothing was run", code)
    assert "& $command @splat" in code


def test_whatif_only_when_dry_run_and_the_script_supports_it() -> None:
    whatif = [line.strip() for line in code_lines() if "WhatIf" in line]
    assert whatif == [
        "if ($env:OPSROOM_DRY_RUN -eq '1' -and $command.Parameters.ContainsKey('WhatIf')) {",
        "$splat['WhatIf'] = [switch]$true",
    ]


def test_types_switches_arrays_and_dates() -> None:
    code = "\n".join(code_lines())
    assert "$splat[$real] = [switch][bool]$value" in code
    assert "$splat[$real] = @($value)" in code
    assert "[datetime]::Parse" in code
    assert "RoundtripKind" in code
    # pwsh 7's ConvertFrom-Json would turn ISO-looking strings into dates.
    assert "System.Text.Json.JsonDocument" in code


def test_structured_output_and_progress_go_to_the_event_channel() -> None:
    code = "\n".join(code_lines())
    assert "$env:OPSROOM_EVENTS_FD" in code
    assert "function global:Write-Progress" in code
    assert "ConvertTo-Json -InputObject $InputObject -Compress -Depth 4" in code
    assert """'{"type":"table","rows":['""" in code
    assert "type = 'progress'" in code
    assert "function global:Send-OpsroomFile" in code
    assert "type = 'attachment'; path = $Path" in code


def test_exit_status_follows_the_script() -> None:
    code = "\n".join(code_lines())
    assert "$exitCode = $global:LASTEXITCODE" in code
    assert "$exitCode = 1" in code
    run = code[code.index("function Invoke-OpsroomCommand") :]
    assert run[: run.index("\n}\n")].rstrip().endswith("exit $exitCode")
    # Every way of running ends in exit: nothing falls through to run the file another way.
    assert code.rstrip().endswith("}\nexit 2")


def test_requires_are_checked_before_the_file_is_loaded_or_imported() -> None:
    code = "\n".join(code_lines())
    check = code.index("Test-OpsroomRequires $requires")
    assert check < code.index("Invoke-OpsroomModuleFunction $OpsroomScriptPath")
    assert check < code.index("Invoke-OpsroomFunctionFile $OpsroomScriptPath")
    assert check < code.index("$ExecutionContext.InvokeCommand.GetCommand($OpsroomScriptPath")
    assert "Get-Module -ListAvailable -Name ([string]$m.name)" in code
    assert "missing module$s $($missing -join ', ') (#Requires -Modules)" in code


def test_a_function_file_is_dot_sourced_once_in_a_scope_of_its_own() -> None:
    code = "\n".join(code_lines())
    body = code[code.index("function Invoke-OpsroomFunctionFile") :]
    body = body[: body.index("\n}\n")]
    assert body.count(". $OpsroomPath") == 1
    assert "Get-Command -Name $OpsroomName -CommandType @('Function', 'Filter')" in body
    assert body.rstrip().endswith("Invoke-OpsroomCommand $command $splat")
    # A module is imported by its path in the catalog, never by name.
    assert "Import-Module -Name $OpsroomPath -PassThru -Force" in code
    assert "$module.ExportedFunctions.Values" in code


def test_credentials_come_from_the_environment_and_are_never_printed() -> None:
    code = "\n".join(code_lines())
    body = code[code.index("function New-OpsroomCredential") :]
    body = body[: body.index("\n}\n")]
    assert "[Environment]::GetEnvironmentVariable($Secret)" in body
    assert "[System.Management.Automation.PSCredential]::new($user, $secure)" in body
    # Messages name the secret, never a value: none interpolates $raw, $user or $password.
    stops = [line for line in body.splitlines() if "Stop-OpsroomBootstrap" in line]
    assert stops, "the function has messages to check"
    for line in stops:
        assert not re.search(r"\$(raw|user|password|fields)\b", line.split("Stop-Opsroom")[1])


# --- real runs, wherever pwsh exists -----------------------------------------------------

needs_pwsh = pytest.mark.skipif(shutil.which("pwsh") is None, reason="pwsh is not on PATH")

SCRIPT = r"""<#
.SYNOPSIS
Echo what was bound.
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [string]$Name,
    [string[]]$Hosts,
    [switch]$Force,
    [datetime]$When,
    [int]$Count = 1
)
"name=[$Name]"
"hosts=$($Hosts.Count):$($Hosts -join '|')"
"force=$([bool]$Force)"
"when=$(if ($When) { $When.ToUniversalTime().ToString('o') } else { '' })"
"whatif=$([bool]$WhatIfPreference)"
"ea=$ErrorActionPreference"
Write-Progress -Activity 'copying' -PercentComplete 40
[pscustomobject]@{ host = 'web1'; state = 'ok' }
[pscustomobject]@{ host = 'web2'; state = 'down' }
'{"type":"progress","percent":99}'
Set-Content -Path report.txt -Value 'x'
Send-OpsroomFile report.txt -Name 'Report.txt'
if ($Count -eq 3) { exit 3 }
"""


async def run_ps(
    tmp_path: Path, params: dict[str, object], *, dry_run: bool = False
) -> tuple[list[JobEvent], JobState, int | None]:
    catalog = tmp_path / "catalog"
    catalog.mkdir(exist_ok=True)
    (catalog / "Echo-Params.ps1").write_text(SCRIPT, encoding="utf-8")
    spec = CommandSpec(
        name="echo-params",
        path="Echo-Params.ps1",
        language=Language.POWERSHELL,
        params=(
            ParamSpec("Name"),
            ParamSpec("Hosts", multiple=True),
            ParamSpec("Force", ParamType.SWITCH),
            ParamSpec("When", ParamType.DATETIME),
            ParamSpec("Count", ParamType.INT),
        ),
        should_process=True,
        dry_run=True,
    )
    launch = build_launch(
        spec,
        Invocation(spec.name, MappingProxyType(params), dry_run=dry_run),  # type: ignore[arg-type]
        catalog_root=catalog,
        job_id=1,
        requester="local:alice",
        room="local:term",
        settings=RunnerSettings(),
        workdir=tmp_path,
    )
    events: list[JobEvent] = []
    end = await run_local(launch, timeout=60, kill_grace=2, on_event=events.append)
    return events, end.state, end.exit_code


def stdout(events: list[JobEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, OutputLine) and e.stream == "stdout"]


@pytest.mark.pwsh
@needs_pwsh
async def test_pwsh_runs_a_script_with_values_as_typed(tmp_path: Path) -> None:
    tricky = "$(New-Item x); `whoami` -Force 2024-01-02T03:04:05Z"
    events, state, code = await run_ps(
        tmp_path,
        {"Name": tricky, "Hosts": ["-Force"], "Force": True, "When": "2024-01-02T03:04:05Z"},
    )
    out = stdout(events)
    assert state is JobState.SUCCEEDED, events
    assert f"name=[{tricky}]" in out
    assert "hosts=1:-Force" in out
    assert "force=True" in out
    assert "when=2024-01-02T03:04:05.0000000Z" in out
    assert "whatif=False" in out
    assert "ea=Continue" in out
    assert not (tmp_path / "x").exists()
    assert ProgressEvent(40.0, "copying") in events
    assert TableEvent(("host", "state"), (("web1", "ok"), ("web2", "down"))) in events
    assert [e for e in events if isinstance(e, ProgressEvent) and e.percent == 99] == []
    assert [(e.name, e.content_type) for e in events if isinstance(e, AttachmentEvent)] == [
        ("Report.txt", "text/plain")
    ]
    assert code == 0


@pytest.mark.pwsh
@needs_pwsh
async def test_pwsh_whatif_and_exit_code(tmp_path: Path) -> None:
    events, state, _ = await run_ps(tmp_path, {"Name": "a"}, dry_run=True)
    assert "whatif=True" in stdout(events)
    events, state, code = await run_ps(tmp_path, {"Count": 3})
    assert (state, code) == (JobState.FAILED, 3)


@pytest.mark.pwsh
@needs_pwsh
async def test_pwsh_refuses_a_common_parameter(tmp_path: Path) -> None:
    # A sidecar could declare a name the script does not: the bootstrap refuses it.
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "A.ps1").write_text("param([string]$Name)\n'ran'\n", encoding="utf-8")
    spec = CommandSpec(
        name="a", path="A.ps1", language=Language.POWERSHELL, params=(ParamSpec("ErrorAction"),)
    )
    launch = build_launch(
        spec,
        Invocation("a", MappingProxyType({"ErrorAction": "SilentlyContinue"})),
        catalog_root=catalog,
        job_id=1,
        requester="local:alice",
        room="local:term",
        settings=RunnerSettings(),
        workdir=tmp_path,
    )
    events: list[JobEvent] = []
    end = await run_local(launch, timeout=60, kill_grace=2, on_event=events.append)
    assert end.state is JobState.FAILED
    assert "ran" not in stdout(events)


# --- what the bootstrap is given (SPEC §3.10), exactly, on every host ------------------------

FIXTURES = Path(__file__).parents[2] / "fixtures" / "powershell"


@pytest.fixture
def fake_pwsh(tmp_path: Path) -> str:
    """A stand-in runtime on disk, so the launch can be checked where pwsh is absent."""
    exe = tmp_path / "bin" / "pwsh"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    return str(exe)


def launch_of(
    spec: CommandSpec,
    root: Path,
    pwsh: str,
    params: dict[str, object] | None = None,
    secrets: dict[str, str] | None = None,
) -> Launch:
    return build_launch(
        spec,
        Invocation(spec.name, MappingProxyType(params or {})),  # type: ignore[arg-type]
        catalog_root=root,
        job_id=3,
        requester="local:alice",
        room="local:term",
        settings=RunnerSettings(pwsh=pwsh),
        secrets=secrets or {},
        base_env={},
        workdir=root,
    )


def ps_env(launch: Launch) -> dict[str, str]:
    return {k: v for k, v in launch.env.items() if k.startswith("OPSROOM_PS_")}


def test_a_function_file_is_launched_naming_its_function(fake_pwsh: str) -> None:
    root = FIXTURES / "functions"
    catalog = load_catalog(root, commit="")
    spec = next(c for c in catalog.commands if c.name == "get-diskspacereport")
    got = launch_of(spec, root, fake_pwsh, {"ComputerName": ("web01", "-Force")})
    assert got.argv == (
        fake_pwsh,
        "-NoLogo",
        "-NoProfile",
        "-NonInteractive",
        "-File",
        str(POWERSHELL_BOOTSTRAP),
        str(root / "Get-DiskSpaceReport.ps1"),
    )
    assert ps_env(got) == {
        "OPSROOM_PS_FUNCTION": "Get-DiskSpaceReport",
        "OPSROOM_PS_REQUIRES": '{"admin": false, "editions": [], "modules": [], "version": "5.1"}',
    }
    assert got.env["OPSROOM_PARAMS"] == '{"ComputerName": ["web01", "-Force"]}'
    assert json.loads(got.env["OPSROOM_PARAM_TYPES"]) == {
        "ComputerName": "string[]",
        "ThresholdPercent": "int",
        "Unit": "string",
    }


def test_a_plain_script_is_run_as_itself_after_its_requirements(fake_pwsh: str) -> None:
    root = FIXTURES
    spec = next(c for c in load_catalog(root, commit="").commands if c.name == "unlock-adaccount")
    got = launch_of(spec, root, fake_pwsh)
    assert got.argv[-1] == str(root / "Unlock-ADAccount.ps1")
    assert ps_env(got) == {
        "OPSROOM_PS_REQUIRES": (
            '{"admin": false, "editions": [], "modules": [{"exact": null, "label": '
            '"ActiveDirectory", "maximum": null, "minimum": null, "name": "ActiveDirectory"}], '
            '"version": "5.1"}'
        )
    }


def test_a_module_function_is_launched_with_its_module_and_credential(
    fake_pwsh: str,
) -> None:
    root = FIXTURES / "modules"
    specs = {c.name: c for c in load_catalog(root, commit="").commands}
    spec = specs["adtools disable-adstaleuser"]
    value = "CORP\\svc-disable:p@ss:word"
    got = launch_of(spec, root, fake_pwsh, {"Identity": "jdoe"}, {"AD_SVC": value})
    assert got.argv[-1] == str(root / "AdTools" / "AdTools.psm1")
    assert ps_env(got) == {
        "OPSROOM_PS_FUNCTION": "Disable-AdStaleUser",
        "OPSROOM_PS_REQUIRES": (
            '{"admin": false, "editions": [], "modules": [{"exact": null, "label": '
            '"ActiveDirectory", "maximum": null, "minimum": null, "name": "ActiveDirectory"}], '
            '"version": null}'
        ),
        "OPSROOM_PS_CREDENTIALS": '{"Credential": {"secret": "AD_SVC", "type": "pscredential"}}',
    }
    # The secret reaches the bootstrap through the environment only.
    assert got.env["AD_SVC"] == value
    assert not any(value in a or "p@ss" in a for a in got.argv)
    assert "p@ss" not in got.env["OPSROOM_PARAMS"] + got.env["OPSROOM_PS_CREDENTIALS"]
    manifest = specs["nettools get-netlease"]
    assert launch_of(manifest, root, fake_pwsh).argv[-1] == str(root / "NetTools/NetTools.psd1")


def test_a_secret_cannot_shadow_what_the_bootstrap_reads(fake_pwsh: str, tmp_path: Path) -> None:
    spec = CommandSpec(
        name="a",
        path="A.ps1",
        language=Language.POWERSHELL,
        entry="Get-A",
        secrets=("OPSROOM_PS_FUNCTION", "OPSROOM_PS_CREDENTIALS"),
    )
    got = launch_of(
        spec,
        tmp_path,
        fake_pwsh,
        secrets={"OPSROOM_PS_FUNCTION": "Remove-Everything", "OPSROOM_PS_CREDENTIALS": "{}"},
    )
    assert ps_env(got) == {"OPSROOM_PS_FUNCTION": "Get-A"}


# --- end to end, wherever pwsh exists ---------------------------------------------------------

FUNCTION_FILE = r"""$script:loads = 1 + [int]$env:COUNT_LOADS
[Console]::Out.WriteLine("file loaded")

function Format-Greeting([string]$Text) { ">> $Text" }

<#
.SYNOPSIS
Greet people, through a helper of the same file.
#>
function Send-Greeting {
    [CmdletBinding(SupportsShouldProcess)]
    param(
        [Parameter(Mandatory)][string[]]$Name,
        [int]$Times = 1,
        [pscredential]$Credential
    )
    foreach ($n in $Name) { foreach ($i in 1..$Times) { Format-Greeting "hello $n" } }
    "whatif=$([bool]$WhatIfPreference)"
    if ($Credential) {
        "user=$($Credential.UserName) pwlen=$($Credential.GetNetworkCredential().Password.Length)"
    }
}
"""

MODULE_PSM1 = r"""$Public = @(Get-ChildItem -Path (Join-Path $PSScriptRoot 'Public') -Filter *.ps1)
$Private = @(Get-ChildItem -Path (Join-Path $PSScriptRoot 'Private') -Filter *.ps1)
foreach ($f in @($Public + $Private)) { . $f.FullName }
Export-ModuleMember -Function $Public.BaseName
"""

MODULE_PUBLIC = r"""function Get-Till {
    <#
    .SYNOPSIS
    Show a till.
    #>
    param([Parameter(Mandatory)][int]$Store, [securestring]$Pin)
    "till of store $(Format-Store $Store)"
    if ($Pin) { "pin length $([System.Net.NetworkCredential]::new('', $Pin).Password.Length)" }
}
"""

MODULE_PRIVATE = "function Format-Store([int]$Id) { 'S{0:d4}' -f $Id }\n"


def ps_catalog(tmp_path: Path) -> Path:
    root = tmp_path / "catalog"
    (root / "greet").mkdir(parents=True)
    (root / "greet" / "Send-Greeting.ps1").write_text(FUNCTION_FILE, encoding="utf-8")
    (root / "greet" / "Send-Greeting.ps1.opsroom.toml").write_text(
        '[params.Credential]\nsecret = "GREET_SVC"\n', encoding="utf-8"
    )
    (root / "Tills" / "Public").mkdir(parents=True)
    (root / "Tills" / "Private").mkdir()
    (root / "Tills" / "Tills.psm1").write_text(MODULE_PSM1, encoding="utf-8")
    (root / "Tills" / "Public" / "Get-Till.ps1").write_text(MODULE_PUBLIC, encoding="utf-8")
    (root / "Tills" / "Public" / "Get-Till.ps1.opsroom.toml").write_text(
        '[params.Pin]\nsecret = "TILL_PIN"\n', encoding="utf-8"
    )
    (root / "Tills" / "Private" / "Format-Store.ps1").write_text(MODULE_PRIVATE, encoding="utf-8")
    (root / "Needy.ps1").write_text(
        "#Requires -Modules Opsroom.NoSuchModule\n"
        "function Needy {\n<#\n.SYNOPSIS\n    N.\n#>\nparam()\n'ran'\n}\n",
        encoding="utf-8",
    )
    return root


async def run_command(
    tmp_path: Path,
    name: str,
    params: dict[str, object],
    secrets: dict[str, str] | None = None,
    *,
    dry_run: bool = False,
) -> tuple[list[JobEvent], JobState, int | None]:
    root = ps_catalog(tmp_path)
    catalog = load_catalog(root, commit="")
    assert [i for i in catalog.issues if i.severity.value == "error"] == []
    spec = next(c for c in catalog.commands if c.name == name)
    launch = build_launch(
        spec,
        Invocation(name, MappingProxyType(params), dry_run=dry_run),  # type: ignore[arg-type]
        catalog_root=root,
        job_id=1,
        requester="local:alice",
        room="local:term",
        settings=RunnerSettings(),
        secrets=secrets or {},
        workdir=tmp_path,
    )
    events: list[JobEvent] = []
    end = await run_local(launch, timeout=120, kill_grace=2, on_event=events.append)
    return events, end.state, end.exit_code


def stderr(events: list[JobEvent]) -> str:
    return "\n".join(e.text for e in events if isinstance(e, OutputLine) and e.stream == "stderr")


@pytest.mark.pwsh
@needs_pwsh
async def test_pwsh_runs_a_function_file_once_with_its_parameters(tmp_path: Path) -> None:
    events, state, code = await run_command(
        tmp_path,
        "greet send-greeting",
        {"Name": ["Ada", "-Force"], "Times": 2},
        {"GREET_SVC": "CORP\\greeter:pa:ss"},
        dry_run=True,
    )
    assert (state, code) == (JobState.SUCCEEDED, 0), stderr(events)
    assert stdout(events) == [
        "file loaded",
        ">> hello Ada",
        ">> hello Ada",
        ">> hello -Force",
        ">> hello -Force",
        "whatif=True",
        "user=CORP\\greeter pwlen=5",
    ]


@pytest.mark.pwsh
@needs_pwsh
async def test_pwsh_imports_a_module_and_calls_its_function(tmp_path: Path) -> None:
    events, state, code = await run_command(
        tmp_path, "tills get-till", {"Store": 42}, {"TILL_PIN": '{"password": "0451"}'}
    )
    assert (state, code) == (JobState.SUCCEEDED, 0), stderr(events)
    assert stdout(events) == ["till of store S0042", "pin length 4"]


@pytest.mark.pwsh
@needs_pwsh
async def test_pwsh_a_missing_required_module_fails_at_once_naming_it(tmp_path: Path) -> None:
    events, state, code = await run_command(tmp_path, "needy", {})
    assert (state, code) == (JobState.FAILED, 2)
    assert "missing module Opsroom.NoSuchModule (#Requires -Modules)" in stderr(events)
    assert "ran" not in stdout(events)
