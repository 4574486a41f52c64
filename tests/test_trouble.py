"""The terminal client's words for a failed connection (`tui.trouble`), without a server."""

from __future__ import annotations

import errno

import pytest
from mcp import StdioServerParameters

from mcp_chat.tui.trouble import Attempt, Unreachable, check_url, explain

URL = "http://127.0.0.1:8000/mcp"


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/mcp", "127.0.0.1:8000", "http:///mcp"])
def test_what_is_no_server_address_is_not_tried(url: str) -> None:
    with pytest.raises(Unreachable) as bad:
        check_url(url)
    assert "is not a server address" in bad.value.sentence


def test_a_server_address_passes() -> None:
    check_url(URL)
    check_url("https://chat.example/mcp")


@pytest.mark.parametrize(
    ("status", "token", "words"),
    [
        (401, True, "did not accept the access token"),
        (401, False, "needs an access token"),
        (404, False, "Nothing answers at"),
        (421, False, "refused this client"),
    ],
)
def test_an_answer_that_says_no_is_not_retried(status: int, token: bool, words: str) -> None:
    trouble = explain(URL, RuntimeError("x"), Attempt(responses=[(status, False)]), token)
    assert words in trouble.sentence and not trouble.retry


def test_a_refused_connection_deep_in_the_chain_is_retried() -> None:
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    try:
        try:
            raise refused
        except OSError as exc:
            raise ExceptionGroup(
                "attempts", [RuntimeError("All connection attempts failed")]
            ) from exc
    except ExceptionGroup as group:
        trouble = explain(URL, group, Attempt())
    assert trouble.sentence == "nothing is listening at 127.0.0.1:8000 (connection refused)"
    assert trouble.retry


def test_a_local_server_that_could_not_start_says_why_once() -> None:
    target = StdioServerParameters(command="python")
    attempt = Attempt(stderr="mcp-chat: the store URL is not valid")
    trouble = explain(target, RuntimeError("closed"), attempt)
    assert trouble.sentence == "The local chat server could not start: the store URL is not valid"
    assert not trouble.retry
    attempt.connected = True
    assert explain(target, RuntimeError("closed"), attempt).retry
