"""Command specs and catalogs as JSON-able dicts (`catalog show --format json`, `export`)."""

from __future__ import annotations

from typing import Any

from opsroom.model.catalog import Catalog, CatalogIssue
from opsroom.model.commands import CommandSpec, ParamSpec, ParamValue, PowerShellRequires


def _value(value: ParamValue | None) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _requires(r: PowerShellRequires | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {
        "modules": [
            {"name": m.name, "minimum": m.minimum, "exact": m.exact, "maximum": m.maximum}
            for m in r.modules
        ],
        "version": r.version,
        "editions": list(r.editions),
        "run_as_admin": r.run_as_admin,
    }


def param_to_dict(p: ParamSpec) -> dict[str, Any]:
    """One parameter with the SPEC §3.4 field names (plus `choices_from`, `default_text`)."""
    return {
        "name": p.name,
        "type": p.type_label,
        "required": p.required,
        "default": _value(p.default),
        "default_text": p.default_text,
        "choices": list(p.choices),
        "range": list(p.range) if p.range is not None else None,
        "pattern": p.pattern,
        "length": list(p.length) if p.length is not None else None,
        "help": p.help,
        "aliases": list(p.aliases),
        "position": p.position,
        "choices_from": p.choices_from,
    }


def spec_to_dict(spec: CommandSpec) -> dict[str, Any]:
    """The whole derived spec of one command, JSON-able."""
    return {
        "name": spec.name,
        "path": spec.path,
        "language": spec.language.value,
        "summary": spec.summary,
        "description": spec.description,
        "params": [param_to_dict(p) for p in spec.params],
        "examples": list(spec.examples),
        "notes": spec.notes,
        "links": list(spec.links),
        "aliases": list(spec.aliases),
        "timeout": spec.timeout,
        "approval": spec.approval,
        "approvals": spec.approvals,
        "approval_ttl": spec.approval_ttl,
        "concurrency": spec.concurrency,
        "secrets": list(spec.secrets),
        "runs_on": spec.runs_on,
        "rooms": list(spec.rooms),
        "background": spec.background,
        "dry_run": spec.dry_run,
        "should_process": spec.should_process,
        "hidden": spec.hidden,
        "owner": spec.owner,
        "requires": list(spec.requires),
        "requires_python": spec.requires_python,
        "entry": spec.entry,
        "argv": spec.argv_style.value if spec.argv_style else None,
        "ps_requires": _requires(spec.ps_requires),
        "credentials": [
            {"name": c.name, "type": c.kind.value, "required": c.required, "secret": c.secret}
            for c in spec.credentials
        ],
        # a script that parses its own argv (SPEC §3.10): its sub-command words, its groups
        "cli_words": list(spec.cli_words) if spec.cli_words is not None else None,
        "exclusive": [{"names": list(g.names), "required": g.required} for g in spec.exclusive],
        "script_hash": spec.script_hash,
        "line": spec.line,
    }


def issue_to_dict(issue: CatalogIssue) -> dict[str, Any]:
    """One catalog issue: path, line, message, severity."""
    return {
        "path": issue.path,
        "line": issue.line,
        "message": issue.message,
        "severity": issue.severity.value,
    }


def catalog_to_dict(catalog: Catalog) -> dict[str, Any]:
    """The whole catalog as one JSON document (`opsroom catalog export`)."""
    return {
        "root": catalog.root,
        "commit": catalog.commit,
        "commands": [spec_to_dict(c) for c in catalog.commands],
        "issues": [issue_to_dict(i) for i in catalog.issues],
    }
