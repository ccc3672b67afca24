"""A job's command and parameters written the way a person types them in chat."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from opsroom.model.commands import CommandSpec, ParamType
from opsroom.router.parser import option_name


def typed_command(
    prefix: str, command: str, params: Mapping[str, Any], spec: CommandSpec | None
) -> str:
    """`!storage migrate --seconds-per-volume 1.0`: what runs `command` with `params` again."""
    types = {p.name: p for p in spec.params} if spec else {}
    words = [f"{prefix}{command}"]
    for name, value in params.items():
        p = types.get(name)
        # Without the spec (the command left the catalog) the chat spelling is still the
        # likeliest: dashes, as `option_name` writes it.
        option = option_name(p) if p else "--" + name.replace("_", "-")
        if p is not None and p.type is ParamType.SWITCH:
            if value:
                words.append(option)
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if isinstance(item, bool):
                item = "true" if item else "false"
            words += [option, shlex.quote(str(item))]
    return " ".join(words)
