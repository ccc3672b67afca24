"""Help for a command that runs on a queue's workers names that queue: whether this host has
the command's interpreter does not matter, since this host never runs it (SPEC §8)."""

from __future__ import annotations

from pathlib import Path

from opsroom.config import RunnerSettings, Settings
from opsroom.testing import Bot

SCRIPT = """\
# opsroom: runs_on = "{queue}"
<#
.SYNOPSIS
    Rotate a share's logs.
#>
param([string]$Share = "logs")
Write-Output $Share
"""

LOCAL = """\
<#
.SYNOPSIS
    Show a service's status.
#>
param([string]$Name = "spooler")
Write-Output $Name
"""


async def test_help_of_a_powershell_command_with_runs_on_names_its_queue(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    (catalog / "win").mkdir(parents=True)
    (catalog / "win" / "Rotate-Logs.ps1").write_text(SCRIPT.format(queue="windows"))
    (catalog / "Get-Service.ps1").write_text(LOCAL)
    # No PowerShell on this host, whatever the machine running the test has.
    settings = Settings(runner=RunnerSettings(pwsh="pwsh-not-installed-here"))
    async with Bot.open(
        catalog_dir=str(catalog), store_url=f"sqlite:///{tmp_path}/t.db", settings=settings
    ) as bot:
        remote = await bot.say("!help win rotate-logs")
        local = await bot.say("!help get-service")
    assert "Rotate a share's logs." in remote.text
    assert "Runs on the workers of queue windows, not on this host." in remote.text
    assert "on this host: this command cannot run here" not in remote.text
    assert "No PowerShell runtime (pwsh-not-installed-here) on this host" in local.text
