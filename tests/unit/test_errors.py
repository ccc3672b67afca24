"""One exception tree: every error opsroom defines descends from `OpsroomError`.

Found by importing every module of the package, so an error added anywhere is checked
the day it is written. The few kept outside say why.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import opsroom
from opsroom.errors import AdapterError, OpsroomError, RefusedError, UserError

# Kept outside the tree on purpose, with the reason (errors.py says the same).
OUTSIDE = {
    # The gate's signal thrown into a route reading a refused body: no handler of
    # opsroom's errors may ever catch it; it must unwind to the gate.
    "opsroom.web.gate._BodyRefused": Exception,
}
# The pytest plugin raises into a team's own tests what a test expects to see.
OUTSIDE_MODULES = {"opsroom.testing": (TimeoutError, AssertionError)}


def _errors() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(opsroom.__path__, "opsroom."):
        name = info.name
        # Scripts, not modules: the bundled examples, the child bootstraps, `python -m`.
        if ".examples" in name or ".bootstrap" in name or name.endswith("__main__"):
            continue
        module = importlib.import_module(name)
        for obj in vars(module).values():
            # Defined here, not imported from elsewhere (a library's own errors).
            is_error = inspect.isclass(obj) and issubclass(obj, BaseException)
            if is_error and obj.__module__ == name:
                found[f"{name}.{obj.__qualname__}"] = obj
    return found


def test_every_error_defined_in_opsroom_is_in_the_one_tree() -> None:
    errors = _errors()
    assert len(errors) > 20, "the walk found the package's errors"
    outside = []
    for name, error in errors.items():
        if name in OUTSIDE:
            assert error.__mro__[1] is OUTSIDE[name], name
            continue
        module = name.rsplit(".", 1)[0]
        if module in OUTSIDE_MODULES and issubclass(error, OUTSIDE_MODULES[module]):
            continue
        if not issubclass(error, OpsroomError):
            outside.append(name)
    assert outside == [], f"errors outside errors.OpsroomError: {outside}"


def test_errors_sit_under_the_base_that_says_what_they_are() -> None:
    from opsroom.adapters.base import AdapterUnavailable
    from opsroom.model.patterns import PatternError
    from opsroom.runner.attachments import AttachmentRefused
    from opsroom.web.oidc import SsoError

    # The bridge keeps a reply for later on any platform failure it can name.
    assert issubclass(AdapterUnavailable, AdapterError)
    # Said to the person: an attachment refused shows in the job's output, a failed
    # sign-in on the login page.
    assert issubclass(AttachmentRefused, RefusedError)
    assert str(AttachmentRefused("no such file")) == "no such file"
    assert issubclass(SsoError, UserError)
    assert SsoError("not allowed", 403).status == 403
    # Still a ValueError: the sidecar reader turns every bad value into a catalog issue.
    assert issubclass(PatternError, ValueError)


def test_the_tree_drawn_in_errors_py_names_every_public_error() -> None:
    import opsroom.errors

    drawing = opsroom.errors.__doc__ or ""
    public = [
        name
        for module, _, name in (n.rpartition(".") for n in _errors())
        if not name.startswith("_") and module not in OUTSIDE_MODULES
    ]
    missing = sorted(n for n in public if n not in drawing)
    assert missing == [], f"errors.py's drawing of the tree lacks {missing}"
