"""People in a Matrix room run commands through the real engine, on a real Synapse."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from adapters.contract import Seen
from adapters.matrix_support import Person
from adapters.synapse import Synapse, synapse  # noqa: F401  (the session's homeserver)
from adapters.test_matrix_contract import bot_settings, wait_joined
from opsroom.adapters.base import ConnectionState
from opsroom.adapters.matrix.transport import MatrixAdapter
from opsroom.catalog.scan import bundled_catalog_path
from opsroom.config import Settings
from opsroom.engine.bridge import Bridge
from opsroom.testing import Bot
from support import async_wait_for

JOBS_CATALOG = Path(__file__).parent.parent / "fixtures" / "jobs_catalog"
SETTINGS = Settings.model_validate(
    {
        "roles": [{"name": "ops", "members": ["matrix:@alice:localhost"], "allow": ["*"]}],
        "runner": {"foreground_seconds": 1},
    }
)


def state_of(adapter: MatrixAdapter) -> ConnectionState:
    """The adapter's connection state now (a call, so checks before and after compare)."""
    return adapter.state


@dataclass
class Room:
    """A room with alice, mallory and the bot, which runs on the real engine."""

    server: Synapse
    room_id: str
    alice: Person
    mallory: Person
    adapter: MatrixAdapter
    ops: str

    async def replies_to(
        self, request: str, done: Callable[[list[Seen]], bool], timeout: float = 30.0
    ) -> list[Seen]:
        """The bot's messages in the thread of `request`, once `done(them)` holds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            seen = await self.alice.seen(self.room_id)
            mine = [s for s in seen if s.sender == self.ops and s.thread_id == request]
            if done(mine):
                return mine
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no such reply in time; the thread shows {mine}")
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def room_with_bot(server: Synapse, catalog: Path, tmp_path: Path) -> AsyncIterator[Room]:
    """Open the engine on `catalog`, connect the bot and seat alice and mallory with it."""
    alice = await Person.login(server, "alice")
    mallory = await Person.login(server, "mallory")
    store = f"sqlite:///{tmp_path}/opsroom.db"
    async with Bot.open(catalog_dir=str(catalog), store_url=store, settings=SETTINGS) as bot:
        adapter = MatrixAdapter(bot_settings(server), password="ops-pw")
        bridge = Bridge(adapter, bot.app.dispatcher)
        task = asyncio.create_task(bridge.run())
        try:
            room_id = await alice.create_room(server.mxid("ops"), mallory.mxid)
            await mallory.join(room_id)
            await wait_joined(alice, room_id, server.mxid("ops"))
            yield Room(server, room_id, alice, mallory, adapter, server.mxid("ops"))
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await bridge.close()
            await alice.close()
            await mallory.close()


async def test_help_and_a_command_are_answered_in_a_thread(
    synapse: Synapse,  # noqa: F811
    tmp_path: Path,
) -> None:
    async with room_with_bot(synapse, bundled_catalog_path(), tmp_path) as room:
        asked = await room.alice.say(room.room_id, "!help")
        help_ = await room.replies_to(asked, lambda m: any("store status" in s.text for s in m))
        assert help_, "help lists the catalog's commands, in the thread of the request"

        asked = await room.alice.say(room.room_id, "!store status 42")
        done = await room.replies_to(asked, lambda m: any("succeeded" in s.text for s in m))
        shown = "\n".join(s.text for s in done)
        assert "store-0042-pin01" in shown, "the table of the script's output is shown"
        events = await room.alice.events(room.room_id)
        html = [
            e["content"].get("m.new_content", e["content"]).get("formatted_body", "")
            for e in events
            if e["sender"] == room.ops
        ]
        assert any("<td>store-0042-pin01</td>" in h for h in html), "a real HTML table"


async def test_live_output_is_edited_into_one_status_message(
    synapse: Synapse,  # noqa: F811
    tmp_path: Path,
) -> None:
    async with room_with_bot(synapse, JOBS_CATALOG, tmp_path) as room:
        asked = await room.alice.say(room.room_id, "!slow ticker --count 20")
        done = await room.replies_to(
            asked, lambda m: any("slow ticker: succeeded" in s.text for s in m)
        )
        final = next(s for s in done if "slow ticker: succeeded" in s.text)
        assert final.edited, "the outcome replaced the running status in place"
        assert "tick 20" in final.text
        events = await room.alice.events(room.room_id)
        edits = [
            e
            for e in events
            if e["content"].get("m.relates_to", {}).get("rel_type") == "m.replace"
            and e["content"]["m.relates_to"]["event_id"] == final.id
        ]
        assert len(edits) >= 2, "output was shown while the job ran, then the outcome"
        assert any("succeeded" not in e["content"]["m.new_content"]["body"] for e in edits)
        assert len([s for s in done if "job 1" in s.text]) == 1, "one status message per job"


async def test_a_display_name_does_not_borrow_permissions(
    synapse: Synapse,  # noqa: F811
    tmp_path: Path,
) -> None:
    async with room_with_bot(synapse, bundled_catalog_path(), tmp_path) as room:
        await room.alice.set_display_name("Alice Admin")
        for disguise in ("Alice Admin", "@alice:localhost", "alice"):
            await room.mallory.set_display_name(disguise)
            asked = await room.mallory.say(room.room_id, "!store status 42")
            replies = await room.replies_to(asked, lambda m: bool(m))
            shown = "\n".join(s.text for s in replies)
            assert "denied" in shown, shown
            assert "matrix:@mallory:localhost" in shown, "refused as who she is"
            assert "store-0042-pin01" not in shown
        await room.mallory.set_display_name("mallory")
        await room.alice.set_display_name("alice")


async def test_a_job_survives_the_homeserver_restarting(
    synapse: Synapse,  # noqa: F811
    tmp_path: Path,
) -> None:
    async with room_with_bot(synapse, JOBS_CATALOG, tmp_path) as room:
        asked = await room.alice.say(room.room_id, "!slow ticker --count 20")
        await room.replies_to(asked, lambda m: any("job 1" in s.text for s in m))
        await asyncio.to_thread(synapse.stop)
        try:
            await async_wait_for(
                lambda: state_of(room.adapter) is ConnectionState.DISCONNECTED,
                30,
                what="the adapter to notice the homeserver is gone",
            )
        finally:
            await asyncio.to_thread(synapse.start)
        done = await room.replies_to(
            asked, lambda m: any("slow ticker: succeeded" in s.text for s in m), timeout=60
        )
        assert state_of(room.adapter) is ConnectionState.CONNECTED
        assert len([s for s in done if "slow ticker: succeeded" in s.text]) == 1
        final = next(s for s in done if "slow ticker: succeeded" in s.text)
        assert "tick 20" in final.text, "the job ran to its end while Matrix was away"
        assert len([s for s in done if "job 1" in s.text]) == 1, "nothing was posted twice"
