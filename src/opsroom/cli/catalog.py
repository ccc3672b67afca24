"""`opsroom catalog check|list|show|export|report|adopt` and `opsroom new` (SPEC §3.7–3.10)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from opsroom.model.languages import languages

if TYPE_CHECKING:
    from opsroom.model.catalog import Catalog
    from opsroom.model.commands import CommandSpec

# Every language whose record (model/languages.py) has a scaffold, named as in the record.
_SCAFFOLDED = [r.language.value for r in languages() if r.scaffold is not None]
_DIR = click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))


def _root(directory: Path | None) -> Path:
    """DIR, else the configured catalog, else the bundled examples."""
    if directory is not None:
        return directory
    from opsroom.catalog.scan import bundled_catalog_path
    from opsroom.config import load_settings
    from opsroom.errors import ConfigError

    try:
        settings = load_settings()
    except ConfigError as e:
        click.echo(f"opsroom: {e}", err=True)
        raise SystemExit(2) from None
    if settings.catalog.git is not None:
        # Never the bundled examples in its place: the catalog lives in that repository.
        click.echo(
            f"opsroom: the catalog is deployed from git ({settings.catalog.git}); "
            "give the folder of your clone: opsroom catalog <command> DIR",
            err=True,
        )
        raise SystemExit(2)
    path = settings.catalog.path
    return Path(path) if path else bundled_catalog_path()


def _load(directory: Path | None) -> Catalog:
    from opsroom.catalog.scan import load_catalog
    from opsroom.errors import CatalogError

    try:
        return load_catalog(_root(directory), thorough=True)
    except CatalogError as e:
        click.echo(f"opsroom: {e}", err=True)
        raise SystemExit(2) from None


@click.group()
def catalog() -> None:
    """Check, list, show and export a catalog of scripts."""


@catalog.command()
@_DIR
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def check(directory: Path | None, strict: bool, fmt: str) -> None:
    """Validate a catalog without running anything; exit 1 on any error."""
    from opsroom.catalog.spec_json import issue_to_dict
    from opsroom.model.catalog import Severity

    cat = _load(directory)
    errors = [i for i in cat.issues if strict or i.severity is Severity.ERROR]
    ok = not errors
    if fmt == "json":
        doc = {
            "ok": ok,
            "issues": [issue_to_dict(i) for i in cat.issues],
            "commands": len(cat.commands),
        }
        click.echo(json.dumps(doc, indent=2))
    else:
        for issue in cat.issues:
            click.echo(str(issue))
        warnings = len(cat.issues) - len(cat.errors)
        click.echo(
            f"{_count(len(cat.commands), 'command')}, {_count(len(cat.errors), 'error')}, "
            f"{_count(warnings, 'warning')}"
            + (" (strict: warnings count as errors)" if strict and warnings else ""),
            err=True,
        )
    raise SystemExit(0 if ok else 1)


@catalog.command("list")
@_DIR
def list_(directory: Path | None) -> None:
    """One line per command: name and summary."""
    cat = _load(directory)
    width = max((len(c.name) for c in cat.commands), default=0)
    for c in cat.commands:
        click.echo(f"{c.name.ljust(width)}  {c.summary}".rstrip())


def _usage(spec: CommandSpec) -> str:
    parts = [spec.name]
    positional = sorted(
        (p for p in spec.params if p.position is not None), key=lambda p: p.position or 0
    )
    named = [p for p in spec.params if p.position is None]
    for p in positional:
        text = f"<{p.name}>" + ("..." if p.multiple else "")
        parts.append(text if p.required else f"[{text}]")
    for p in named:
        if p.type.value == "switch":
            parts.append(f"[--{p.name}]")
            continue
        text = f"--{p.name} <{p.type_label}>"
        parts.append(text if p.required else f"[{text}]")
    return " ".join(parts)


def _render_spec(spec: CommandSpec) -> str:
    from opsroom.model.commands import ParamType

    lines = [f"{spec.name} — {spec.summary}" if spec.summary else spec.name, ""]
    lines.append(f"usage: {_usage(spec)}")
    if spec.description:
        lines += ["", spec.description]
    if spec.params:
        lines += ["", "parameters:"]
        for p in spec.params:
            facts = [p.type_label, "required" if p.required else "optional"]
            if p.default is not None and p.type is not ParamType.SWITCH:
                shown = ",".join(map(str, p.default)) if isinstance(p.default, tuple) else p.default
                shown = '""' if shown == "" else shown
                facts.append(f"default {shown}")
            elif p.default_text:
                facts.append(f"default {p.default_text} (computed by the script)")
            if p.choices:
                facts.append("one of " + "|".join(p.choices))
            if p.choices_from:
                facts.append(f"choices from `{p.choices_from}`")
            if p.range:
                facts.append(f"range {p.range[0]}..{p.range[1]}")
            if p.length:
                facts.append(f"length {p.length[0]}..{p.length[1]}")
            if p.pattern:
                facts.append(f"pattern {p.pattern}")
            if p.aliases:
                facts.append("alias " + ", ".join(p.aliases))
            lines.append(f"  {p.name} ({'; '.join(facts)})")
            if p.help:
                lines.append(f"      {p.help}")
    if spec.examples:
        lines += ["", "examples:"] + [f"  {e}" for e in spec.examples]
    directives = _directives(spec)
    if directives:
        lines += ["", "directives:"] + [f"  {k} = {v}" for k, v in directives]
    lines += ["", f"script: {spec.path} ({spec.language.value})"]
    if spec.argv_style is not None:
        lines.append(f"argv: {spec.argv_style.value} (the values also as command-line options)")
    if spec.requires:
        lines.append("requires: " + ", ".join(spec.requires))
    return "\n".join(lines)


def _directives(spec: CommandSpec) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key in ("timeout", "approval", "concurrency", "runs_on", "owner"):
        value = getattr(spec, key)
        if value is not None:
            out.append((key, f"{value:g}s" if key == "timeout" else value))
    for key in ("aliases", "secrets", "rooms"):
        if values := getattr(spec, key):
            out.append((key, ", ".join(values)))
    for key in ("background", "dry_run", "hidden"):
        if getattr(spec, key):
            out.append((key, "true"))
    return out


@catalog.command()
@click.argument("name")
@_DIR
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def show(name: str, directory: Path | None, fmt: str) -> None:
    """The full derived spec of one command (NAME in quotes when it has several words)."""
    from opsroom.catalog.naming import normalize_name
    from opsroom.catalog.spec_json import spec_to_dict

    cat = _load(directory)
    wanted = normalize_name(name.replace("/", " "))
    spec = next((c for c in cat.commands if c.name == wanted or wanted in c.aliases), None)
    if spec is None:
        click.echo(f"opsroom: unknown command: {name} (see `opsroom catalog list`)", err=True)
        raise SystemExit(2)
    if fmt == "json":
        click.echo(json.dumps(spec_to_dict(spec), indent=2))
    else:
        click.echo(_render_spec(spec))


@catalog.command()
@_DIR
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE."
)
def export(directory: Path | None, output: Path | None) -> None:
    """The whole catalog as one JSON document."""
    from opsroom.catalog.spec_json import catalog_to_dict

    text = json.dumps(catalog_to_dict(_load(directory)), indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


@catalog.command()
@_DIR
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def report(directory: Path | None, fmt: str) -> None:
    """How many scripts became commands, per language, and why the others did not."""
    from opsroom.catalog.report import build_report, render_report, report_to_dict

    result = build_report(_load(directory))
    if fmt == "json":
        click.echo(json.dumps(report_to_dict(result), indent=2))
    else:
        click.echo(render_report(result))


@catalog.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def adopt(file: Path) -> None:
    """Write FILE.opsroom.toml from what a getopts/usage() shell script shows, to finish."""
    from opsroom.catalog.adopt import describe, infer_shell, is_shell_script, sidecar_text
    from opsroom.catalog.encoding import read_script_text
    from opsroom.catalog.naming import SIDECAR_SUFFIX
    from opsroom.catalog.parsers.shell import parse_shell

    sidecar = file.with_name(file.name + SIDECAR_SUFFIX)
    try:
        source = read_script_text(file)
    except OSError as e:
        click.echo(f"opsroom: {file}: cannot read: {e.strerror or e}", err=True)
        raise SystemExit(2) from None
    if not is_shell_script(file.name, source):
        click.echo(
            f"opsroom: {file}: not a shell script (.sh, or a #! line naming a shell); "
            "catalog adopt reads shell scripts",
            err=True,
        )
        raise SystemExit(2)
    if parse_shell(source).read_as == "tags":
        click.echo(
            f"opsroom: {file}: declares its parameters with tags already; nothing to adopt",
            err=True,
        )
        raise SystemExit(1)
    if sidecar.exists():
        click.echo(f"opsroom: {sidecar} already exists; not overwritten", err=True)
        raise SystemExit(1)
    adoption = infer_shell(source)
    try:
        with sidecar.open("x", encoding="utf-8") as out:  # "x": never overwrite a file
            out.write(sidecar_text(adoption, file.name))
    except FileExistsError:
        click.echo(f"opsroom: {sidecar} already exists; not overwritten", err=True)
        raise SystemExit(1) from None
    except OSError as e:
        click.echo(f"opsroom: {sidecar}: cannot write: {e.strerror or e}", err=True)
        raise SystemExit(2) from None
    for line in describe(adoption, file.name):
        click.echo(line)
    click.echo(f"wrote {sidecar}: finish its TODOs, then run `opsroom catalog check`")


@click.command()
@click.argument("language", type=click.Choice(_SCAFFOLDED))
@click.argument("name")
@_DIR
def new(language: str, name: str, directory: Path | None) -> None:
    """Scaffold a script with help, one parameter and a test."""
    from opsroom.catalog.scaffold import scaffold

    try:
        paths = scaffold(language, name, _root(directory))
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    except FileExistsError as e:
        click.echo(f"opsroom: {e}", err=True)
        raise SystemExit(1) from None
    for path in paths:
        click.echo(f"created {path}")


def _count(n: int, word: str) -> str:
    """`1 error`, `2 errors`."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
