"""Why a connection attempt failed, in words for a person (`explain`), and whether trying
again may help: refused or timed out (retry), a bad address, a missing or wrong token, or a
local server that could not start (stop: trying again changes nothing)."""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass, field
from typing import IO
from urllib.parse import urlsplit

import httpx2
from mcp import StdioServerParameters

from mcp_chat.credentials import redact_url

Target = str | StdioServerParameters
"""A streamable HTTP URL, or how to start a stdio server."""


class Unreachable(Exception):
    """The server cannot be reached, and trying again would not help until the person
    changes something (the address, the store URL, the token). `sentence` says what."""

    def __init__(self, sentence: str) -> None:
        super().__init__(sentence)
        self.sentence = sentence


@dataclass(frozen=True, slots=True)
class Trouble:
    """Why a connection attempt failed, in words for a person, and whether another attempt
    may succeed."""

    sentence: str
    retry: bool


@dataclass
class Attempt:
    """What one connection attempt saw, to explain its failure: the HTTP statuses answered
    (each with whether the request named a session), the stdio server's stderr, and whether
    the session was set up."""

    responses: list[tuple[int, bool]] = field(default_factory=list)
    stderr: str = ""
    """The last line the stdio server wrote to stderr (its error, if it stopped)."""
    connected: bool = False


def check_url(url: str) -> None:
    """Raise Unreachable unless `url` could be a server's address (http or https, a host)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Unreachable(
            f"'{redact_url(url)}' is not a server address: it needs http:// or https:// and a "
            "host, e.g. http://127.0.0.1:8000/mcp. Not trying to connect."
        )


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc`, the exceptions grouped in it, and their causes and contexts, depth first."""
    found: list[BaseException] = []
    pending = [exc]
    while pending:
        current = pending.pop()
        if any(current is seen for seen in found):
            continue
        found.append(current)
        if isinstance(current, BaseExceptionGroup):
            pending.extend(reversed(current.exceptions))
        # The context too, even when suppressed: anyio, say, raises "All connection attempts
        # failed" over the refusal that says why.
        pending.extend(e for e in (current.__context__, current.__cause__) if e is not None)
    return found


def last_line(errlog: IO[str]) -> str:
    """The last line written to `errlog`."""
    errlog.flush()
    errlog.seek(0)
    lines = [line.strip() for line in errlog.read().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def explain(
    target: Target, exc: BaseException, attempt: Attempt, token_given: bool = False
) -> Trouble:
    """Why a connection attempt failed, for a person: refused (try again), not found, a bad
    address, a missing or wrong token, or a bad store URL (stop: trying again changes
    nothing)."""
    if isinstance(target, StdioServerParameters):
        line = attempt.stderr.removeprefix("mcp-chat: ")  # the command's own one-line error
        if not attempt.connected:
            why = line or "it stopped without saying why"
            return Trouble(f"The local chat server could not start: {why}", retry=False)
        return Trouble(f"the local chat server stopped{': ' + line if line else ''}", True)
    parts = urlsplit(target)
    where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    for status, named_session in attempt.responses:
        if status == 401 and token_given:
            return Trouble(
                f"The server at {where} did not accept the access token (401 Unauthorized): "
                "check --auth-token, --auth-token-file or MCP_CHAT_AUTH_TOKEN.",
                retry=False,
            )
        if status == 401:
            return Trouble(
                f"The server at {where} needs an access token (401 Unauthorized): give it "
                "with MCP_CHAT_AUTH_TOKEN, --auth-token-file or --auth-token.",
                retry=False,
            )
        if status == 404 and not named_session:
            return Trouble(
                f"Nothing answers at {redact_url(target)} (404 Not Found): check the path; "
                "mcp-chat serves MCP at /mcp.",
                retry=False,
            )
        if status in (403, 421):
            return Trouble(
                f"The server at {where} refused this client (HTTP {status}): it does not serve "
                "this address; check the host name in --url.",
                retry=False,
            )
    chain = _chain(exc)  # the most telling cause first, wherever it is in the chain
    if lookup := next((i for i in chain if isinstance(i, socket.gaierror)), None):
        if lookup.errno == socket.EAI_NONAME:
            return Trouble(f"The host name '{parts.hostname}' is not known.", retry=False)
        return Trouble(f"cannot look up the host name '{parts.hostname}' ({lookup})", retry=True)
    if any(isinstance(inner, OSError) and inner.errno == errno.ECONNREFUSED for inner in chain):
        return Trouble(f"nothing is listening at {where} (connection refused)", retry=True)
    if any(isinstance(inner, httpx2.TimeoutException) for inner in chain):
        return Trouble(f"{where} does not answer (timed out)", retry=True)
    if connect := next((i for i in chain if isinstance(i, httpx2.ConnectError)), None):
        return Trouble(f"cannot reach {where} ({connect})", retry=True)
    failed = [status for status, _ in attempt.responses if status >= 400]
    if failed:
        return Trouble(f"the server answered HTTP {failed[-1]}", retry=True)
    return Trouble("the connection broke", retry=True)
