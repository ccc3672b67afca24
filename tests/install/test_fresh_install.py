"""A fresh install of the built wheel works: the core alone serves the web chat, each optional
feature without its extra is one line and exit 2, and `[all]` imports every module.

Two real virtual environments are made from the wheel built out of this checkout, the way a
user installs opsroom (`pip install opsroom`, `pip install 'opsroom[all]'`), with packages
from the registry as pip is configured here (its cache included).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from extras_map import EXTRA_AREAS, HOSTED

ROOT = Path(__file__).resolve().parents[2]
CORE_BUDGET_MB = 90  # what `pip install opsroom` may add to an environment (issue 13)
pytestmark = pytest.mark.timeout(600)  # building the environments: about a minute

# Imports each module named on the command line; prints {module: error} for those that fail.
_IMPORT_EACH = """
import importlib, json, sys, traceback
failed = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except BaseException as e:
        missing = getattr(e, "name", None) if isinstance(e, ModuleNotFoundError) else None
        failed[name] = {"missing": missing, "error": traceback.format_exc(limit=3)}
print(json.dumps(failed))
"""


@dataclass(frozen=True)
class Venv:
    """A virtual environment with opsroom installed from the wheel."""

    root: Path

    @property
    def python(self) -> str:
        """Its interpreter."""
        return str(self.root / "bin" / "python")

    @property
    def package(self) -> Path:
        """The installed opsroom package."""
        return next((self.root / "lib").glob("python3.*/site-packages/opsroom"))

    @property
    def opsroom(self) -> str:
        """Its `opsroom` console script."""
        return str(self.root / "bin" / "opsroom")

    def import_each(self, modules: list[str]) -> dict[str, dict[str, str | None]]:
        """Import every module in a fresh interpreter; the ones that failed, and why."""
        done = subprocess.run(
            [self.python, "-c", _IMPORT_EACH, *modules],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
            cwd=self.root,  # not the checkout: only the installed package can be found
        )
        failed: dict[str, dict[str, str | None]] = json.loads(done.stdout)
        return failed


def _modules(package: Path) -> list[tuple[str, str]]:
    """(dotted name, path below the package) of every importable module of an installed copy."""
    found = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        if rel.name == "__main__.py" or rel.parts[0] == "examples":
            continue
        # Importable only inside packages: migrations and bootstraps are loaded by path.
        if not all((package / parent / "__init__.py").is_file() for parent in rel.parents):
            continue
        parts = ["opsroom", *rel.with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found.append((".".join(parts), rel.as_posix()))
    return found


def _in_extra_area(rel: str) -> bool:
    return any(rel.startswith(prefix) for prefix in EXTRA_AREAS)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout, built from a copy (the checkout gets no build/ folder)."""
    tree = tmp_path_factory.mktemp("tree")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, tree / name)
    shutil.copytree(
        ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    out = tmp_path_factory.mktemp("dist")
    _pip("wheel", "--no-deps", "--wheel-dir", str(out), str(tree))
    [built] = out.glob("opsroom-*.whl")
    return built


def _pip(*args: str, python: str | None = None) -> None:
    target = ["--python", python] if python else []
    done = subprocess.run(
        [sys.executable, "-m", "pip", *target, *args, "--quiet", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=540,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _venv(where: Path, requirement: str) -> Venv:
    # No pip or setuptools of its own: what is measured is what opsroom brings.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    venv = Venv(where)
    _pip("install", requirement, python=venv.python)
    return venv


@pytest.fixture(scope="module")
def core(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """`pip install opsroom`: no extras."""
    return _venv(tmp_path_factory.mktemp("core") / "venv", str(wheel))


@pytest.fixture(scope="module")
def everything(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """`pip install 'opsroom[all]'`, plus pytest, the host of opsroom's pytest plugin."""
    venv = _venv(tmp_path_factory.mktemp("all") / "venv", f"opsroom[all] @ {wheel.as_uri()}")
    _pip("install", "pytest", python=venv.python)
    return venv


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")}
    env["HOME"] = str(home)  # the job environment cache and such stay in the test's folder
    return env


def test_the_core_install_imports_every_core_module(core: Venv) -> None:
    modules = _modules(core.package)
    failed = core.import_each([name for name, _ in modules])
    areas = dict(modules)
    bad = {}
    for name, why in failed.items():
        rel = areas[name]
        if HOSTED.get(rel) == why["missing"]:
            continue  # the pytest plugin: pytest brings what it needs
        # A chat adapter's modules may need their extra; nothing else may.
        if _in_extra_area(rel) and why["missing"] and why["missing"].split(".")[0] != "opsroom":
            continue
        bad[name] = why["error"]
    assert not bad, "\n".join(f"{n}:\n{e}" for n, e in bad.items())
    assert "opsroom.cli.main" in areas.keys() - failed.keys()  # not vacuous: it did import
    assert "opsroom.web.server" in areas.keys() - failed.keys()


def test_the_core_install_fits_the_budget_and_leaves_out_every_extra(core: Venv) -> None:
    site = core.package.parent
    size = sum(f.stat().st_size for f in core.root.rglob("*") if f.is_file() and not f.is_symlink())
    assert size <= CORE_BUDGET_MB * 1_000_000, f"core install is {size / 1e6:.1f} MB"
    installed = {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}
    for optional in ("slack_sdk", "ldap3", "hvac", "authlib", "psycopg", "nio", "irc", "httpx"):
        assert optional not in installed
    assert "opsroom" in installed


def test_the_core_install_serves_the_web_chat_on_embedded_defaults(
    core: Venv, tmp_path: Path
) -> None:
    proc = subprocess.Popen(
        [core.opsroom, "serve", "--listen", "127.0.0.1:0"],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url, password = _announced(proc)
        with httpx.Client(base_url=url, timeout=30) as client:
            health = client.get("/healthz")
            assert health.status_code == 200
            assert health.json()["status"] == "ok"
            _login(client, password)
            chat = client.get("/chat", follow_redirects=True)
            assert chat.status_code == 200
            assert "text/html" in chat.headers["content-type"]
            assert "/chat/" in str(chat.url)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    assert "Traceback" not in err


def _announced(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """The address and the one-time admin password `serve` prints on a first start."""
    assert proc.stdout is not None
    url = password = None
    lines = []
    for line in proc.stdout:  # ends when the process does: no fixed wait
        lines.append(line)
        if m := re.search(r"serving on (http://\S+)", line):
            url = m.group(1)
        if m := re.search(r'"admin" has the password: (\S+)', line):
            password = m.group(1)
        if "Log in at" in line:
            break
    assert url, lines
    assert password, lines
    return url, password


def _login(client: httpx.Client, password: str) -> None:
    client.get("/login").raise_for_status()
    form = {
        "username": "admin",
        "password": password,
        "csrf_token": client.cookies["opsroom_login_csrf"],
    }
    assert client.post("/login", data=form).status_code == 303


# (config written to opsroom.toml, environment, the one line expected on stderr)
_FEATURES = {
    "ldap": (
        '[ldap]\nurl = "ldap://127.0.0.1:9"\nuser_base = "ou=people,dc=example,dc=org"\n'
        'group_base = "ou=groups,dc=example,dc=org"\n',
        {},
        "opsroom: install opsroom[ldap] to use [ldap]",
    ),
    "vault": (
        '[vault]\nurl = "http://127.0.0.1:9"\n',
        {"VAULT_TOKEN": "not-a-real-token"},
        "opsroom: install opsroom[vault] to use [vault]",
    ),
    "sso": (
        '[web.oidc]\nissuer = "http://127.0.0.1:9/realm"\nclient_id = "opsroom"\n',
        {},
        "opsroom: install opsroom[sso] to use [web.oidc]",
    ),
    "postgres": (
        '[store]\nurl = "postgresql://ops:hunter2@127.0.0.1:9/opsroom"\n',
        {},
        "opsroom: install opsroom[postgres] to use a postgresql:// [store] url",
    ),
}


@pytest.mark.parametrize("feature", sorted(_FEATURES))
def test_a_feature_without_its_extra_is_one_line_and_exit_2(
    core: Venv, tmp_path: Path, feature: str
) -> None:
    config, extra_env, expected = _FEATURES[feature]
    (tmp_path / "opsroom.toml").write_text(config)
    done = subprocess.run(
        [core.opsroom, "serve", "--listen", "127.0.0.1:0"],
        cwd=tmp_path,
        env={**_env(tmp_path), **extra_env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr == expected + "\n"
    assert "serving on" not in done.stdout  # nothing started
    assert "hunter2" not in done.stdout + done.stderr


def test_slack_configured_without_its_extra_exits_2_naming_the_extra(
    core: Venv, tmp_path: Path
) -> None:
    (tmp_path / "opsroom.toml").write_text(
        '[adapters.slack]\nbot_token = "env:SLACK_BOT_TOKEN"\napp_token = "env:SLACK_APP_TOKEN"\n'
        'api_url = "http://127.0.0.1:9/api/"\n'
    )
    env = {**_env(tmp_path), "SLACK_BOT_TOKEN": "xoxb-not-real", "SLACK_APP_TOKEN": "xapp-nope"}
    done = subprocess.run(
        [core.opsroom, "serve", "--listen", "127.0.0.1:0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    said = done.stdout + done.stderr
    assert done.returncode == 2, said
    assert "Traceback" not in said
    [line] = [line for line in said.splitlines() if "opsroom[slack]" in line]
    assert "install opsroom[slack]" in line
    assert "[adapters.slack]" in line
    assert "xoxb-not-real" not in said


def test_the_all_install_imports_every_module(everything: Venv) -> None:
    modules = [name for name, _ in _modules(everything.package)]
    assert len(modules) > 100  # the whole package, not a stray subset
    failed = everything.import_each(modules)
    assert not failed, "\n".join(f"{n}:\n{e['error']}" for n, e in failed.items())
