"""The web chat as a chat adapter: rooms `web:<name>`, people `web:<username>`.

The adapter never imports the web app: `opsroom serve` hands it the room hub as a
`Publisher`, and the web app feeds it what people post (`WebChatAdapter.post`).
"""

from __future__ import annotations

from opsroom.adapters.plugin import AdapterPlugin
from opsroom.adapters.web.adapter import Published, Publisher, WebChatAdapter

__all__ = ["Published", "Publisher", "WebChatAdapter", "plugin"]

# No `[adapters.web]` table: `opsroom serve` starts the web chat with the web app.
plugin = AdapterPlugin(
    name="web",
    settings=None,
    about="the web chat needs no adapter table: it runs under `opsroom serve` ([web])",
)
