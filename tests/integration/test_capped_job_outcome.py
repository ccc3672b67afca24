"""A job that hits the output cap still tells its outcome, in the web chat and on Slack.

Both platforms edit one status message per job; the bridge recognises the job's last reply
by the outcome at its end. The real engine runs a real script that prints past
`[runner] output_cap`; the message people finally see must end with the outcome, and its
"N more lines — full log" must count every line not shown and point to the job's page.
"""

from __future__ import annotations

import asyncio
import re
import textwrap
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from adapters.fake_slack import BOT_USER, FakeSlack
from adapters.slack_support import ALICE, CHANNEL, make_adapter
from opsroom.adapters.web import WebChatAdapter
from opsroom.config import Settings
from opsroom.engine.bridge import Bridge
from opsroom.model.messages import Inbound
from opsroom.testing import Bot
from opsroom.web.hub import Hub

LINES = 200
SCRIPT = textwrap.dedent(
    f'''\
    """Print more than the output cap keeps."""


    def main() -> None:
        """Flood a little."""
        for i in range({LINES}):
            print(f"line {{i:03d}} " + "x" * 30)
    '''
)
BASE_URL = "https://ops.example.org/"
CAP_WARNING = f"the stored log of job 1 stopped at the 1,024-byte cap; {LINES} lines were printed"
OUTCOME = re.compile(r"job 1 cap flood: succeeded in \d+(\.\d+)?s")


def _catalog(tmp: Path) -> Path:
    root = tmp / "catalog"
    (root / "cap").mkdir(parents=True)
    (root / "cap" / "flood.py").write_text(SCRIPT)
    return root


def _settings(tmp: Path, **more: Any) -> Settings:
    return Settings.model_validate(
        {
            "store": {"url": f"sqlite:///{tmp}/opsroom.db"},
            "runner": {"output_cap": 1024},
            "web": {"base_url": BASE_URL},
            **more,
        }
    )


def _shown(events: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The room as the page shows it: an edit replaces the message it names."""
    shown: dict[int, Mapping[str, Any]] = {}
    for event in events:
        shown[int(event.get("replaces", 0)) or len(shown) + 1_000_000] = event
    return list(shown.values())


async def test_web_chat_shows_the_outcome_of_a_capped_job_last(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    async with Bot.open(
        catalog_dir=str(_catalog(tmp_path)), store_url=settings.store.url, settings=settings
    ) as bot:
        adapter = WebChatAdapter(Hub(bot.app.store))
        bridge = Bridge(adapter, bot.app.dispatcher)
        inbound = Inbound(text="!cap flood", principal="local:alice", room="web:ops", direct=True)
        outcome = await bridge.handle(inbound)
        assert outcome is not None
        assert outcome.job_id == 1
        events = [{**m.payload, "seq": m.seq} for m in await bot.app.store.web_messages("web:ops")]
    (job_message,) = [e for e in _shown(events) if e.get("job_id") == 1]
    code, warning, last = job_message["blocks"]
    assert code["type"] == "code"
    assert code["lines"] == [f"line {i:03d} " + "x" * 30 for i in range(LINES - 15, LINES)]
    assert code["more"] == LINES - 15
    assert code["link"] == "https://ops.example.org/jobs/1"
    assert warning == {"type": "status", "text": CAP_WARNING, "level": "warning"}
    assert last["type"] == "status"
    assert last["level"] == "success"
    assert OUTCOME.fullmatch(last["text"]), last["text"]


async def test_slack_shows_the_outcome_of_a_capped_job_last(tmp_path: Path) -> None:
    fake = await FakeSlack.start()
    roles = [{"name": "ops", "members": [f"slack:{ALICE}"], "allow": ["*"]}]
    settings = _settings(tmp_path, roles=roles)
    try:
        async with Bot.open(
            catalog_dir=str(_catalog(tmp_path)), store_url=settings.store.url, settings=settings
        ) as bot:
            adapter = make_adapter(fake, settings)
            bridge = Bridge(adapter, bot.app.dispatcher)
            task = asyncio.create_task(bridge.run())
            try:
                await fake.wait_connected()
                asked = await fake.say(CHANNEL, ALICE, "!cap flood")
                job = await _job_ended(bot)
                assert job.state.value == "succeeded"
                message = await _settled_reply(fake, asked)
            finally:
                task.cancel()
                await bridge.close()
    finally:
        await fake.stop()
    texts = [_block_text(b) for b in message.blocks]
    assert texts[0] == (f"… {LINES - 15} more lines — <https://ops.example.org/jobs/1|full log>")
    assert texts[1].startswith("```\nline 185 ")
    assert texts[2] == f":warning: {CAP_WARNING}"
    assert texts[3].startswith(":white_check_mark: ")
    assert OUTCOME.fullmatch(texts[3].removeprefix(":white_check_mark: ")), texts[3]
    assert len(texts) == 4


async def _job_ended(bot: Bot) -> Any:
    deadline = time.monotonic() + 30
    while True:
        job = await bot.app.store.get_job(1)
        if job is not None and job.state.finished:
            return job
        assert time.monotonic() < deadline, "the job did not end"
        await asyncio.sleep(0.05)


async def _settled_reply(fake: FakeSlack, asked: str) -> Any:
    """The bot's job message in the thread once the final reply has reached Slack."""
    deadline = time.monotonic() + 20
    while True:
        replies = [m for m in fake.messages(CHANNEL) if m.user == BOT_USER and m.thread_ts == asked]
        # The final reply is delivered right after the job ends, by a post or an edit;
        # the cap warning is part of it whichever way the bridge read it.
        if replies and "stopped at the 1,024-byte cap" in replies[-1].visible:
            return replies[-1]
        assert time.monotonic() < deadline, f"no final reply; saw {[m.visible for m in replies]}"
        await asyncio.sleep(0.05)


def _block_text(block: Mapping[str, Any]) -> str:
    if block["type"] == "context":
        return " ".join(str(e["text"]) for e in block["elements"])
    return str(block["text"]["text"])
