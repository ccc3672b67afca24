"""Generate a realistic catalog of N scripts for the benchmarks.

The mix follows the team opsroom is built for: about 40% PowerShell, 35% Python and 25%
shell, in nested folders (`team/area/Verb-Noun.ps1`), each with full help and a few
parameters carrying help, choices, ranges and defaults. Command names are unique, so a
generated catalog loads without duplicate-name errors.
"""

from __future__ import annotations

import argparse
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TEAMS = ("identity", "storage", "network", "retail", "data", "platform", "windows", "linux")
AREAS = ("ad", "backup", "vmware", "sql", "jenkins", "netbox", "chef", "pos", "dns", "certs")
VERBS = (
    "Get",
    "Set",
    "New",
    "Remove",
    "Reset",
    "Start",
    "Stop",
    "Restart",
    "Test",
    "Sync",
    "Export",
    "Import",
    "Enable",
    "Disable",
    "Update",
    "Invoke",
    "Clear",
    "Move",
)
NOUNS = (
    "User",
    "Group",
    "Mailbox",
    "Snapshot",
    "Volume",
    "Share",
    "Job",
    "Build",
    "Site",
    "Store",
    "Till",
    "Printer",
    "Certificate",
    "Record",
    "Zone",
    "Database",
    "Backup",
    "Vm",
    "Host",
    "Cluster",
    "Pipeline",
    "Cookbook",
    "Node",
    "Lease",
    "Policy",
    "Report",
)
# What each verb does, for summaries that read like a person wrote them.
ACTIONS = {
    "Get": "Show",
    "Set": "Change",
    "New": "Create",
    "Remove": "Remove",
    "Reset": "Reset",
    "Start": "Start",
    "Stop": "Stop",
    "Restart": "Restart",
    "Test": "Check",
    "Sync": "Synchronise",
    "Export": "Export",
    "Import": "Import",
    "Enable": "Enable",
    "Disable": "Disable",
    "Update": "Update",
    "Invoke": "Run",
    "Clear": "Clear",
    "Move": "Move",
}
ENVS = ("dev", "test", "staging", "prod")
SITES = ("hq", "dc1", "dc2", "store-0042", "store-0108", "store-0404")


@dataclass(frozen=True, slots=True)
class _Param:
    """One generated parameter, independent of the script language."""

    name: str  # snake_case; each language renders its own spelling
    kind: str  # "string" | "int" | "switch" | "datetime" | "list"
    help: str
    required: bool = False
    choices: tuple[str, ...] = ()
    default: str | int | None = None
    low: int | None = None
    high: int | None = None


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _params(rng: random.Random, noun: str) -> list[_Param]:
    """Two to five parameters: a required target, then a mix of typed options."""
    target = noun.lower()
    out = [_Param(f"{target}_name", "string", f"Name of the {target} to act on.", required=True)]
    pool: list[Callable[[], _Param]] = [
        lambda: _Param(
            "environment",
            "string",
            "Environment to act in.",
            choices=ENVS,
            default=rng.choice(ENVS[:3]),
        ),
        lambda: _Param("site", "string", "Site where it runs.", choices=SITES, default="hq"),
        lambda: _Param(
            "count", "int", "How many to process.", default=rng.randint(1, 20), low=1, high=100
        ),
        lambda: _Param(
            "timeout_minutes",
            "int",
            "Give up after this many minutes.",
            default=30,
            low=1,
            high=240,
        ),
        lambda: _Param("force", "switch", "Go ahead even when checks warn."),
        lambda: _Param("verbose", "switch", "Print every step."),
        lambda: _Param("ticket", "string", "Change or incident ticket, e.g. CHG-4711."),
        lambda: _Param("start_at", "datetime", "When to start (ISO date and time)."),
        lambda: _Param("tags", "list", "Tags to apply; repeat or separate with commas."),
    ]
    for make in rng.sample(pool, rng.randint(1, 4)):
        out.append(make())
    return out


def _powershell(command: str, summary: str, description: str, params: list[_Param]) -> str:
    help_lines = [
        "<#",
        ".SYNOPSIS",
        f"    {summary}",
        "",
        ".DESCRIPTION",
        f"    {description}",
        "",
    ]
    decls: list[str] = []
    for i, p in enumerate(params):
        help_lines += [f".PARAMETER {_pascal(p.name)}", f"    {p.help}", ""]
        attrs = []
        if p.required:
            attrs.append(f"[Parameter(Mandatory, Position = {i})]")
        if p.choices:
            attrs.append("[ValidateSet(" + ", ".join(f"'{c}'" for c in p.choices) + ")]")
        if p.low is not None and p.high is not None:
            attrs.append(f"[ValidateRange({p.low}, {p.high})]")
        ps_type = {"list": "string[]"}.get(p.kind, p.kind)
        decl = f"[{ps_type}]${_pascal(p.name)}"
        if isinstance(p.default, int):
            decl += f" = {p.default}"
        elif isinstance(p.default, str):
            decl += f" = '{p.default}'"
        decls.append("\n".join(f"    {line}" for line in [*attrs, decl]))
    help_lines += [
        ".EXAMPLE",
        f"    !{command} example-01",
        "",
        f"    {summary}",
        "#>",
    ]
    body = [
        "[CmdletBinding(SupportsShouldProcess)]",
        "param(",
        ",\n\n".join(decls),
        ")",
        "",
        "Set-StrictMode -Version Latest",
        f"if ($PSCmdlet.ShouldProcess(${_pascal(params[0].name)}, '{command}')) {{",
        f'    Write-Output "{command}: $({"$"}{_pascal(params[0].name)}) done"',
        "}",
        "",
    ]
    return "\n".join(help_lines + body)


def _python(command: str, summary: str, description: str, params: list[_Param]) -> str:
    sig: list[str] = []
    args_doc: list[str] = []
    for p in params:
        if p.choices:
            ann = "Literal[" + ", ".join(f'"{c}"' for c in p.choices) + "]"
        else:
            ann = {
                "string": "str",
                "int": "int",
                "switch": "bool",
                "datetime": "datetime",
                "list": "list[str]",
            }[p.kind]
        if p.required:
            sig.append(f"    {p.name}: {ann},")
        elif p.kind == "switch":
            sig.append(f"    {p.name}: {ann} = False,")
        elif p.default is None:
            sig.append(f"    {p.name}: {ann} | None = None,")
        else:
            sig.append(f"    {p.name}: {ann} = {p.default!r},".replace("'", '"'))
        args_doc.append(f"        {p.name}: {p.help}")
    return "\n".join(
        [
            f'"""{summary}',
            "",
            description,
            '"""',
            "",
            "from datetime import datetime",
            "from typing import Literal",
            "",
            "",
            "def main(",
            *sig,
            ") -> None:",
            f'    """{summary}',
            "",
            "    Args:",
            *args_doc,
            "",
            "    Examples:",
            f"        !{command} example-01",
            '    """',
            f'    print("{command}:", {params[0].name})',
            "",
        ]
    )


def _shell(command: str, summary: str, description: str, params: list[_Param]) -> str:
    tags: list[str] = []
    reads: list[str] = []
    for p in params:
        dashed = p.name.replace("_", "-")
        env = f"OPSROOM_ARG_{p.name.upper()}"
        if p.required:
            tags.append(f"# @arg {dashed}! {p.help}")
        elif p.kind == "switch":
            tags.append(f"# @flag --{dashed} {p.help}")
        else:
            if p.choices:
                rest = [c for c in p.choices if c != p.default]
                spec = "[=" + "|".join([str(p.default), *rest]) + "]"
            elif p.default is not None:
                spec = f"={p.default}"
            else:
                spec = "*" if p.kind == "list" else ""
            notation = {"int": " <INT>", "datetime": " <DATETIME>"}.get(p.kind, "")
            tags.append(f"# @option --{dashed}{spec}{notation} {p.help}")
        fallback = "0" if p.kind == "switch" else ("" if p.default is None else str(p.default))
        reads.append(f'{p.name}="${{{env}:-{fallback}}}"')
    return "\n".join(
        [
            "#!/usr/bin/env bash",
            f"# @describe {summary}",
            f"# {description}",
            "#",
            *tags,
            f"# @example !{command} example-01",
            "set -euo pipefail",
            "",
            *reads,
            f'echo "{command}: ${{{params[0].name}}}"',
            "",
        ]
    )


def _command_name(rel: Path) -> str:
    """The command name opsroom derives from a relative path (SPEC §3.2)."""
    parts = [*rel.parent.parts, rel.stem]
    return " ".join(re.sub("_", "-", part.lower()) for part in parts)


def generate_catalog(root: Path, n: int, seed: int = 0) -> None:
    """Write `n` generated scripts under `root` (created if needed)."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    folders = [(t, a) for t in TEAMS for a in AREAS]
    for i in range(n):
        team, area = folders[i % len(folders)]
        verb, noun = rng.choice(VERBS), rng.choice(NOUNS)
        roll = rng.random()
        lang = "ps1" if roll < 0.40 else ("py" if roll < 0.75 else "sh")
        stem = f"{verb}-{noun}" if lang == "ps1" else f"{verb.lower()}_{noun.lower()}"
        if stem.startswith("test_"):  # `test_*.py` is a pytest file, never a command
            stem = "check_" + stem[len("test_") :]
        rel = Path(team, area, f"{stem}.{lang}")
        suffix = 2
        while _command_name(rel) in taken:
            numbered = f"{stem}{suffix}" if lang == "ps1" else f"{stem}_{suffix}"
            rel = Path(team, area, f"{numbered}.{lang}")
            suffix += 1
        command = _command_name(rel)
        taken.add(command)
        summary = f"{ACTIONS[verb]} a {noun.lower()} in the {area} estate ({team} team)."
        description = (
            f"Runs the {team} team's {area} tooling against one {noun.lower()}. Generated for "
            "the benchmark catalog: it reads like a real script and changes nothing."
        )
        params = _params(rng, noun)
        writer = {"ps1": _powershell, "py": _python, "sh": _shell}[lang]
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(writer(command, summary, description, params), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """`python bench/generate.py DIR N [--seed S]`: write a catalog to look at."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("root", type=Path)
    ap.add_argument("n", type=int)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    generate_catalog(args.root, args.n, args.seed)
    print(f"wrote {args.n} scripts under {args.root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
