"""`opsroom catalog report`: how much of a repository became commands, and why not the rest.

Pure: computed from a loaded Catalog — its commands, its issues and the script files it
read (`Catalog.files`) — so it counts whatever the parsers learn to read, without knowing
them. Per file, one outcome:

- adopted: it gave at least one command; it *fell back* when it also carries a warning or an
  error about how it was read (not one about missing help, counted apart as
  `without_summary`), e.g. a getopts script read without parameters;
- failed: no command, and at least one error;
- library: no command and no error (a file of helper functions, a module's private part).

Reasons are the issue messages with names, paths and numbers blanked, so the same fault
in many files is one line with a count and a few example paths. docs/adopting.md shows
the output and documents the JSON.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opsroom.catalog.naming import SIDECAR_SUFFIX, script_suffix
from opsroom.model.catalog import Catalog, CatalogIssue, Severity
from opsroom.model.commands import Language
from opsroom.model.languages import for_suffix, language_support, languages

EXAMPLES = 3
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
# Files named in messages besides scripts: PowerShell modules and manifests, sidecars.
_OTHER_FILES = ("psm1", "psd1", "toml")
_NUMBER = re.compile(r"\b\d+\b")
_VARIABLE = re.compile(r"\$[A-Za-z_]\w*(?::\w+)?")  # PowerShell's `$Name` in messages


@dataclass(frozen=True, slots=True)
class Reason:
    """One kind of fault: how many files have it, and the first few of them."""

    reason: str
    count: int
    examples: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LanguageReport:
    """The counts of one language (`other` = executables with a sidecar)."""

    language: str
    label: str
    files: int = 0
    commands: int = 0
    with_params: int = 0
    without_summary: int = 0
    adopted: int = 0
    library: int = 0
    fell_back: int = 0
    failed: int = 0
    read_as: tuple[tuple[str, int], ...] = ()
    fell_back_reasons: tuple[Reason, ...] = ()
    failed_reasons: tuple[Reason, ...] = ()


@dataclass(frozen=True, slots=True)
class Report:
    """The whole report; `other_issues` are those of no script (folder defaults, sidecars)."""

    root: str
    languages: tuple[LanguageReport, ...]
    other_issues: tuple[Reason, ...] = ()

    @property
    def total(self) -> LanguageReport:
        """All languages added up."""
        fields = ("files", "commands", "with_params", "without_summary", "adopted")
        more = ("library", "fell_back", "failed")
        sums = {f: sum(getattr(lang, f) for lang in self.languages) for f in (*fields, *more)}
        return LanguageReport("total", "total", **sums)

    @property
    def share(self) -> float | None:
        """Adopted files / script files that are not libraries; None when there are none."""
        t = self.total
        candidates = t.files - t.library
        return t.adopted / candidates if candidates else None


def rows() -> tuple[tuple[str, str], ...]:
    """(key, label) of each row in the order shown: every script language, then `other`.

    Every report has all of them, so the JSON shape is fixed for a given set of languages.
    """
    scripts = tuple((r.language.value, r.label) for r in languages() if r.suffixes)
    return (*scripts, ("other", "other"))


@functools.cache
def _pathish(suffixes: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(rf"[\w./\\-]+\.(?:{'|'.join(map(re.escape, suffixes))})\b", re.IGNORECASE)


def reason_of(message: str) -> str:
    """An issue message with what varies from file to file blanked, for grouping."""
    text = _QUOTED.sub(lambda m: m.group(0)[0] + "…" + m.group(0)[0], message)
    scripts = (s[1:] for r in languages() for s in r.suffixes)
    text = _pathish(tuple(sorted({*scripts, *_OTHER_FILES}))).sub("…", text)
    text = _VARIABLE.sub("$…", text)
    return _NUMBER.sub("N", text)


def _is_missing_help(issue: CatalogIssue) -> bool:
    # "missing .SYNOPSIS", "missing module docstring", "missing `# @describe`": the parsers'
    # wording for absent help, which costs a summary, not parameters.
    return issue.severity is Severity.WARNING and issue.message.lower().startswith("missing")


def _language_key(language: Language | None, path: str) -> str:
    if language is None:  # refused before it was read: known by its suffix
        support = for_suffix(script_suffix(path.rsplit("/", 1)[-1]) or "")
    else:
        support = language_support(language)
    # programs (no suffix) and built-ins are `other`
    return support.language.value if support is not None and support.suffixes else "other"


def _group(items: Iterable[tuple[str, str]]) -> tuple[Reason, ...]:
    """(reason, path) pairs → reasons by count, each file counted once per reason."""
    paths: dict[str, list[str]] = {}
    for reason, path in items:
        listed = paths.setdefault(reason, [])
        if path not in listed:
            listed.append(path)
    ordered = sorted(paths.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return tuple(Reason(r, len(ps), tuple(sorted(ps)[:EXAMPLES])) for r, ps in ordered)


def build_report(catalog: Catalog) -> Report:
    """Count files, commands and faults per language from one loaded catalog."""
    language: dict[str, str] = {}
    read_as: dict[str, str] = {}
    for f in catalog.files:
        language[f.path] = _language_key(f.language, f.path)
        read_as[f.path] = f.read_as
    issues: dict[str, list[CatalogIssue]] = {}
    general: list[CatalogIssue] = []
    for issue in catalog.issues:
        path = issue.path
        script = path.removesuffix(SIDECAR_SUFFIX)
        if path not in language and script in language:
            path = script  # a sidecar's fault is its script's
        if path not in language and script_suffix(path.rsplit("/", 1)[-1]) is not None:
            language[path] = _language_key(None, path)  # refused before it was read
        if path in language:
            issues.setdefault(path, []).append(issue)
        else:
            general.append(issue)
    # Which file gave which command: as the loader recorded it (a module's commands name
    # the manifest as their path, not the file that defines them), else by command path.
    commands: dict[str, int] = {f.path: len(f.commands) for f in catalog.files if f.commands}
    if not commands:
        commands = Counter(c.path for c in catalog.commands)

    out = []
    for key, label in rows():
        files = sorted(p for p, lang in language.items() if lang == key)
        specs = [c for c in catalog.commands if _language_key(c.language, c.path) == key]
        adopted = library = fell_back = failed = 0
        fell: list[tuple[str, str]] = []
        fail: list[tuple[str, str]] = []
        for path in files:
            faults = [i for i in issues.get(path, ()) if not _is_missing_help(i)]
            if commands.get(path):
                adopted += 1
                if faults:
                    fell_back += 1
                    fell += [(reason_of(i.message), path) for i in faults]
            elif any(i.severity is Severity.ERROR for i in faults):
                failed += 1
                errors = [i for i in faults if i.severity is Severity.ERROR]
                fail += [(reason_of(i.message), path) for i in errors]
            else:
                library += 1
        kinds = Counter(read_as[p] for p in files if read_as.get(p))
        out.append(
            LanguageReport(
                language=key,
                label=label,
                files=len(files),
                commands=len(specs),
                with_params=sum(1 for c in specs if c.params),
                without_summary=sum(1 for c in specs if not c.summary),
                adopted=adopted,
                library=library,
                fell_back=fell_back,
                failed=failed,
                read_as=tuple(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))),
                fell_back_reasons=_group(fell),
                failed_reasons=_group(fail),
            )
        )
    other = _group((f"{i.severity.value}: {reason_of(i.message)}", i.path) for i in general)
    return Report(root=catalog.root, languages=tuple(out), other_issues=other)


def closing_line(report: Report) -> str:
    """`412 of 448 script files became commands (91%)`, plus the libraries left out."""
    t = report.total
    share = report.share
    if share is None:
        return "no script files that could be commands were found"
    # rounded down: "100%" only when every file made it
    line = (
        f"{t.adopted} of {t.files - t.library} script files became commands ({int(share * 100)}%)"
    )
    if t.library:
        line += f"; {t.library} library file{'s' if t.library != 1 else ''} not counted"
    return line


_COLUMNS = (
    ("files", "files"),
    ("commands", "commands"),
    ("with_params", "with params"),
    ("library", "library"),
    ("fell_back", "fell back"),
    ("failed", "failed"),
)


def render_report(report: Report) -> str:
    """The compact table people read, the grouped reasons, and the closing line."""
    rows = [*report.languages, report.total]
    first = max(len("language"), *(len(r.label) for r in rows))
    header = "language".ljust(first) + "".join(f"  {title:>{len(title)}}" for _, title in _COLUMNS)
    lines = [header]
    for r in rows:
        cells = "".join(f"  {getattr(r, field):>{len(title)}}" for field, title in _COLUMNS)
        lines.append(r.label.ljust(first) + cells)
    read = [
        f"{r.label}: " + ", ".join(f"{kind} {n}" for kind, n in r.read_as)
        for r in report.languages
        if r.read_as
    ]
    if read:
        lines += ["", "read as: " + " · ".join(read)]
    for title, attr in (("fell back", "fell_back_reasons"), ("failed", "failed_reasons")):
        groups = [(r.label, reason) for r in report.languages for reason in getattr(r, attr)]
        if groups:
            lines += ["", f"{title}:"]
            lines += [_reason_line(label, reason) for label, reason in groups]
    if report.other_issues:
        lines += ["", "other issues:"]
        lines += [_reason_line("catalog", reason) for reason in report.other_issues]
    lines += ["", closing_line(report)]
    return "\n".join(lines)


def _reason_line(label: str, reason: Reason) -> str:
    more = reason.count - len(reason.examples)
    where = ", ".join(reason.examples) + (f" and {more} more" if more > 0 else "")
    return f"  {label}: {reason.count} × {reason.reason} — {where}"


def _reasons(reasons: tuple[Reason, ...]) -> list[dict[str, Any]]:
    return [{"reason": r.reason, "count": r.count, "examples": list(r.examples)} for r in reasons]


def _counts(r: LanguageReport) -> dict[str, Any]:
    return {
        "files": r.files,
        "commands": r.commands,
        "with_params": r.with_params,
        "without_summary": r.without_summary,
        "adopted": r.adopted,
        "library": r.library,
        "fell_back": r.fell_back,
        "failed": r.failed,
    }


def report_to_dict(report: Report) -> dict[str, Any]:
    """The report as JSON (`--format json`; keys documented in docs/adopting.md)."""
    share = report.share
    return {
        "root": report.root,
        "languages": [
            {
                "language": r.language,
                **_counts(r),
                "read_as": dict(r.read_as),
                "fell_back_reasons": _reasons(r.fell_back_reasons),
                "failed_reasons": _reasons(r.failed_reasons),
            }
            for r in report.languages
        ],
        "total": {**_counts(report.total), "share": round(share, 4) if share is not None else None},
        "other_issues": _reasons(report.other_issues),
    }
