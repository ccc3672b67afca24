"""The web chat as a chat adapter: rooms `web:<name>`, people `web:<username>`.

The adapter never imports the web app: `opsroom serve` hands it the room hub as a
`Publisher`, and the web app feeds it what people post (`WebChatAdapter.post`).
"""

from __future__ import annotations

from opsroom.adapters.web.adapter import Published, Publisher, WebChatAdapter

__all__ = ["Published", "Publisher", "WebChatAdapter"]
