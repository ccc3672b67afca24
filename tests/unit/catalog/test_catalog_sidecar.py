"""Sidecars and folder defaults (SPEC §3.6), read from real files by the catalog loader."""

from __future__ import annotations

import os
from pathlib import Path

from opsroom.catalog.scan import load_catalog
from opsroom.catalog.sidecar import read_folder_defaults, read_sidecar
from opsroom.model.catalog import Catalog
from opsroom.model.commands import CommandSpec, Language, ParamType

SCRIPT = '''\
"""Rotate the logs of a service."""
# opsroom: timeout = "10m"
# opsroom: owner = "script-owner"


def main(service: str, keep: int = 7) -> None:
    """Rotate.

    Args:
        service: The service.
    """
'''


def _write(root: Path, rel: str, text: str, mode: int | None = None) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if mode is not None:
        path.chmod(mode)
    return path


def _one(catalog: Catalog, name: str) -> CommandSpec:
    matches = [c for c in catalog.commands if c.name == name]
    assert len(matches) == 1, [str(i) for i in catalog.issues]
    return matches[0]


def test_sidecar_overrides_what_the_script_says(tmp_path: Path) -> None:
    _write(tmp_path, "logs/rotate.py", SCRIPT)
    _write(
        tmp_path,
        "logs/rotate.py.opsroom.toml",
        """\
name = "logs rotate-now"
summary = "Rotate logs right now."
examples = ["logs rotate-now nginx"]
owner = "sidecar-owner"
approval = "ops-leads"

[params.service]
choices = ["nginx", "postgres"]
help = "Which service."

[params.keep]
range = [1, 30]
""",
    )
    cat = load_catalog(tmp_path, commit="abc")
    assert cat.issues == ()
    spec = _one(cat, "logs rotate-now")
    assert spec.summary == "Rotate logs right now."
    assert spec.examples == ("logs rotate-now nginx",)
    assert (spec.owner, spec.approval, spec.timeout) == ("sidecar-owner", "ops-leads", 600.0)
    service, keep = spec.params
    assert (service.choices, service.help, service.required) == (
        ("nginx", "postgres"), "Which service.", True,
    )  # fmt: skip
    assert (keep.range, keep.default) == ((1, 30), 7)


def test_params_as_array_of_tables_add_parameters(tmp_path: Path) -> None:
    _write(tmp_path, "tools/netbox-sync", "#!/bin/sh\necho synced\n", mode=0o755)
    _write(
        tmp_path,
        "tools/netbox-sync.opsroom.toml",
        """\
summary = "Sync NetBox from the CMDB."
timeout = 300

[[params]]
name = "site"
type = "string[]"
required = true
pattern = "^[a-z0-9-]+$"
length = { min = 2, max = 20 }

[[params]]
name = "dry"
type = "switch"
""",
    )
    spec = _one(load_catalog(tmp_path, commit=None), "tools netbox-sync")
    assert spec.language is Language.EXECUTABLE
    assert spec.timeout == 300.0
    site, dry = spec.params
    assert (site.type_label, site.required, site.pattern, site.length) == (
        "string[]", True, "^[a-z0-9-]+$", (2, 20),
    )  # fmt: skip
    assert dry.type is ParamType.SWITCH


def test_executable_without_sidecar_or_not_executable_is_no_command(tmp_path: Path) -> None:
    _write(tmp_path, "tools/plain", "#!/bin/sh\n", mode=0o755)
    _write(tmp_path, "tools/data.bin", "x", mode=0o644)
    _write(tmp_path, "tools/data.bin.opsroom.toml", 'summary = "x"\n')
    cat = load_catalog(tmp_path)
    assert cat.commands == ()
    assert [(i.path, i.severity.value) for i in cat.issues] == [
        ("tools/data.bin.opsroom.toml", "warning")
    ]


def test_sidecar_unknown_keys_and_bad_values_are_named(tmp_path: Path) -> None:
    _write(tmp_path, "logs/rotate.py", SCRIPT)
    _write(
        tmp_path,
        "logs/rotate.py.opsroom.toml",
        'summary = "x"\ncolour = "blue"\n\n[params.keep]\ntype = "integer"\n',
    )
    cat = load_catalog(tmp_path)
    assert cat.commands == ()
    assert [str(i) for i in cat.issues] == [
        "logs/rotate.py.opsroom.toml:2: unknown key 'colour' in sidecar",
        "logs/rotate.py.opsroom.toml:4: parameter 'keep': unknown type 'integer' "
        "(known: string, int, float, bool, switch, datetime; arrays: int[])",
    ]


def test_sidecar_summary_silences_the_missing_docstring_warning(tmp_path: Path) -> None:
    _write(tmp_path, "a.py", "def main() -> None: ...\n")
    (warning,) = load_catalog(tmp_path).issues
    assert warning.message.startswith("missing")
    _write(tmp_path, "a.py.opsroom.toml", 'summary = "Does a."\n')
    cat = load_catalog(tmp_path)
    assert cat.issues == ()
    assert _one(cat, "a").summary == "Does a."


def test_folder_defaults_nearest_wins_script_and_sidecar_win_over_them(tmp_path: Path) -> None:
    _write(tmp_path, "defaults.opsroom.toml", 'owner = "root-team"\nrunning = 1\n')
    _write(tmp_path, "storage/defaults.opsroom.toml", 'owner = "storage"\nrooms = ["slack:C1"]\n')
    _write(tmp_path, "storage/deep/defaults.opsroom.toml", 'timeout = "1h"\n')
    _write(tmp_path, "top.sh", "# @describe Top.\n")
    _write(tmp_path, "storage/one.sh", "# @describe One.\n")
    _write(tmp_path, "storage/deep/two.sh", "# @describe Two.\n")
    _write(tmp_path, "storage/deep/three.sh", '# opsroom: owner = "mine"\n# @describe Three.\n')
    _write(tmp_path, "storage/deep/three.sh.opsroom.toml", 'timeout = "5m"\n')
    cat = load_catalog(tmp_path)
    assert [str(i) for i in cat.issues] == [
        "defaults.opsroom.toml:2: unknown key 'running' in folder defaults"
    ]
    got = {c.name: (c.owner, c.rooms, c.timeout) for c in cat.commands}
    assert got == {
        "top": ("root-team", (), None),
        "storage one": ("storage", ("slack:C1",), None),
        "storage deep two": ("storage", ("slack:C1",), 3600.0),
        "storage deep three": ("mine", ("slack:C1",), 300.0),
    }


def test_read_functions_report_lines() -> None:
    side = read_sidecar('summary = "x"\n\n[[params]]\nname = "n"\nrange = [1, "x"]\n')
    assert [(p.line, p.message) for p in side.problems] == [
        (4, "parameter 'n': range bounds must be numbers")
    ]
    folder = read_folder_defaults('owner = "a"\naliases = ["x"]\nconcurrency = -1\n')
    assert [p.line for p in folder.problems] == [2, 3]
    assert dict(folder.values) == {"owner": "a"}
    broken = read_sidecar("summary = \n")
    assert broken.problems[0].line == 1
    assert "not valid TOML" in broken.problems[0].message


def test_exec_bit_is_what_counts(tmp_path: Path) -> None:
    exe = _write(tmp_path, "bin-tool", "#!/bin/sh\n", mode=0o755)
    _write(tmp_path, "bin-tool.opsroom.toml", 'summary = "Tool."\n')
    assert [c.name for c in load_catalog(tmp_path).commands] == ["bin-tool"]
    os.chmod(exe, 0o644)
    assert load_catalog(tmp_path).commands == ()
