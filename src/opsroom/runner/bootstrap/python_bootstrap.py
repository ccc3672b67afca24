"""opsroom's Python bootstrap: import a catalog script and call its `main(**params)`.

    python python_bootstrap.py <script.py>

Parameters come as JSON in OPSROOM_PARAMS (types in OPSROOM_PARAM_TYPES, e.g.
`{"when": "datetime", "hosts": "string[]"}`), never on the command line. A returned dict or
list of dicts becomes a table event; a returned string is printed; a returned int is the exit
status. An exception prints a short traceback (the script's frames only) and exits 1; a
problem before the script runs (missing file, no main) exits 2.

Standard library only, and valid on Python 3.8+: it also runs inside isolated PEP 723
environments where opsroom is not installed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import json
import os
import sys
import traceback
import types
from datetime import datetime

_HELPER = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "script.py"
)
_SETUP_FAILED = 2


def _fail(message):
    sys.stderr.write("opsroom: " + message + "\n")
    sys.stderr.flush()
    sys.exit(_SETUP_FAILED)


def _install_helper():
    """Make `from opsroom import script` work even where opsroom is not installed."""
    try:
        import opsroom.script  # noqa: F401

        return
    except ImportError:
        pass
    package = sys.modules.get("opsroom")
    if package is None:
        package = types.ModuleType("opsroom")
        package.__path__ = []
        sys.modules["opsroom"] = package
    spec = importlib.util.spec_from_file_location("opsroom.script", _HELPER)
    if spec is None or spec.loader is None:
        return
    helper = importlib.util.module_from_spec(spec)
    sys.modules["opsroom.script"] = helper
    spec.loader.exec_module(helper)
    package.script = helper


def _parse_datetime(text):
    value = str(text).strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    return datetime.fromisoformat(value)


def _convert(value, label):
    if label.startswith("datetime"):
        if isinstance(value, list):
            return [_parse_datetime(v) for v in value]
        return _parse_datetime(value)
    if label.endswith("[]") and not isinstance(value, list):
        return [value]
    return value


def _load_json(name):
    raw = os.environ.get(name, "") or "{}"
    try:
        data = json.loads(raw)
    except ValueError:
        _fail(name + " is not valid JSON")
    if not isinstance(data, dict):
        _fail(name + " must be a JSON object")
    return data


def _bind(main, params):
    """Map parameter names onto main's signature (`dry-run` → `dry_run`, any case)."""
    try:
        sig = inspect.signature(main)
    except (TypeError, ValueError):
        return dict(params)
    accepted = {}
    open_kwargs = False
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            open_kwargs = True
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            accepted[p.name.lower()] = p.name
    bound = {}
    for name, value in params.items():
        key = name.replace("-", "_")
        target = accepted.get(key.lower())
        if target is None:
            if not open_kwargs:
                _fail("main() has no parameter " + repr(name))
            target = key
        bound[target] = value
    return bound


def _is_rows(value):
    return (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(isinstance(r, dict) for r in value)
    )


def _report(result):
    from opsroom import script as helper

    if result is None or isinstance(result, bool):
        return 0
    if isinstance(result, int):
        return result
    if isinstance(result, dict):
        helper.table([result])
    elif _is_rows(result):
        helper.table(result)
    elif isinstance(result, str):
        print(result)
    elif isinstance(result, (list, tuple)):
        for item in result:
            print(item)
    else:
        print(result)
    return 0


def _short_traceback(exc):
    tb = exc.__traceback__
    # Drop the bootstrap's own frames: the reader wants to see the script's lines.
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) == os.path.abspath(
        __file__
    ):
        tb = tb.tb_next
    lines = traceback.format_exception(type(exc), exc, tb)
    sys.stderr.write("".join(lines))
    sys.stderr.flush()


def run(path):
    """Load the script at `path`, call its main with the params, return the exit status."""
    _install_helper()
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        _fail("script not found: " + path)
    sys.argv = [path]
    sys.path[0:1] = [os.path.dirname(path)]
    params = _load_json("OPSROOM_PARAMS")
    labels = _load_json("OPSROOM_PARAM_TYPES")
    try:
        params = {k: _convert(v, str(labels.get(k, ""))) for k, v in params.items()}
    except ValueError as e:
        _fail("bad parameter value: " + str(e))

    spec = importlib.util.spec_from_file_location("__opsroom_script__", path)
    if spec is None or spec.loader is None:
        _fail("cannot load " + path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["__opsroom_script__"] = module
    try:
        spec.loader.exec_module(module)
        main = getattr(module, "main", None)
        if not callable(main):
            _fail(os.path.basename(path) + " has no main() function")
        result = main(**_bind(main, params))
        if inspect.isawaitable(result):
            result = asyncio.run(_await(result))
    except SystemExit:
        raise
    except BaseException as exc:  # the script's own failure, reported as such
        _short_traceback(exc)
        return 1
    return _report(result)


async def _await(awaitable):
    return await awaitable


if __name__ == "__main__":
    if len(sys.argv) != 2:
        _fail("usage: python_bootstrap.py <script.py>")
    sys.exit(run(sys.argv[1]))
