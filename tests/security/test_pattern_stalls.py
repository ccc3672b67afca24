"""Patterns cannot stall the bot (issue 9, item 4).

A hostile value against a catastrophic pattern — `[ValidatePattern()]` or a sidecar's
`pattern` — gets its short answer at once, and the bot keeps answering the other rooms; a
pattern that would need backtracking never reaches chat: `catalog check` refuses it with
the reason. How fast is measured in bench/bench_patterns.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from opsroom.testing import Bot
from support import Opsroom

PS1 = """\
<#
.SYNOPSIS
    Look a badge up.
#>
param(
    [Parameter(Mandatory)]
    [ValidatePattern('{pattern}')]
    [string]$Code
)
"badge $Code"
"""
SH = """\
#!/usr/bin/env bash
# @describe Look a ticket up.
# @arg ticket! The ticket
echo "ticket $OPSROOM_ARG_TICKET"
"""
VALUE = "a" * 50_000 + "!"


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    """Two commands whose patterns make a backtracking matcher take for ever."""
    root = tmp_path / "catalog"
    root.mkdir()
    (root / "Find-Badge.ps1").write_text(PS1.replace("{pattern}", "^(a+)+$"))
    (root / "ticket.sh").write_text(SH)
    (root / "ticket.sh.opsroom.toml").write_text("[params.ticket]\npattern = '(a|aa)*b'\n")
    (root / "ping.sh").write_text("#!/usr/bin/env bash\n# @describe Ping.\necho pong\n")
    return root


@pytest.mark.parametrize(
    ("text", "pattern"), [("!find-badge", "(?i)^(a+)+$"), ("!ticket", "(a|aa)*b")]
)
async def test_a_50_kb_value_is_answered_while_other_rooms_are_too(
    tmp_path: Path, catalog: Path, text: str, pattern: str
) -> None:
    async with Bot.open(catalog_dir=str(catalog), store_url=f"sqlite:///{tmp_path}/t.db") as bot:
        hostile, other = await asyncio.gather(
            bot.say(f"{text} {VALUE}", room="web:attack"),
            bot.say("!ping", room="web:noc"),
        )
        jobs = await bot.app.store.find_jobs()
    assert hostile.outcome.outcome == "refused"
    assert f"does not match the pattern {pattern}" in hostile.text
    assert len(hostile.text) < 1000, "a short answer, not the value echoed back"
    assert other.outcome.output == "pong"
    assert [j.command for j in jobs] == ["ping"], "nothing ran for the hostile value"


def test_catalog_check_names_the_pattern_it_refuses(opsroom: Opsroom, catalog: Path) -> None:
    (catalog / "Find-Twin.ps1").write_text(PS1.replace("{pattern}", r"^(\w)\1$"))
    (catalog / "ticket.sh.opsroom.toml").write_text("[params.ticket]\npattern = '^(?!INC)\\w+'\n")
    check = opsroom("catalog", "check", str(catalog))
    assert check.code == 1
    lines = check.stdout.splitlines()
    assert (
        r"Find-Twin.ps1:7: parameter $Code: pattern '(?i)^(\\w)\\1$' uses a backreference, "
        "which opsroom cannot match in linear time"
    ) in lines
    assert (
        r"ticket.sh.opsroom.toml:1: parameter 'ticket': pattern '^(?!INC)\\w+' uses a "
        "lookahead, which opsroom cannot match in linear time"
    ) in lines
    listed = opsroom("catalog", "list", str(catalog)).stdout
    assert "find-badge" in listed
    assert "find-twin" not in listed
    assert "ticket" not in listed
