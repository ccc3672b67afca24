"""The web console and web chat (SPEC §9): a FastAPI app over the dispatcher and the store.

`create_app` (in `app.py`) builds the ASGI app; `server.serve` runs it with the engine.
The web package never starts a child process: jobs go through the dispatcher.
"""
