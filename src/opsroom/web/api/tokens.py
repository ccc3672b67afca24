"""API tokens for scripts: created by an admin, shown once, stored only as a hash."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from opsroom.web.api.deps import Ctx
from opsroom.web.api.models import Problem, TokenCreated, TokenIn, TokenOut
from opsroom.web.auth import AdminUser, ApiUser
from opsroom.web.passwords import new_token, token_hash

router = APIRouter(tags=["tokens"])
TOKEN_PREFIX = "opsr_"  # noqa: S105 (a prefix, not a secret): recognisable in secret scanners and leaked logs


@router.post(
    "/tokens", status_code=201, response_model=TokenCreated, responses={403: {"model": Problem}}
)
async def create_token(body: TokenIn, ctx: Ctx, admin: AdminUser) -> TokenCreated:
    """A new API token for `username` (default: the caller); its value is shown only now."""
    username = (body.username or admin.username).strip().lower()
    if await ctx.store.web_user(username) is None:
        raise HTTPException(422, f"there is no web account {username!r}")
    token = new_token(TOKEN_PREFIX)
    made = await ctx.store.add_api_token(
        name=body.name, username=username, token_hash=token_hash(token)
    )
    return TokenCreated(
        id=made.id,
        name=made.name,
        username=made.username,
        created_at=made.created_at,
        last_used_at=None,
        token=token,
    )


@router.get("/tokens", response_model=list[TokenOut])
async def list_tokens(ctx: Ctx, user: ApiUser) -> list[TokenOut]:
    """API tokens (an admin sees all, others their own); never their values."""
    tokens = await ctx.store.api_tokens(username=None if user.admin else user.username)
    return [
        TokenOut(
            id=t.id,
            name=t.name,
            username=t.username,
            created_at=t.created_at,
            last_used_at=t.last_used_at,
        )
        for t in tokens
    ]


@router.delete("/tokens/{token_id}", status_code=204, responses={404: {"model": Problem}})
async def revoke_token(token_id: int, ctx: Ctx, user: ApiUser) -> None:
    """Revoke a token (an admin any, others their own)."""
    found = 0 < token_id < 2**31 and await ctx.store.drop_api_token(
        token_id, username=None if user.admin else user.username
    )
    if not found:
        raise HTTPException(404, f"there is no token {token_id}")
