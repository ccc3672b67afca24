"""Google-style docstring sections (`Args:`, `Examples:`), shared by the Python parser."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_SECTION = re.compile(r"^(?P<name>[A-Z][A-Za-z ]*):\s*$")
_ARG = re.compile(r"^\*{0,2}(?P<name>[A-Za-z_]\w*)\s*(?:\((?P<type>[^)]*)\))?\s*:\s*(?P<help>.*)$")
_KNOWN = {
    "args": "args",
    "arguments": "args",
    "parameters": "args",
    "params": "args",
    "example": "examples",
    "examples": "examples",
    "returns": "other",
    "return": "other",
    "raises": "other",
    "yields": "other",
    "note": "other",
    "notes": "other",
    "see also": "other",
}


@dataclass(slots=True)
class Docstring:
    """A docstring split into summary, description and the sections opsroom reads."""

    summary: str = ""
    description: str = ""
    args: dict[str, str] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)


def _dedent(lines: list[str]) -> list[str]:
    indents = [len(ln) - len(ln.lstrip()) for ln in lines if ln.strip()]
    cut = min(indents, default=0)
    return [ln[cut:] if ln.strip() else "" for ln in lines]


def _parse_args(lines: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    current: str | None = None
    for line in _dedent(lines):
        if not line.strip():
            continue
        m = _ARG.match(line) if not line.startswith((" ", "\t")) else None
        if m:
            current = m.group("name")
            out[current] = m.group("help").strip()
        elif current is not None:
            out[current] = (out[current] + " " + line.strip()).strip()
    return out


def parse_docstring(text: str) -> Docstring:
    """Split a (cleaned) docstring into summary, description, `Args:` and `Examples:`."""
    lines = text.strip().splitlines()
    doc = Docstring()
    if not lines:
        return doc
    doc.summary = lines[0].strip()
    body: list[str] = []
    sections: dict[str, list[str]] = {}
    current: list[str] = body
    for line in lines[1:]:
        m = _SECTION.match(line.strip()) if not line.startswith((" ", "\t")) else None
        kind = _KNOWN.get(m.group("name").lower()) if m else None
        if kind is not None and m is not None:
            current = sections.setdefault(kind, []) if kind != "other" else []
            if kind == "other":
                # keep Returns/Raises/Notes prose in the description, they are for people
                body.append(line)
                current = body
            continue
        current.append(line)
    doc.description = "\n".join(body).strip()
    doc.args = _parse_args(sections.get("args", []))
    doc.examples = [ln.strip() for ln in _dedent(sections.get("examples", [])) if ln.strip()]
    return doc
