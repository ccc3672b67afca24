"""Deploying the catalog (SPEC §10): load a new version, check it, swap it in, say so.

Every new version — a fetched commit, a saved file, a `reload` — goes the same way:

1. loaded incrementally in a work tree of its own (`catalog.live`), never over the files
   running jobs use;
2. checked (SPEC §3.7): an error the serving version did not already have rejects it, and
   so does a PEP 723 environment that cannot be built for a command it adds or changes;
3. swapped in whole (`router.deployment.Live`): one reference, so a request sees the old
   catalog or the new one;
4. announced in `[catalog] announce` (or on the console): commands added, changed and
   removed, the commit, its subject and author — or the `path:line: message` errors that
   kept it out. Several opsroom processes sharing a store deploy the same commit each, and
   the first to claim it in the store announces it and writes the audit entry.

Like `app.py` and `bridge.py`, this module wires rooms together.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsroom.catalog.live import FolderCatalog, GitCatalog, Version
from opsroom.catalog.source import GitError, GitSource
from opsroom.config import Settings, resolve_reference
from opsroom.errors import CatalogError, ConfigError, RefusedError, StoreError
from opsroom.model.audit import AuditEvent
from opsroom.model.blocks import Code, Reply, Status, Text
from opsroom.model.catalog import CatalogIssue
from opsroom.model.languages import own_environment
from opsroom.router.deployment import Deployment, Live
from opsroom.tasks import raise_if_cancelled, stop_task

if TYPE_CHECKING:
    from opsroom.catalog.diff import CatalogDiff
    from opsroom.store import Store

log = logging.getLogger("opsroom.catalog")

Announce = Callable[[str, Reply], Awaitable[None]]  # (room, reply)
SHOWN_ERRORS = 20  # errors listed in one rejection; the rest are counted
SYSTEM = "opsroom"  # the principal of updates nobody asked for (poll, webhook, watch)


@dataclass(frozen=True, slots=True)
class Report:
    """What one update did: the reply for whoever asked, and what came of it."""

    reply: Reply
    outcome: str  # deployed | unchanged | rejected | failed
    commit: str | None = None
    fetch_s: float | None = None  # seconds the fetch took (git)
    apply_s: float | None = None  # seconds from fetched (or read) to live or rejected


class Deployer:
    """Keeps `live` serving the newest good version of the catalog."""

    live: Live  # set by `start`, once the first version is loaded

    def __init__(self, settings: Settings, *, label: str) -> None:
        self.settings = settings
        self.label = label  # the repository URL and branch, or the folder
        self.bundled = False  # serving the bundled examples (never watched)
        self.folder: FolderCatalog | None = None
        self.git: GitCatalog | None = None
        self.store: Store | None = None
        self.webhook_secret: bytes | None = None
        self.webhook_error: str | None = None  # why the configured secret cannot be read
        self.announce: Announce | None = None
        self.console: Callable[[str], None] = log.info
        self.fetch_error: str | None = None
        self.fetched_at: datetime | None = None
        self.rejected: tuple[str, int] | None = None  # (commit or "", errors) kept out
        # The commit serving, once its announcement is done (what /healthz reports).
        self.settled: str | None = None
        self._lock = asyncio.Lock()
        self._pending: list[tuple[str, Reply]] = []  # said before anyone could hear it
        self._requested: asyncio.Task[None] | None = None
        self._again = False
        self._releasing: set[asyncio.Future[None]] = set()  # work trees being freed

    # -- start -----------------------------------------------------------------------------

    @classmethod
    async def start(
        cls,
        settings: Settings,
        *,
        catalog_dir: str | None,
        owner: str,
        owner_alive: Callable[[str], bool],
        workdir: Path,
    ) -> Deployer:
        """Load the catalog to serve first: a folder, or the branch of a git repository.

        CatalogError when there is nothing to serve: a missing folder, or a repository that
        was never fetched here and cannot be fetched now.
        """
        from opsroom.catalog.scan import bundled_catalog_path

        cat = settings.catalog
        if cat.git is None or catalog_dir is not None:
            root = Path(catalog_dir or cat.path or bundled_catalog_path()).resolve()
            folder = FolderCatalog(root, cache_dir=_cache_dir(settings))
            version = await asyncio.to_thread(folder.load)
            deployer = cls(settings, label=str(root))
            deployer.live = Live(_deployment(version, str(root)))
            deployer.settled = version.sha
            deployer.folder = folder
            deployer.bundled = root == bundled_catalog_path().resolve()
            return deployer
        try:
            token = resolve_reference(cat.token) if cat.token else None
        except ConfigError as e:
            raise CatalogError(f"[catalog] token: {e}") from None
        secret, secret_error = None, None
        try:
            secret = resolve_reference(cat.webhook_secret) if cat.webhook_secret else None
        except ConfigError as e:
            # Only `serve` answers webhooks: `opsroom run` need not have it. Said at start.
            secret_error = f"[catalog] webhook_secret cannot be read: {e}"
        source = GitSource(
            cat.git,
            cat.branch,
            workdir / ".opsroom" / "catalog",
            owner=owner,
            owner_alive=owner_alive,
            token=token,
            ssh_key=cat.ssh_key.removeprefix("file:") if cat.ssh_key else None,
        )
        git = GitCatalog(source, cache_dir=_cache_dir(settings))
        try:
            await asyncio.to_thread(source.open)
            version, rejected, fetch_error = await _first_commit(git)
        except GitError as e:
            raise CatalogError(f"[catalog] git {cat.git}: {e}") from None
        deployer = cls(settings, label=f"{cat.git} ({cat.branch})")
        deployer.live = Live(_deployment(version, deployer.label, deployer._release))
        deployer.settled = version.sha
        deployer.git = git
        deployer.webhook_secret = secret.encode() if secret is not None else None
        deployer.webhook_error = secret_error
        deployer.fetch_error = fetch_error
        deployer.fetched_at = None if fetch_error else datetime.now(UTC)
        if fetch_error:
            deployer._say(
                Reply((Status(deployer._fetch_warning(fetch_error), "warning"),)), key=None
            )
        if rejected is not None:
            deployer.rejected = (rejected.sha or "", len(rejected.catalog.errors))
            reply = deployer._rejection(rejected, list(rejected.catalog.errors))
            deployer._say(reply, key=deployer._claim_key("reject", rejected))
        elif version.catalog.errors:
            # Nothing better to serve: it serves without its broken scripts, and says so.
            reply = deployer._rejection(version, list(version.catalog.errors))
            deployer._say(reply, key=deployer._claim_key("partial", version))
        return deployer

    # -- wiring ----------------------------------------------------------------------------

    async def attach(
        self, announce: Announce | None, console: Callable[[str], None] | None = None
    ) -> None:
        """Where announcements go from now on; what was said before is delivered now."""
        self.announce = announce
        if console is not None:
            self.console = console
        pending, self._pending = self._pending, []
        for key, reply in pending:
            await self._post(reply, key=key or None)

    @property
    def watches(self) -> bool:
        """A folder catalog of one's own (not the bundled examples) is watched for changes."""
        return self.folder is not None and not self.bundled

    @property
    def polls(self) -> float:
        """Seconds between fetches of a git catalog; 0: webhook (and reload) only."""
        return self.settings.catalog.poll_interval if self.git is not None else 0.0

    async def warm(self) -> None:
        """Prepare a spare work tree for a git catalog (a long-running process does this)."""
        sha = self.live.current.commit
        if self.git is not None and sha is not None:
            try:
                await asyncio.to_thread(self.git.source.add_spare, sha)
            except GitError as e:
                log.warning("could not prepare a spare work tree: %s", e)

    async def idle(self) -> None:
        """Wait until work trees given back are put away (spare or removed)."""
        await asyncio.gather(*self._releasing, return_exceptions=True)

    async def close(self) -> None:
        """Remove this process's work trees."""
        await stop_task(self._requested)
        await self.idle()
        if self.git is not None:
            await asyncio.to_thread(self.git.source.close)

    # -- updates ---------------------------------------------------------------------------

    async def reload(self, principal: str, room: str) -> Reply:
        """`reload`: fetch (git) or re-read (folder) now; the reply says what happened."""
        report = await self.update("reload", principal=principal, room=room, retry=True)
        if self.store is not None:
            with contextlib.suppress(StoreError):
                await self.store.append_audit(
                    AuditEvent(
                        action="catalog.reload",
                        principal=principal,
                        room=room,
                        outcome=report.outcome,
                        catalog_commit=self.live.current.commit,
                    )
                )
        return report.reply

    def request_update(self, trigger: str) -> None:
        """Update soon, in the background (a webhook must be answered at once)."""
        if self._requested is not None and not self._requested.done():
            self._again = True  # one more round after this one: the push may be newer
            return
        self._requested = asyncio.create_task(self._requested_rounds(trigger))

    async def _requested_rounds(self, trigger: str) -> None:
        while True:
            self._again = False
            try:
                await self.update(trigger)
            except Exception:
                raise_if_cancelled()
                log.exception("catalog update failed")
            if not self._again:
                return

    async def poll_forever(self) -> None:
        """Fetch every `poll_interval` seconds."""
        while True:
            await asyncio.sleep(self.polls)
            try:
                await self.update("poll")
            except Exception:
                raise_if_cancelled()
                log.exception("catalog update failed")

    async def watch_forever(self, *, debounce_ms: int = 400) -> None:
        """Re-read the folder when a file in it changes (inotify, through watchfiles)."""
        import watchfiles

        assert self.folder is not None
        async for _changes in watchfiles.awatch(
            self.folder.root, debounce=debounce_ms, step=50, recursive=True
        ):
            try:
                await self.update("file change")
            except Exception:
                log.exception("catalog update failed")

    async def update(
        self, trigger: str, *, principal: str = SYSTEM, room: str = "", retry: bool = False
    ) -> Report:
        """Load the newest version, check it and swap it in (or say why not)."""
        async with self._lock:
            if self.git is not None:
                return await self._update_git(trigger, principal, room, retry)
            return await self._update_folder(trigger, principal, room)

    async def _update_folder(self, trigger: str, principal: str, room: str) -> Report:
        assert self.folder is not None
        try:
            version = await asyncio.to_thread(self.folder.load)
        except CatalogError as e:
            text = f"catalog {self.label} cannot be read: {e}; the previous version keeps serving"
            return await self._failed(text, key=None)
        return await self._consider(version, trigger, principal, room)

    async def _update_git(self, trigger: str, principal: str, room: str, retry: bool) -> Report:
        git = self.git
        assert git is not None
        started = time.perf_counter()
        try:
            sha = await asyncio.to_thread(git.source.fetch)
        except GitError as e:
            first = self.fetch_error is None
            self.fetch_error = str(e)
            text = self._fetch_warning(str(e))
            if first or trigger == "reload":
                return await self._failed(text, key=None)
            return Report(Reply((Status(text, "warning"),)), "failed")
        if self.fetch_error is not None:
            self.console(f"catalog: {self.label} can be fetched again")
        self.fetch_error = None
        self.fetched_at = datetime.now(UTC)
        current = self.live.current
        if sha == current.commit:
            return Report(
                Reply((Text(f"The catalog is up to date: {_describe_current(current)}."),)),
                "unchanged",
                sha,
            )
        if not retry and self.rejected is not None and self.rejected[0] == sha:
            return Report(Reply((Text(f"Commit {sha[:8]} was rejected; see above."),)), "rejected")
        fetched = time.perf_counter()
        try:
            version = await asyncio.to_thread(git.load, sha)
        except GitError as e:
            return await self._failed(f"commit {sha[:8]} cannot be checked out: {e}", key=None)
        report = await self._consider(version, trigger, principal, room)
        done = time.perf_counter()
        log.info(
            "catalog %s: %s (fetch %.2f s, then %.2f s; %d script(s) parsed)",
            sha[:8],
            report.outcome,
            fetched - started,
            done - fetched,
            len(version.parsed),
        )
        return dataclasses.replace(report, fetch_s=fetched - started, apply_s=done - fetched)

    async def _consider(self, version: Version, trigger: str, principal: str, room: str) -> Report:
        """Check `version` against what serves now; swap it in or reject it."""
        current = self.live.current
        known = {(i.path, i.message) for i in current.catalog.errors}
        errors = [i for i in version.catalog.errors if (i.path, i.message) not in known]
        # Off the event loop: comparing 10,000 commands takes a while even when few changed.
        from opsroom.catalog.diff import diff_catalogs  # a new version only: not at start

        diff = await asyncio.to_thread(diff_catalogs, current.catalog, version.catalog)
        if not errors:
            errors = await self._environments(version, diff)
        if errors:
            self._release(version)
            self.rejected = (version.sha or "", len(errors))
            reply = self._rejection(version, errors)
            await self._post(
                reply,
                key=self._claim_key("reject", version),
                audit=self._audit_event("catalog.reject", version, principal, trigger, errors),
                skip_room=room,
            )
            return Report(reply, "rejected", version.sha)
        deployment = await asyncio.to_thread(_deployment, version, self.label, self._release)
        self.live.swap(deployment)
        self.rejected = None
        if version.commit is not None and self.git is not None:
            await asyncio.to_thread(self.git.source.mark_deployed, version.commit.sha)
        if diff.empty and version.sha == current.commit:
            self.settled = version.sha
            text = f"The catalog is unchanged: {_describe_current(deployment)}."
            return Report(Reply((Text(text),)), "unchanged", version.sha)
        reply = self._deployed(version, diff)
        await self._post(
            reply,
            key=self._claim_key("deploy", version),
            audit=self._audit_event("catalog.deploy", version, principal, trigger, diff=diff),
            skip_room=room,
        )
        self.settled = version.sha
        return Report(reply, "deployed", version.sha)

    async def _environments(self, version: Version, diff: CatalogDiff) -> list[CatalogIssue]:
        """Build the PEP 723 environments of added and changed commands; issues for failures."""
        from opsroom.runner.pep723 import ensure_environment, environments_dir

        touched = set(diff.added) | {c.name for c in diff.changed}
        issues: list[CatalogIssue] = []
        built: dict[tuple[tuple[str, ...], str | None], str | None] = {}
        runner = self.settings.runner
        for spec in version.catalog.commands:
            if spec.name not in touched or not own_environment(spec):
                continue
            key = (tuple(sorted(spec.requires)), spec.requires_python)
            if key not in built:
                try:
                    await ensure_environment(
                        spec.requires,
                        spec.requires_python,
                        cache_dir=environments_dir(runner),
                        python=runner.python,
                    )
                    built[key] = None
                except RefusedError as e:
                    built[key] = e.message.splitlines()[0] if e.message else "failed"
            why = built[key]
            if why is not None:
                issues.append(
                    CatalogIssue(spec.path, 1, f"its PEP 723 environment cannot be built: {why}")
                )
        return issues

    # -- what is said ----------------------------------------------------------------------

    def _deployed(self, version: Version, diff: CatalogDiff) -> Reply:
        lines = diff.lines() or ["no command was added, changed or removed"]
        if version.commit is not None:
            c = version.commit
            head = f"catalog deployed: {c.short} “{c.subject}” by {c.author}"
        else:
            head = f"catalog reloaded from {self.label}"
        blocks: list[Status | Text | Code] = [Status(head, "success"), Text("\n".join(lines))]
        web = self.settings.catalog.web_url
        if web and version.commit is not None:
            blocks.append(Text(f"{web}/commit/{version.commit.sha}"))
        return Reply(tuple(blocks), kind="catalog")

    def _rejection(self, version: Version, errors: list[CatalogIssue]) -> Reply:
        n = len(errors)
        what = f"{n} error" if n == 1 else f"{n} errors"
        current = self.live.current
        if version.commit is not None and version.commit.sha == current.commit:
            # At start, with no good commit to fall back on.
            c = version.commit
            head = f"commit {c.short} “{c.subject}” by {c.author} is served without its "
            head += f"broken scripts ({what})"
            shown = tuple(str(e) for e in errors[:SHOWN_ERRORS])
            blocks = (Status(head, "warning"), Code(shown, more=max(0, n - SHOWN_ERRORS)))
            return Reply(blocks, kind="catalog")
        if version.commit is not None:
            c = version.commit
            head = f"commit {c.short} “{c.subject}” by {c.author} was not deployed ({what})"
        else:
            head = f"the change in {self.label} was not loaded ({what})"
        serving = f"; still serving {current.commit[:8]}" if current.commit else ""
        shown = tuple(str(e) for e in errors[:SHOWN_ERRORS])
        return Reply(
            (Status(head + serving, "error"), Code(shown, more=max(0, n - SHOWN_ERRORS))),
            kind="catalog",
        )

    def _fetch_warning(self, why: str) -> str:
        current = self.live.current
        serving = f"; still serving {current.commit[:8]}" if current.commit else ""
        return f"cannot fetch {self.label}: {why}{serving}"

    async def _failed(self, text: str, *, key: str | None) -> Report:
        reply = Reply((Status(text, "warning"),), kind="catalog")
        await self._post(reply, key=key)
        return Report(reply, "failed")

    def _say(self, reply: Reply, *, key: str | None) -> None:
        """Keep something to announce once `attach` says where."""
        self._pending.append((key or "", reply))

    async def _post(
        self,
        reply: Reply,
        *,
        key: str | None,
        audit: AuditEvent | None = None,
        skip_room: str = "",
    ) -> None:
        """Announce `reply` (once across processes when `key` is given) and audit it."""
        if key is not None and self.store is not None:
            try:
                if not await self.store.first_delivery(key):
                    return  # another opsroom process sharing the store said it already
            except StoreError:
                log.exception("could not claim a catalog announcement; announcing anyway")
        if audit is not None and self.store is not None:
            with contextlib.suppress(StoreError):
                await self.store.append_audit(audit)
        room = self.settings.catalog.announce
        if room is None or self.announce is None:
            from opsroom.render.text import render_reply

            for line in render_reply(reply).splitlines():
                self.console(f"catalog: {line}")
            return
        if room == skip_room:
            return  # asked for in that very room: the reply says it
        try:
            await self.announce(room, reply)
        except Exception:
            log.exception("could not announce a catalog change", extra={"room": room})

    def _claim_key(self, what: str, version: Version) -> str:
        if version.commit is not None:
            return f"catalog:{what}:{version.commit.sha}"
        # A folder has no commit: the change is named by the versions before and after it.
        state = json.dumps(
            [
                self.label,
                _digest(self.live.current),
                [(s.name, s.script_hash) for s in version.catalog.commands],
                [str(i) for i in version.catalog.errors],
            ]
        )
        return f"catalog:{what}:" + hashlib.sha256(state.encode()).hexdigest()

    def _audit_event(
        self,
        action: str,
        version: Version,
        principal: str,
        trigger: str,
        errors: list[CatalogIssue] | None = None,
        diff: CatalogDiff | None = None,
    ) -> AuditEvent:
        params: dict[str, Any] = {"catalog": self.label}
        if diff is not None:
            params.update(
                added=list(diff.added),
                changed=[c.name for c in diff.changed],
                removed=list(diff.removed),
            )
        if errors is not None:
            params["errors"] = [str(e) for e in errors[:SHOWN_ERRORS]]
        return AuditEvent(
            action=action,
            principal=principal,
            room=self.settings.catalog.announce or "",
            params=params,
            outcome="deployed" if action == "catalog.deploy" else "rejected",
            reason=trigger,
            catalog_commit=version.sha,
        )

    def status(self) -> dict[str, Any]:
        """For /healthz and the console: what serves, and what went wrong lately."""
        out: dict[str, Any] = {
            "source": "git" if self.git is not None else "folder",
            "commit": self.settled,
        }
        if self.git is not None:
            out["fetched_at"] = self.fetched_at.isoformat() if self.fetched_at else None
            out["fetch_error"] = self.fetch_error
        if self.rejected is not None:
            out["rejected"] = {"commit": self.rejected[0] or None, "errors": self.rejected[1]}
        return out

    def _release(self, version: Version) -> None:
        if version.tree is None or self.git is None:
            return
        source, tree = self.git.source, version.tree
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            source.release(tree)
            return
        future = loop.run_in_executor(None, source.release, tree)
        self._releasing.add(future)
        future.add_done_callback(self._releasing.discard)


def _deployment(
    version: Version, label: str, release: Callable[[Version], None] | None = None
) -> Deployment:
    """A servable deployment of `version` (the registry is built here: ~70 ms at 10,000)."""
    from opsroom.router.builtins import BUILTIN_SPECS
    from opsroom.router.registry import Registry

    return Deployment(
        catalog=version.catalog,
        registry=Registry((*BUILTIN_SPECS, *version.catalog.commands)),
        root=version.root,
        commit=version.sha,
        label=label,
        release=(lambda: release(version)) if release is not None else None,
    )


async def _first_commit(git: GitCatalog) -> tuple[Version, Version | None, str | None]:
    """What to serve at start: the fetched branch if it checks, else the last good commit.

    Returns that version, the fetched version it replaced (rejected) if any, and why
    fetching failed if it did. GitError when nothing was ever fetched here.
    """
    source = git.source
    fetch_error = None
    head: str | None
    try:
        head = await asyncio.to_thread(source.fetch)
    except GitError as e:
        fetch_error = str(e)
        head = await asyncio.to_thread(source.fetched)
        if head is None:
            raise GitError(f"cannot fetch branch {source.branch}: {e}") from None
    version = await asyncio.to_thread(git.load, head)
    rejected = None
    good = await asyncio.to_thread(source.deployed)
    if version.catalog.errors and good is not None and good != head:
        # Nothing serves yet, but a commit that checked before does: that one, not this.
        rejected = version
        if version.tree is not None:
            await asyncio.to_thread(source.release, version.tree)
        version = await asyncio.to_thread(git.load, good)
    if version.commit is not None:
        await asyncio.to_thread(source.mark_deployed, version.commit.sha)
    return version, rejected, fetch_error


def _describe_current(dep: Deployment) -> str:
    commit = f" at {dep.commit[:8]}" if dep.commit else ""
    return f"{len(dep.catalog.commands)} commands from {dep.label}{commit}"


def _digest(dep: Deployment) -> str:
    data = json.dumps([(s.name, s.script_hash) for s in dep.catalog.commands])
    return hashlib.sha256(data.encode()).hexdigest()


def _cache_dir(settings: Settings) -> Path | None:
    """Where parsed scripts are kept between starts (`[catalog] cache`); None: nowhere."""
    cache = settings.catalog.cache
    if cache is False:
        return None
    if cache is True:
        from opsroom.catalog.stored import default_cache_dir

        return default_cache_dir()
    return Path(cache)
