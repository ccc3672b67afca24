"""PEP 723 dependencies live in cached, isolated environments (SPEC §5.1).

Offline: the dependency is a wheel built here, referenced as `name @ file:///...`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib.util
import zipfile
from pathlib import Path
from types import MappingProxyType

import pytest

from opsroom.config import RunnerSettings
from opsroom.errors import RefusedError
from opsroom.model.commands import CommandSpec, Invocation, Language
from opsroom.model.jobs import JobEvent, JobState, OutputLine, StatusEvent, Stream
from opsroom.runner.argv import build_launch
from opsroom.runner.local import run_local
from opsroom.runner.pep723 import ensure_environment, environment_key

PKG = "opsroom_pep723_probe"


def build_wheel(folder: Path) -> Path:
    """A minimal pure-Python wheel, written by hand so no build backend or index is needed."""
    dist = f"{PKG}-0.1.dist-info"
    files = {
        f"{PKG}/__init__.py": "VALUE = 'hello from the isolated env'\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {PKG}\nVersion: 0.1\n",
        f"{dist}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: opsroom-tests\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ),
    }
    record = []
    for name, text in files.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    wheel = folder / f"{PKG}-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return wheel


@pytest.fixture
def requirement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    return f"{PKG} @ {build_wheel(tmp_path).as_uri()}"


async def run_script(tmp_path: Path, python: Path) -> list[JobEvent]:
    catalog = tmp_path / "catalog"
    catalog.mkdir(exist_ok=True)
    (catalog / "probe.py").write_text(
        f"# /// script\n# dependencies = ['{PKG}']\n# ///\n"
        f"import {PKG}\nfrom opsroom import script\n\n"
        f"def main():\n    script.status('ok')\n    return {PKG}.VALUE\n",
        encoding="utf-8",
    )
    spec = CommandSpec(name="probe", path="probe.py", language=Language.PYTHON)
    launch = build_launch(
        spec,
        Invocation("probe", MappingProxyType({})),
        catalog_root=catalog,
        job_id=1,
        requester="local:alice",
        room="local:term",
        settings=RunnerSettings(),
        workdir=tmp_path,
        python=str(python),
    )
    events: list[JobEvent] = []
    end = await run_local(launch, timeout=60, kill_grace=2, on_event=events.append)
    assert end.state is JobState.SUCCEEDED, events
    return events


@pytest.mark.parametrize("use_uv", [True, False], ids=["uv", "venv+pip"])
async def test_dependencies_install_into_a_cached_isolated_env(
    tmp_path: Path, requirement: str, use_uv: bool
) -> None:
    cache = tmp_path / "envs"
    python = await ensure_environment([requirement], ">=3.8", cache_dir=cache, use_uv=use_uv)
    assert python.is_file()
    assert cache in python.parents

    events = await run_script(tmp_path, python)
    assert OutputLine(Stream.STDOUT, "hello from the isolated env") in events
    assert StatusEvent("ok") in events  # the helper works where opsroom is not installed
    # opsroom's own environment never got it.
    assert importlib.util.find_spec(PKG) is None

    marker = python.parent.parent / ".opsroom-ready"
    built = marker.stat().st_mtime_ns
    again = await ensure_environment([requirement], ">=3.8", cache_dir=cache, use_uv=use_uv)
    assert again == python
    assert marker.stat().st_mtime_ns == built  # reused, not rebuilt


async def test_concurrent_requests_share_one_build(tmp_path: Path, requirement: str) -> None:
    cache = tmp_path / "envs"
    first, second = await asyncio.gather(
        ensure_environment([requirement], None, cache_dir=cache),
        ensure_environment([requirement], None, cache_dir=cache),
    )
    assert first == second
    assert [p.name for p in cache.iterdir() if p.is_dir()] == [first.parent.parent.name]
    await run_script(tmp_path, first)


def test_the_key_ignores_order_but_not_content() -> None:
    assert environment_key(["b", "a"], None) == environment_key(["a", "b"], None)
    assert environment_key(["a"], None) != environment_key(["a"], ">=3.12")
    assert environment_key(["a"], None) != environment_key(["a", "b"], None)


@pytest.mark.parametrize("bad", ["--index-url=http://evil/simple", "-e /tmp/x", "a\n-r x", " "])
async def test_option_like_requirements_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(RefusedError, match="invalid dependency"):
        await ensure_environment([bad], None, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


async def test_an_unsatisfiable_requires_python_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RefusedError, match="needs Python >=4"):
        await ensure_environment([], ">=4", cache_dir=tmp_path)
