"""The bearer-token check, alone."""

from __future__ import annotations

import pytest
from fastmcp.server.auth import AccessToken
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from starlette.authentication import AuthCredentials, UnauthenticatedUser
from starlette.types import Scope

from mcp_chat.auth import BearerTokens, token_passed

pytestmark = pytest.mark.anyio


async def test_only_listed_tokens_pass_and_none_is_kept() -> None:
    verifier = BearerTokens(["alpha-token", "beta-token"])
    for good in ("alpha-token", "beta-token"):
        access = await verifier.verify_token(good)
        assert access is not None and access.token == ""
    for bad in ("", "alpha", "alpha-token ", "ALPHA-TOKEN", "\udcff"):
        assert await verifier.verify_token(bad) is None
    assert "alpha-token" not in repr(vars(verifier))


def test_an_empty_token_list_is_a_mistake() -> None:
    with pytest.raises(ValueError):
        BearerTokens([])


def test_a_request_passes_only_with_an_accepted_token_and_its_scopes() -> None:
    """The one check both roads on /mcp, and the page's endpoints, make of a request."""
    accepted = AuthenticatedUser(AccessToken(token="", client_id="bearer", scopes=["chat"]))
    passed: Scope = {"user": accepted, "auth": AuthCredentials(["chat"])}
    assert token_passed(passed) and token_passed(passed, ("chat",))
    assert not token_passed(passed, ("chat", "admin"))
    refused: Scope = {"user": UnauthenticatedUser(), "auth": AuthCredentials()}
    assert not token_passed(refused)
    assert not token_passed({})  # (no authentication middleware ran)
