"""Server-rendered HTML pages (Jinja2 + htmx).

To add a page: write a module here with `router = APIRouter(...)`, list it in `PAGES`,
take a `PageUser` parameter (login required; CSRF checked on POST), and answer with
`render(request, "<template>.html", user, ...)`. Templates extend `base.html`.
"""

from __future__ import annotations

import importlib

from fastapi import APIRouter

PAGES = (
    "login",
    "index",
    "chat",
    "jobs",
    "catalog",
    "approvals",
    "audit",
    "insights",
    "schedules",
    "workers",
)


def page_router() -> APIRouter:
    """Every page router."""
    pages = APIRouter(include_in_schema=False)
    for name in PAGES:
        pages.include_router(importlib.import_module(f"{__name__}.{name}").router)
    return pages
