"""Script bytes → text, the way editors on Windows and Unix saved them (SPEC §3.10).

Every file the catalog reads metadata from goes through here, so a PowerShell file saved by
Windows PowerShell 5 (UTF-16 with a BOM, or Windows-1252), a Notepad file with a UTF-8 BOM
and a file with CRLF line ends read the same as a clean UTF-8 one. Line ends become `\\n`
(line numbers are unchanged: a CRLF pair was already one line break).
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from opsroom.model.languages import for_suffix

# Longest BOM first: the UTF-32 LE BOM starts with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# PEP 263: a coding declaration in one of a Python file's first two lines.
_CODING = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)", re.MULTILINE)
# Windows-1252 leaves five bytes undefined; like browsers, read them as the C1 controls.
_CP1252 = "".join(bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in range(256))


def _python_coding(data: bytes) -> str | None:
    """The codec a PEP 263 declaration names, when it names one Python knows."""
    head = b"\n".join(data.split(b"\n", 2)[:2])
    m = _CODING.search(head)
    if m is None:
        return None
    try:
        return codecs.lookup(m.group(1).decode("ascii")).name
    except (LookupError, UnicodeDecodeError):
        return None


def _newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def decode_script(data: bytes, *, python: bool = False) -> str:
    """The text of a script file: BOM (UTF-8/16/32) first, then UTF-8, then Windows-1252.

    `python` honours a PEP 263 `# -*- coding: ... -*-` line as Python itself does. Never
    raises: every byte string is some Windows-1252 text.
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return _newlines(data[len(bom) :].decode(codec))
            except UnicodeDecodeError:
                break  # a BOM followed by something else: try the plain readings
    if python and (coding := _python_coding(data)) is not None and coding != "utf-8":
        try:
            return _newlines(data.decode(coding))
        except UnicodeDecodeError:
            pass
    try:
        return _newlines(data.decode("utf-8"))
    except UnicodeDecodeError:
        return _newlines(codecs.charmap_decode(data, "strict", _CP1252)[0])


def read_script_text(path: Path | str) -> str:
    """Read and decode one script file (OSError when it cannot be read)."""
    p = Path(path)
    language = for_suffix(p.suffix)
    return decode_script(
        p.read_bytes(), python=language is not None and language.coding_declaration
    )
