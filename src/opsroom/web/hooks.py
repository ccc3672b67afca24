"""`POST /hooks/git`: a push to the catalog's repository makes opsroom fetch now (SPEC §10).

GitHub signs the body (`X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body>`), GitLab
sends the shared secret itself (`X-Gitlab-Token`); both are compared in constant time with
`[catalog] webhook_secret`. A missing or wrong one gets 401 and nothing is fetched, and so
does every call while no secret is configured. A push to another branch, a tag or another
event is acknowledged and ignored. The fetch runs in the background: the platform gets its
answer at once, and a redelivered or concurrent push costs one more fetch at most.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from opsroom.web.context import WebContext

router = APIRouter(include_in_schema=False)


def signature_ok(headers: Any, body: bytes, secret: bytes) -> bool:
    """GitHub's HMAC or GitLab's token, whichever the request carries, checked in full."""
    github = headers.get("x-hub-signature-256")
    if github is not None:
        expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(github.strip().encode(), expected.encode())
    gitlab = headers.get("x-gitlab-token")
    if gitlab is not None:
        return hmac.compare_digest(gitlab.encode(), secret)
    return False


def _payload(body: bytes, content_type: str) -> dict[str, Any] | None:
    """The push event: JSON, or GitHub's form encoding (`payload=<JSON>`)."""
    try:
        if content_type.startswith("application/x-www-form-urlencoded"):
            text = parse_qs(body.decode("utf-8")).get("payload", [""])[0]
        else:
            text = body.decode("utf-8")
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _answer(code: int, **body: str) -> JSONResponse:
    return JSONResponse(body, status_code=code)


@router.post("/hooks/git")
async def git_hook(request: Request) -> JSONResponse:
    """Verify the caller, then fetch the branch in the background if it was pushed to."""
    ctx: WebContext = request.app.state.ctx
    deployer = ctx.engine.deployer
    if deployer.git is None:
        return _answer(404, error="this opsroom has no [catalog] git")
    if deployer.webhook_secret is None:
        why = deployer.webhook_error or "[catalog] webhook_secret is not set"
        return _answer(401, error=f"{why}: webhooks are refused")
    body = await request.body()
    if not signature_ok(request.headers, body, deployer.webhook_secret):
        return _answer(401, error="missing or wrong webhook signature; nothing was fetched")
    if not ctx.accepting:
        return _answer(503, error="shutting down")
    event = request.headers.get("x-github-event") or request.headers.get("x-gitlab-event") or ""
    if event == "ping":
        return _answer(200, status="pong")
    payload = _payload(body, request.headers.get("content-type", ""))
    if payload is None:
        return _answer(400, error="the body is not a push event (JSON)")
    branch = deployer.settings.catalog.branch
    ref = payload.get("ref")
    if ref != f"refs/heads/{branch}":
        shown = ref[:200] if isinstance(ref, str) else "no ref"
        return _answer(202, status="ignored", reason=f"{shown} is not refs/heads/{branch}")
    deployer.request_update("webhook")
    return _answer(202, status="accepted")
