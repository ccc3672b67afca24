"""The PowerShell bootstrap (SPEC §5.1, §5.3, §5.4).

pwsh is not on every host: the content checks below pin the behaviour that matters for safety,
and the `pwsh` tests run it for real wherever PowerShell is installed.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from types import MappingProxyType

import pytest

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
from opsroom.runner.argv import POWERSHELL_BOOTSTRAP, build_launch
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
    whatif = [line for line in code_lines() if "WhatIf" in line]
    assert whatif == [
        "if ($env:OPSROOM_DRY_RUN -eq '1' -and $command.Parameters.ContainsKey('WhatIf')) {",
        "    $splat['WhatIf'] = [switch]$true",
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
    assert code.rstrip().endswith("exit $exitCode")


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
