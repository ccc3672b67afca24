"""The catalog's half of the language records (model/languages.py): their parsers.

A record names its parser (and any module-folder reader) as `module:function`;
`reader_of()` (`module_reader_of()`) resolves it once, on first use, so a parser's
dependencies (the PowerShell grammar) load only for a catalog that holds such scripts.
Every parser is called the same way, `read(source, stem=..., thorough=...)`; the functions
below adapt the built-in parsers to that call.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from opsroom.errors import CatalogError
from opsroom.model.languages import LanguageSupport

if TYPE_CHECKING:
    from opsroom.catalog.parsers.base import ParsedScript
    from opsroom.catalog.psmodule import Module


class ScriptReader(Protocol):
    """What a record's `parser` names: source text → metadata, never running the script."""

    def __call__(self, source: str, *, stem: str, thorough: bool) -> ParsedScript:
        """`stem` is the file's name without its suffix; `thorough` parses the whole file."""
        ...


def read_shell(source: str, *, stem: str, thorough: bool) -> ParsedScript:
    """argc-style `# @describe`/`# @arg` tags (any language whose comments start with `#`)."""
    from opsroom.catalog.parsers.shell import parse_shell

    return parse_shell(source)


def read_python(source: str, *, stem: str, thorough: bool) -> ParsedScript:
    """Docstring, PEP 723 block, and main() or the script's own argv parser."""
    from opsroom.catalog.parsers.python import parse_python

    return parse_python(source, whole=thorough)


def read_powershell(source: str, *, stem: str, thorough: bool) -> ParsedScript:
    """Comment-based help and param(); a function file is named for its function."""
    from opsroom.catalog.parsers.powershell import parse_powershell

    return parse_powershell(source, stem)


def resolve(reference: str) -> object:
    """The object a record names as `module:attribute`; CatalogError when there is none."""
    return _resolve(reference)


@functools.cache
def _resolve(reference: str) -> object:
    module, _, attribute = reference.partition(":")
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as e:
        raise CatalogError(f"language record names {reference!r}, which is not there: {e}") from e


class ModuleReader(Protocol):
    """What a record's `modules.reader` names: a folder → its module, or None when none."""

    def __call__(
        self,
        root: Path,
        folder_rel: str,
        names: Collection[str],
        *,
        escapes: Callable[[Path], bool],
    ) -> Module | None:
        """`names` are the folder's entries; `escapes` tells a path that leaves the catalog."""
        ...


def module_reader_of(support: LanguageSupport) -> ModuleReader | None:
    """The reader of a language's module folders; None when it has none."""
    if support.modules is None:
        return None
    return cast(ModuleReader, resolve(support.modules.reader))


def reader_of(support: LanguageSupport) -> ScriptReader | None:
    """The parser of a language; None when its scripts carry no metadata (programs)."""
    if support.parser is None:
        return None
    return cast(ScriptReader, resolve(support.parser))
