"""Bearer tokens for HTTP: where they come from, and a constant-time check of each request."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from fastmcp.server.auth import AccessToken, TokenVerifier
from starlette.authentication import BaseUser
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_chat.errors import StartupError

GUARDED_PATHS = ("/api/", "/metrics")
"""Besides /mcp (which FastMCP guards): the page's endpoints and the metrics. The page itself
(/ and /static/) holds no data and stays open, so that it can ask for the token."""


def load_tokens(token: str | None, token_file: Path | None) -> list[str]:
    """The tokens that open the server: `token`, plus one per non-blank line of `token_file`
    (lines starting with # are comments). An empty list means no auth."""
    tokens = [token.strip()] if token and token.strip() else []
    if token_file is not None:
        try:
            text = token_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise StartupError(
                f"cannot read the token file {token_file} ({exc}): give a readable UTF-8 file "
                "of tokens, one per line, with --auth-token-file."
            ) from None
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                tokens.append(line)
    return tokens


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class BearerTokens(TokenVerifier):
    """Accepts a request whose `Authorization: Bearer` token is one of a fixed set.

    Only hashes are kept, and every one is compared (in constant time) on every request, so
    neither the answer's timing nor a memory dump gives a token away."""

    def __init__(self, tokens: list[str]) -> None:
        if not tokens:
            raise ValueError("BearerTokens needs at least one token")
        super().__init__()
        self._digests = [_digest(t) for t in tokens]

    async def verify_token(self, token: str) -> AccessToken | None:
        given = _digest(token)
        found = False
        for digest in self._digests:
            found |= hmac.compare_digest(digest, given)
        if not found:
            return None
        # The token itself is not kept on the request: nothing downstream can log it.
        return AccessToken(token="", client_id="bearer", scopes=[])


def token_passed(scope: Scope, required_scopes: tuple[str, ...] = ()) -> bool:
    """FastMCP's authentication middleware, which runs first, accepted the request's bearer
    token, and the token carries `required_scopes`: the one check of a request's token, for
    the paths FastMCP does not guard (`RequireToken`) and for the short road on /mcp
    (`mcp.fastcalls`), whose refusals it leaves to FastMCP."""
    user, credentials = scope.get("user"), scope.get("auth")
    if not (isinstance(user, BaseUser) and user.is_authenticated) or credentials is None:
        return False
    return all(s in credentials.scopes for s in required_scopes)


class RequireToken:
    """Refuses a request to one of `paths` unless FastMCP's authentication middleware, which
    runs first, accepted its bearer token."""

    def __init__(self, app: ASGIApp, paths: tuple[str, ...]) -> None:
        self.app, self.paths = app, paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        guarded = scope["type"] == "http" and scope["path"].startswith(self.paths)
        if guarded and not token_passed(scope):
            refusal = JSONResponse(
                {
                    "success": False,
                    "error": "This server needs a token: send Authorization: Bearer <token>.",
                    "code": "unauthorized",
                },
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)
