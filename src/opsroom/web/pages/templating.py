"""One Jinja2 environment for every page; `render` adds what base.html needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from opsroom.web.auth import CSRF_FIELD, CSRF_HEADER, Identity

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
templates = Jinja2Templates(directory=str(TEMPLATES))


def render(
    request: Request,
    name: str,
    user: Identity | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> Response:
    """Render a template with the user, their CSRF token and the field/header names."""
    csrf = user.csrf if user is not None else context.pop("csrf", "")
    return templates.TemplateResponse(
        request,
        name,
        {
            "user": user,
            "csrf": csrf,
            "csrf_field": CSRF_FIELD,
            "csrf_header": CSRF_HEADER,
            **context,
        },
        status_code=status_code,
    )
