"""SQLAlchemy's asyncio engine without its ORM sessions, loaded before any store module.

`sqlalchemy.ext.asyncio` imports its session classes, and with them the whole ORM (some
50 ms, a tenth of `opsroom run`'s start), although the store uses only the engine and its
connections. Importing this module first registers that package with just its engine
and result modules loaded; anything else asked of it (`AsyncSession`, ...) runs the
package's own `__init__` on first use (PEP 562), so other code sees the package whole.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

_PACKAGE = "sqlalchemy.ext.asyncio"
# What the package's `__init__` takes from the modules the store uses (none imports the ORM).
_LEAN = {
    "engine": (
        "AsyncConnection",
        "AsyncEngine",
        "AsyncTransaction",
        "async_engine_from_config",
        "create_async_engine",
        "create_async_pool_from_url",
    ),
    "result": ("AsyncMappingResult", "AsyncResult", "AsyncScalarResult", "AsyncTupleResult"),
}


def _load() -> None:
    """Register the package with only its engine modules (unless it is imported already)."""
    if _PACKAGE in sys.modules:
        return
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or spec.loader is None:
        return  # nothing to be lean about: the plain import fails as it would anyway
    loader = spec.loader
    package = importlib.util.module_from_spec(spec)
    sys.modules[_PACKAGE] = package
    try:
        for module_name, names in _LEAN.items():
            module = importlib.import_module(f"{_PACKAGE}.{module_name}")
            for name in names:
                setattr(package, name, getattr(module, name))
    except BaseException:
        del sys.modules[_PACKAGE]
        raise
    vars(sys.modules["sqlalchemy.ext"])["asyncio"] = package  # as an import would

    def complete(name: str) -> object:
        """Run the package's own `__init__` the first time something else is asked of it."""
        if name.startswith("__"):
            raise AttributeError(name)
        vars(package).pop("__getattr__", None)
        loader.exec_module(package)
        try:
            return vars(package)[name]
        except KeyError:
            raise AttributeError(f"module {_PACKAGE!r} has no attribute {name!r}") from None

    # Set last: while the modules above load, `from . import exc` must find no such hook.
    vars(package)["__getattr__"] = complete


_load()
