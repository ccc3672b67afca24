"""The JSON API under /api/v1 (SPEC §9); every route needs a session or an API token.

To add endpoints: write a module here with a module-level `router = APIRouter(...)` and
list it in `ROUTERS`. Authentication (and CSRF for cookie requests) is applied to the
whole prefix; routes that need the caller take an `ApiUser` (or `AdminUser`) parameter.
"""

from __future__ import annotations

import importlib

from fastapi import APIRouter, Depends

from opsroom.web.auth import api_identity

PREFIX = "/api/v1"
ROUTERS = (
    "me",
    "messages",
    "rooms",
    "jobs",
    "catalog",
    "tokens",
    "menus",
    "approvals",
    "audit",
    "insights",
    "adapters",
    "schedules",
    "workers",
)


def api_router() -> APIRouter:
    """All API routers under /api/v1, behind login."""
    api = APIRouter(prefix=PREFIX, dependencies=[Depends(api_identity)])
    for name in ROUTERS:
        module = importlib.import_module(f"{__name__}.{name}")
        api.include_router(module.router)
    return api
