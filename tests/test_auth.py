"""The bearer-token check, alone."""

from __future__ import annotations

import pytest

from mcp_chat.auth import BearerTokens

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
