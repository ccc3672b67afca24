"""Loading PowerShell as teams already write it: 500 function files (SPEC §3.10), cold.

The files follow what public admin collections do: a function named like the file with its
help inside (or just before it), `[CmdletBinding()]`, parameters over several lines with
comments between attributes, parameter sets, pipeline input, `begin/process/end`, a
`[pscredential]` mapped by a sidecar, `#Requires`, and some `function Name($a, $b)` one-liners.
A tenth of the files sit in modules (`Public/` and `Private/` folders dot-sourced by a .psm1).
Measured like bench_catalog: a fresh interpreter imports the loader and loads once.
"""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path

from bench_catalog import cold_load
from figures import Figure, median
from generate import ACTIONS, AREAS, NOUNS, TEAMS, VERBS, _Param, _params, _pascal

BUDGET_S = 0.5


def _decl(p: _Param, position: int, sets: bool) -> str:
    attrs = []
    named = ["Mandatory"] if p.required else []
    if p.required:
        named.append(f"Position = {position}")
        named.append("ValueFromPipelineByPropertyName")
    if sets and not p.required:
        attrs.append("[Parameter(ParameterSetName = 'Quick')]")
        attrs.append("[Parameter(ParameterSetName = 'Full')]")
    elif named:
        attrs.append("[Parameter(" + ",\n                   ".join(named) + ")]")
    attrs.append(f"# {p.help}")
    if p.choices:
        attrs.append("[ValidateSet(" + ", ".join(f"'{c}'" for c in p.choices) + ")]")
    if p.low is not None and p.high is not None:
        attrs.append(f"[ValidateRange({p.low}, {p.high})]")
    if p.required:
        attrs.append(f"[Alias('{p.name[:3].upper()}')]")
    ps_type = {"list": "string[]"}.get(p.kind, p.kind)
    decl = f"[{ps_type}]${_pascal(p.name)}"
    if isinstance(p.default, int):
        decl += f" = {p.default}"
    elif isinstance(p.default, str):
        decl += f" = '{p.default}'"
    return "\n".join(f"        {line}" for line in [*attrs, decl])


def function_file(name: str, summary: str, params: list[_Param], rng: random.Random) -> str:
    """One function file in one of the shapes public collections use."""
    help_lines = ["<#", ".SYNOPSIS", f"    {summary}", "", ".DESCRIPTION"]
    help_lines += [f"    {summary} Generated for the benchmark; it changes nothing.", ""]
    for p in params:
        help_lines += [f".PARAMETER {_pascal(p.name)}", f"    {p.help}", ""]
    help_lines += [".EXAMPLE", f"    {name} -{_pascal(params[0].name)} example-01", "#>"]
    shape = rng.random()
    if shape < 0.1:  # the short form
        args = ", ".join(
            f"[{ {'list': 'string[]'}.get(p.kind, p.kind) }]${_pascal(p.name)}" for p in params
        )
        head = "\n".join(f"## {line}" for line in help_lines[1:-1])
        return f'{head}\nfunction {name}({args}) {{\n    "{name} done"\n}}\n'
    requires = "#Requires -Version 5.1\n" if rng.random() < 0.5 else ""
    credential = rng.random() < 0.3
    decls = [_decl(p, i, sets=rng.random() < 0.2) for i, p in enumerate(params)]
    if credential:
        decls.append("        [pscredential]\n        $Credential")
    body = [
        "    [CmdletBinding(SupportsShouldProcess, DefaultParameterSetName = 'Quick')]",
        "    param(",
        ",\n\n".join(decls),
        "    )",
        "    begin { $done = 0 }",
        "    process {",
        f"        if ($PSCmdlet.ShouldProcess(${_pascal(params[0].name)}, '{name}')) {{",
        "            $done++",
        f'            Write-Output "{name}: $({"$"}{_pascal(params[0].name)})"',
        "        }",
        "    }",
        '    end { Write-Verbose "$done done" }',
    ]
    inner = "\n".join(f"    {line}" for line in help_lines)
    if shape < 0.4:  # help just before the function
        return (
            requires + "\n".join(help_lines) + f"\nfunction {name} {{\n" + "\n".join(body) + "\n}\n"
        )
    return requires + f"function {name} {{\n{inner}\n" + "\n".join(body) + "\n}\n"


def generate_functions(root: Path, n: int, seed: int = 0) -> None:
    """`n` PowerShell function files under `root`, a tenth of them in modules."""
    rng = random.Random(seed)
    names: set[str] = set()
    folders = [(t, a) for t in TEAMS for a in AREAS]
    for i in range(n):
        team, area = folders[i % len(folders)]
        verb, noun = rng.choice(VERBS), rng.choice(NOUNS)
        name = f"{verb}-{_pascal(area)}{noun}"
        suffix = 2
        while name.lower() in names:
            name = f"{verb}-{_pascal(area)}{noun}{suffix}"
            suffix += 1
        names.add(name.lower())
        summary = f"{ACTIONS[verb]} a {noun.lower()} in the {area} estate ({team} team)."
        text = function_file(name, summary, _params(rng, noun), rng)
        if i % 10 == 9:  # in a module of the team
            module = root / team / f"{_pascal(team)}Tools"
            path = module / "Public" / f"{name}.ps1"
            if not (module / f"{_pascal(team)}Tools.psm1").exists():
                (module / "Private").mkdir(parents=True, exist_ok=True)
                (module / f"{_pascal(team)}Tools.psm1").write_text(
                    "$Public = @(Get-ChildItem -Path $PSScriptRoot\\Public\\*.ps1)\n"
                    "$Private = @(Get-ChildItem -Path $PSScriptRoot\\Private\\*.ps1)\n"
                    "foreach ($f in @($Public + $Private)) { . $f.FullName }\n"
                    "Export-ModuleMember -Function $Public.BaseName\n",
                    encoding="utf-8",
                )
                (module / "Private" / "Write-Log.ps1").write_text(
                    "function Write-Log([string]$Message) { Write-Verbose $Message }\n",
                    encoding="utf-8",
                )
        else:
            path = root / team / area / f"{name}.ps1"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if "$Credential" in text:
            path.with_name(path.name + ".opsroom.toml").write_text(
                '[params.Credential]\nsecret = "SVC_ACCOUNT"\n', encoding="utf-8"
            )


def measure(n: int, runs: int) -> list[Figure]:
    """Generate `n` function files and load them `runs` times cold; medians reported."""
    with tempfile.TemporaryDirectory(prefix="opsroom-bench-ps-") as tmp:
        root = Path(tmp) / "catalog"
        generate_functions(root, n, seed=n)
        samples = [cold_load(root) for _ in range(runs)]
    load = median([s["load_s"] for s in samples])
    wall = median([s["wall_s"] for s in samples])
    last = samples[-1]
    if int(last["errors"]) or int(last["commands"]) != n:
        raise RuntimeError(f"expected {n} commands and no error, got {last}")
    note = (
        f"load_catalog; whole child process {wall:.2f} s; {int(last['commands'])} commands, "
        f"{int(last['issues'])} issues (median of {runs})"
    )
    return [Figure(f"catalog load, {n} PowerShell function files", load, "s", BUDGET_S, note)]


def run(quick: bool = False) -> list[Figure]:
    """500 function files, loaded cold (once with `quick`, else the median of 5)."""
    return measure(500, runs=1 if quick else 5)


if __name__ == "__main__":
    for figure in run(quick="--quick" in sys.argv):
        print(f"{figure.name}: {figure.shown} [{figure.verdict}] {figure.note}")
