"""A catalog deployed from git (SPEC §10): fetch the branch, check out commits in work trees.

Git is driven through the `git` program with argument lists, never a shell string: it is
what every host that holds scripts already has, it speaks every transport and credential
helper a team uses (https, ssh, file), and its behaviour is the one people know from their
own checkouts. A library (pygit2, dulwich) would bring its own TLS and ssh stacks and its
own idea of both.

Layout under the working folder's `.opsroom/catalog/`:

    repo.git/               one bare repository, shared by every opsroom process here
    trees/<process>/<n>/    work trees of one process: the live one, a spare, and any
                            older one a running job still uses

`refs/opsroom/fetched` is the branch as last fetched, `refs/opsroom/deployed` the last commit
that passed its check (served after a restart when the remote is unreachable). Work trees
are reused: checking out the next commit in the spare tree rewrites only the files that
differ, which keeps a one-file commit of a 10,000-script catalog fast.

Credentials are references, resolved when git runs and handed to it in its environment
only: an https token as an `Authorization` header scoped to the repository's URL (through
GIT_CONFIG_* variables, so never in a file, a URL or an argument list), an ssh key file as
`GIT_SSH_COMMAND` with every word quoted. Git never prompts.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from opsroom.errors import CatalogError

GIT_TIMEOUT = 120.0  # seconds a fetch or checkout may take
_SHA = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")
FETCHED = "refs/opsroom/fetched"
DEPLOYED = "refs/opsroom/deployed"
_SPARE_TREES = 1  # free work trees kept for the next commit
_RACY_SECONDS = 1.1  # file times have one-second granularity in git's racy check


@dataclass(frozen=True, slots=True)
class CommitInfo:
    """Who made a commit and why: what an announcement names."""

    sha: str
    subject: str
    author: str

    @property
    def short(self) -> str:
        """The abbreviated id people quote."""
        return self.sha[:8]


@dataclass(frozen=True, slots=True)
class FileChange:
    """When a script last changed: its last commit, or only the file's time outside git."""

    commit: str | None
    author: str | None
    at: datetime


def last_change(root: Path, path: str) -> FileChange | None:
    """The last commit touching `path` in the catalog checkout at `root`, else its mtime.

    Works for a `[catalog] git` work tree and for a `path` catalog that is a git checkout;
    None when the file is gone. Blocking (it runs `git log`): call it off the event loop.
    """
    if not path:
        return None
    try:
        done = subprocess.run(
            ["git", "log", "-1", "--no-show-signature", "--format=%H%x00%an%x00%aI", "--", path],
            cwd=root,
            env=_local_env(os.environ),  # never credentials: this does not reach a remote
            capture_output=True,
            text=True,
            errors="replace",
            timeout=10,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        fields = done.stdout.strip().split("\0")
    except (OSError, subprocess.SubprocessError):
        fields = []
    if len(fields) == 3 and fields[0]:
        return FileChange(fields[0], fields[1], datetime.fromisoformat(fields[2]))
    try:
        mtime = (root / path).stat().st_mtime
    except OSError:
        return None
    return FileChange(None, None, datetime.fromtimestamp(mtime, UTC))


@dataclass(frozen=True, slots=True)
class Tree:
    """One work tree of this process, checked out at `sha`."""

    path: Path
    sha: str


class GitError(CatalogError):
    """Git could not do what was asked (unreachable remote, unknown branch, ...)."""


class GitSource:
    """The repository of a `[catalog] git` catalog and this process's work trees."""

    def __init__(
        self,
        url: str,
        branch: str,
        home: Path,
        *,
        owner: str,
        owner_alive: Callable[[str], bool],
        token: str | None = None,
        ssh_key: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url
        self.branch = branch
        self.home = home
        self.repo = home / "repo.git"
        self._owner = owner
        self._owner_alive = owner_alive
        self._trees_dir = home / "trees" / _safe_name(owner)
        self._token = token
        self._env = _git_env(url, token=token, ssh_key=ssh_key, environ=environ)
        self._lock = threading.Lock()  # one git operation of this process at a time
        self._free: list[Tree] = []
        self._next = 0

    # -- the repository --------------------------------------------------------------------

    def open(self) -> None:
        """Create the bare repository (once) and remove work trees of dead processes."""
        with self._locked():
            if not (self.repo / "HEAD").is_file():
                self.repo.mkdir(parents=True, exist_ok=True)
                self._git("init", "--bare", "--quiet", str(self.repo), cwd=self.home)
                # Commits in use are held by refs and work trees; nothing else needs keeping.
                self._git("config", "gc.auto", "0")
            self._prune_dead()
            shutil.rmtree(self._trees_dir, ignore_errors=True)  # a restart with our pid
            self._git("worktree", "prune")

    def fetch(self) -> str:
        """Fetch the branch (full history: each script's last change) and return its commit."""
        refspec = f"+refs/heads/{self.branch}:{FETCHED}"
        with self._locked():
            self._git("fetch", "--quiet", "--no-tags", "--", self.url, refspec, network=True)
            sha = self._rev(FETCHED)
        assert sha is not None  # _rev raises rather than return None unless missing_ok
        return sha

    def fetched(self) -> str | None:
        """The branch as last fetched (by any process here), or None."""
        with self._locked():
            return self._rev(FETCHED, missing_ok=True)

    def deployed(self) -> str | None:
        """The last commit that passed its check here, or None."""
        with self._locked():
            return self._rev(DEPLOYED, missing_ok=True)

    def mark_deployed(self, sha: str) -> None:
        """Remember `sha` as the last good commit (served after a restart if need be)."""
        with self._locked():
            self._git("update-ref", DEPLOYED, _checked_sha(sha))

    def info(self, sha: str) -> CommitInfo:
        """Subject and author of a commit."""
        out = self._git("log", "-1", "--no-show-signature", "--format=%an%x00%s", sha, "--")
        author, _, subject = out.rstrip("\n").partition("\0")
        return CommitInfo(sha, subject, author)

    def blobs(self, sha: str) -> dict[str, str]:
        """Path → mode and blob id of every regular file at `sha` (symlinks left out)."""
        out = self._git("ls-tree", "-r", "-z", "--full-tree", _checked_sha(sha))
        found: dict[str, str] = {}
        for entry in out.split("\0"):
            head, tab, path = entry.partition("\t")
            if not tab:
                continue
            mode, kind, blob = head.split(" ")
            if kind == "blob" and mode in ("100644", "100755"):
                found[path] = f"{mode}:{blob}"
        return found

    # -- work trees ------------------------------------------------------------------------

    def checkout(self, sha: str) -> Tree:
        """A work tree of this process holding exactly `sha` (a spare one is reused)."""
        sha = _checked_sha(sha)
        with self._locked():
            while self._free:
                tree = self._free.pop()
                try:
                    self._git("checkout", "--quiet", "--force", "--detach", sha, cwd=tree.path)
                    # Nothing a job or an editor left there may become part of the catalog.
                    self._git("clean", "-ffdxq", cwd=tree.path)
                except GitError:
                    self._remove(tree)
                    continue
                return Tree(tree.path, sha)
            self._next += 1
            path = self._trees_dir / str(self._next)
            while path.exists():
                self._next += 1
                path = self._trees_dir / str(self._next)
            path.parent.mkdir(parents=True, exist_ok=True)
            (self._trees_dir / "owner").write_text(self._owner, encoding="utf-8")
            self._git("worktree", "add", "--quiet", "--detach", str(path), sha)
            return Tree(path, sha)

    def add_spare(self, sha: str) -> None:
        """Check out a spare work tree ahead of time, so the next commit need not wait for one.

        A fresh work tree writes every file (about a second at 10,000 scripts); a spare one
        only rewrites what the next commit changes.
        """
        with self._locked():
            if self._free:
                return
        tree = self.checkout(sha)
        # Files written in the same second as the index are "racily clean": git re-reads
        # every one of them at the next checkout unless the index is refreshed later on.
        time.sleep(_RACY_SECONDS)
        self.release(tree)

    def release(self, tree: Tree) -> None:
        """`tree` is no longer served and no job uses it: keep it as a spare, or remove it."""
        if len(self._free) < _SPARE_TREES:
            # Now, not when the next commit waits for it (see add_spare). Nobody else uses
            # the tree meanwhile: no lock, so a checkout elsewhere need not wait for this.
            with contextlib.suppress(GitError):
                self._git("update-index", "-q", "--refresh", cwd=tree.path)
        with self._locked():
            if len(self._free) < _SPARE_TREES:
                self._free.append(tree)
            else:
                self._remove(tree)

    def close(self) -> None:
        """Remove this process's work trees (the repository stays for the next start)."""
        with self._locked():
            self._free.clear()
            shutil.rmtree(self._trees_dir, ignore_errors=True)
            with contextlib.suppress(GitError):
                self._git("worktree", "prune")

    # -- helpers ---------------------------------------------------------------------------

    def _remove(self, tree: Tree) -> None:
        shutil.rmtree(tree.path, ignore_errors=True)
        with contextlib.suppress(GitError):
            self._git("worktree", "prune")

    def _prune_dead(self) -> None:
        """Work trees left by opsroom processes that are gone (killed, host rebooted)."""
        trees = self.home / "trees"
        if not trees.is_dir():
            return
        for folder in trees.iterdir():
            try:
                owner = (folder / "owner").read_text(encoding="utf-8").strip()
            except OSError:
                owner = ""
            if folder != self._trees_dir and (not owner or not self._owner_alive(owner)):
                shutil.rmtree(folder, ignore_errors=True)

    def _rev(self, ref: str, *, missing_ok: bool = False) -> str | None:
        try:
            return self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()
        except GitError:
            if missing_ok:
                return None
            raise

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """This process's lock, then the repository's lock shared with other processes."""
        import fcntl

        with self._lock:
            self.home.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.home / "lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing releases the lock

    def _git(self, *args: str, cwd: Path | None = None, network: bool = False) -> str:
        argv = ["git", *args]
        try:
            done = subprocess.run(
                argv,
                cwd=cwd or self.repo,
                env=self._env if network else _local_env(self._env),
                capture_output=True,
                text=True,
                timeout=GIT_TIMEOUT,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError:
            raise GitError("git is not installed (needed for [catalog] git)") from None
        except subprocess.TimeoutExpired:
            raise GitError(f"git {args[0]} took over {GIT_TIMEOUT:g}s") from None
        if done.returncode != 0:
            raise GitError(self._said(args[0], done.stderr))
        return done.stdout

    def _said(self, what: str, stderr: str) -> str:
        """Git's own complaint, one line, with anything secret-looking taken out."""
        lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
        text = next((ln for ln in lines if ln.startswith(("fatal:", "error:"))), "")
        text = text or (lines[-1] if lines else f"git {what} failed")
        if self._token:
            text = text.replace(self._token, "********")
        return text[:300]


def _checked_sha(sha: str) -> str:
    if not _SHA.match(sha):
        raise GitError(f"not a commit id: {sha[:80]!r}")
    return sha


def _safe_name(owner: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", owner)[:120]


def _git_env(
    url: str,
    *,
    token: str | None,
    ssh_key: str | None,
    environ: Mapping[str, str] | None,
) -> dict[str, str]:
    """The environment git runs with: never prompting, credentials by reference resolved."""
    env = dict(os.environ if environ is None else environ)
    for name in [k for k in env if k.startswith("GIT_CONFIG_")]:
        del env[name]
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.pop("GIT_ASKPASS", None)
    env.pop("SSH_ASKPASS", None)
    env["LC_ALL"] = "C"  # git's messages in one language: they are shown and matched
    config: list[tuple[str, str]] = []
    if token is not None:
        parts = urlsplit(url)
        user = parts.username or "oauth2"  # GitLab's and most servers' name for a bare token
        scope = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}/"
        basic = base64.b64encode(f"{user}:{token}".encode()).decode()
        # Only requests to the repository's own host carry it, redirects elsewhere do not.
        config.append((f"http.{scope}.extraHeader", f"Authorization: Basic {basic}"))
    if ssh_key is not None:
        env["GIT_SSH_COMMAND"] = shlex.join(
            ["ssh", "-i", ssh_key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
        )
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for i, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


def _local_env(env: Mapping[str, str]) -> dict[str, str]:
    """For commands that never reach the remote: no credentials at all."""
    local = {k: v for k, v in env.items() if not k.startswith("GIT_CONFIG_")}
    local.pop("GIT_SSH_COMMAND", None)
    return local
