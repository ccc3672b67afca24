"""GET /api/v1/me: who the caller is."""

from __future__ import annotations

from fastapi import APIRouter

from opsroom.web.api.models import Me
from opsroom.web.auth import ApiUser

router = APIRouter(tags=["me"])


@router.get("/me", response_model=Me)
async def me(user: ApiUser) -> Me:
    """The caller, and the CSRF token cookie-authenticated changes must send."""
    return Me(
        username=user.username,
        principal=user.principal,
        admin=user.admin,
        via=user.via,
        csrf_token=user.csrf,
    )
