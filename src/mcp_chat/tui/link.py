"""The client's line to the server: one MCP session at a time, remade with backoff when it
breaks, resuming from the read position so nothing is missed or delivered twice."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from mcp_chat.tui.trouble import (
    Attempt,
    Target,
    Trouble,
    Unreachable,
    check_url,
    explain,
    last_line,
)

log = logging.getLogger(__name__)

Message = dict[str, Any]
"""A message as wait_for_message and get_messages return it."""

WAIT_SECONDS = 25.0
"""How long one wait_for_message blocks; under the usual 60 s request timeout."""


class Refused(Exception):
    """The server answered, and said no (e.g. the room is full): retrying will not help."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result.get("error") or "The server refused.")
        self.code: str = result.get("code") or ""
        self.sentence: str = str(self)


class _ConnectionLost(Exception):
    """The session broke; the link reconnects and carries on."""


@dataclass(frozen=True, slots=True)
class Seat:
    """Where and as whom: the server, the room (None: the random queue, with `interests`),
    the name, and for a new room its size and invite (which makes it private; a private room
    needs its invite to enter)."""

    target: Target
    room_id: str | None
    display_name: str
    capacity: int | None = None
    invite: str | None = None
    interests: tuple[str, ...] = ()
    token: str | None = field(default=None, repr=False)
    """The HTTP server's access token (sent as a bearer token); never shown."""


@dataclass
class _Request:
    tool: str
    args: dict[str, Any]
    action: Callable[[Client], Awaitable[dict[str, Any]]] | None = None
    """Instead of calling `tool`: several calls on one session."""
    done: asyncio.Future[dict[str, Any]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


def stdio_target(store_url: str) -> StdioServerParameters:
    """A stdio server of our own, on `store_url`, run by this Python. Without channel pushes:
    the window reads with wait_for_message, and a push would take its messages from it."""
    return StdioServerParameters(
        command=sys.executable,
        args=[
            *("-m", "mcp_chat", "stdio", "--store", store_url),
            *("--log-level", "warning", "--channel", "off"),
        ],
        env={**os.environ},
    )


@contextlib.asynccontextmanager
async def _connect(target: Target, attempt: Attempt, token: str | None) -> AsyncIterator[Client]:
    if isinstance(target, str):
        http = create_mcp_http_client({"Authorization": f"Bearer {token}"} if token else None)

        async def note(response: httpx2.Response) -> None:
            named = "mcp-session-id" in response.request.headers
            attempt.responses.append((response.status_code, named))

        http.event_hooks = {"response": [note]}
        async with http, Client(streamable_http_client(target, http_client=http)) as client:
            yield client
    else:
        # The server's stderr would land on the terminal the app draws on: it goes to a file
        # instead, whose last line says why the server stopped, if it did.
        with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as errlog:
            try:
                async with Client(stdio_client(target, errlog=errlog)) as client:
                    yield client
            finally:
                attempt.stderr = last_line(errlog)


def _refusal(exc: BaseException) -> Refused | None:
    if isinstance(exc, Refused):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if found := _refusal(inner):
                return found
    return None


class ChatLink:
    """A participant of one room, over MCP. `run()` joins (or enters the random queue and
    waits for a match), then streams messages to `on_messages` until the room ends or the
    participant leaves; `call()` runs a tool on whatever session is current, waiting out a
    reconnect. In the queue, `on_status` hears "waiting", "matched" and "requeued"; in a room
    the server has forgotten (a restart on memory://), "rejoined" once it has joined again."""

    def __init__(
        self,
        seat: Seat,
        *,
        on_messages: Callable[[list[Message]], None],
        on_status: Callable[[str], None],
        backoff: tuple[float, float] = (0.2, 5.0),
    ) -> None:
        self.seat = seat
        self.room_id = seat.room_id
        self.on_messages = on_messages
        self.on_status = on_status
        self.backoff = backoff
        self.client_id: str | None = None
        self.joined: dict[str, Any] = {}
        self.queue_position: int | None = None
        self.partner: str | None = None
        self.position: int | None = None
        """The read position: `after` for the next wait, so a new session resumes here."""
        self.listening = True
        self.connections = 0
        """Sessions opened so far (each attempt that reached the server)."""
        self.attempts = 0
        """Connection attempts so far, successful or not."""
        self.trouble: Trouble | None = None
        """Why the last attempt failed (None once connected)."""
        self._rejoining = asyncio.Lock()
        self._requests: asyncio.Queue[_Request] = asyncio.Queue()
        self._pending: list[_Request] = []

    # -- what the app calls ---------------------------------------------------------------

    async def call(self, tool: str, **args: Any) -> dict[str, Any]:
        """Run a room tool (room_id and client_id are added); retried across reconnects."""
        return await self._ask(_Request(tool, args))

    async def _ask(self, request: _Request) -> dict[str, Any]:
        self._requests.put_nowait(request)
        return await request.done

    @property
    def waiting(self) -> bool:
        """In the random queue: entered, not matched yet, not left."""
        return self.client_id is not None and self.room_id is None and self.listening

    async def leave_queue(self) -> dict[str, Any]:
        """Stop waiting for a partner. Matched just then: leaves that room instead."""
        self.listening = False
        return await self._ask(_Request("leave_queue", {}, self._leave_queue))

    async def _leave_queue(self, client: Client) -> dict[str, Any]:
        me = {"client_id": self.client_id}
        left = await self._call(client, "leave_queue", me)
        if not left["success"] and self.room_id is None:
            found = await self._call(client, "wait_for_match", {**me, "timeout": 1})  # at once
            if found["success"] and found["status"] == "matched":
                self.room_id = found["room_id"]
        if self.room_id is not None:
            return await self._call(client, "leave_chat", {**me, "room_id": self.room_id})
        return left

    async def send(self, text: str) -> dict[str, Any]:
        # The key makes a send retried after a reconnect land once.
        return await self.call("send_message", message=text, message_key=secrets.token_hex(12))

    # -- the session loop -----------------------------------------------------------------

    async def run(self) -> None:
        """Join and listen, reconnecting with backoff, until the chat ends or is left.
        Raises Refused when the server says no to the join or to a wait, and Unreachable when
        it cannot be reached and trying again would not help (`trouble` says why it tries
        again otherwise)."""
        target = self.seat.target
        if isinstance(target, str):
            check_url(target)
        delay = self.backoff[0]
        while True:
            attempt = Attempt()
            self.attempts += 1
            try:
                async with _connect(target, attempt, self.seat.token) as client:
                    attempt.connected = True
                    self.connections += 1
                    self.trouble = None
                    self.on_status("connected")
                    delay = self.backoff[0]
                    await self._session(client)
                return
            except Exception as exc:  # a broken transport surfaces as an exception group
                if refused := _refusal(exc):
                    raise refused from None
                log.debug("session lost: %r", exc)
                self.trouble = explain(target, exc, attempt, bool(self.seat.token))
            if not self.trouble.retry:
                raise Unreachable(self.trouble.sentence)
            self.on_status(f"disconnected; reconnecting in {delay:.1f} s")
            await asyncio.sleep(delay)  # backoff between attempts, not synchronisation
            delay = min(delay * 2, self.backoff[1])

    async def _session(self, client: Client) -> None:
        if self.client_id is None:
            await (self._join(client) if self.room_id is not None else self._enter_queue(client))
        async with asyncio.TaskGroup() as tasks:
            listener = tasks.create_task(self._listen(client))
            for request in list(self._pending):  # cut short by the last session
                tasks.create_task(self._perform(client, request))
            while not listener.done():
                getter = asyncio.ensure_future(self._requests.get())
                try:
                    await asyncio.wait({getter, listener}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    getter.cancel()  # a getter left behind would swallow the next request
                    # cancel() only asks: until the task has run once more it is neither
                    # cancelled nor done, and it may yet finish with a request it took.
                    await asyncio.wait({getter})
                if not getter.cancelled():
                    self._start(tasks, client, getter.result())
            # Asked for as the listener stopped (a leave, say): still answered.
            while not self._requests.empty():
                self._start(tasks, client, self._requests.get_nowait())

    async def _join(self, client: Client) -> None:
        joined = await self._call(
            client,
            "join_room",
            {
                "room_id": self.room_id,
                "display_name": self.seat.display_name,
                "capacity": self.seat.capacity,
                "invite": self.seat.invite,
            },
        )
        if not joined["success"]:
            raise Refused(joined)
        self.joined = joined
        self.client_id = joined["client_id"]
        self.on_status("in the room")

    async def _enter_queue(self, client: Client) -> None:
        interests = list(self.seat.interests) or None
        args = {"display_name": self.seat.display_name, "interests": interests}
        entered = await self._call(client, "enter_queue", args)
        if not entered["success"]:
            raise Refused(entered)
        self.client_id = entered["client_id"]
        self.joined = {
            "participant_id": entered["participant_id"],
            "display_name": self.seat.display_name,
        }
        self._queued(entered)

    def _queued(self, result: dict[str, Any]) -> None:
        """A queue result: matched (the room to chat in), or waiting at a position."""
        if result["status"] == "matched":
            self.room_id = result["room_id"]
            self.partner = result["partner"]["display_name"]
            event = "matched"
        else:
            self.queue_position = result["position"]
            event = "waiting"
        if self.listening:
            self.on_status(event)

    async def _await_match(self, client: Client) -> None:
        args = {"client_id": self.client_id, "timeout": WAIT_SECONDS}
        got = await self._call(client, "wait_for_match", args)
        if got["success"]:
            self._queued(got)
        elif not self.listening:  # left the queue while the wait was out
            return
        elif got["code"] == "server_restarting":  # a graceful stop: reconnect with backoff
            raise ConnectionError("the server is restarting")
        elif got["code"] == "not_in_queue":  # dropped, e.g. silent through a long outage
            self.on_status("requeued")
            await self._enter_queue(client)
        else:
            raise Refused(got)

    def _start(self, tasks: asyncio.TaskGroup, client: Client, request: _Request) -> None:
        self._pending.append(request)
        tasks.create_task(self._perform(client, request))

    async def _listen(self, client: Client) -> None:
        while self.listening and self.room_id is None:
            await self._await_match(client)
        while self.listening:
            args: dict[str, Any] = {
                "room_id": self.room_id,
                "client_id": self.client_id,
                "timeout": WAIT_SECONDS,
            }
            if self.position is not None:
                args["after"] = self.position
            stale = self.client_id
            got = await self._call(client, "wait_for_message", args)
            if not self.listening:  # left while the wait was out
                return
            if self._forgotten(got):
                await self._rejoin(client, stale)
                continue
            if not got["success"]:
                if got.get("code") == "server_restarting":
                    # A graceful stop: reconnect with backoff to the next server.
                    raise ConnectionError("the server is restarting")
                raise Refused(got)
            self.position = got["position"]
            if got["messages"]:
                self.on_messages(got["messages"])
            if got["chat_ended"] and not got["has_more"]:
                raise Refused({"code": "chat_ended", "error": "The chat has ended."})

    async def _perform(self, client: Client, request: _Request) -> None:
        if request.action is not None:
            result = await request.action(client)
        else:
            stale = self.client_id
            args = {"room_id": self.room_id, "client_id": stale, **request.args}
            result = await self._call(client, request.tool, args)
            if self._forgotten(result):  # then as this participant's new self
                await self._rejoin(client, stale)
                args = {"room_id": self.room_id, "client_id": self.client_id, **request.args}
                result = await self._call(client, request.tool, args)
        self._pending.remove(request)
        if not request.done.done():
            request.done.set_result(result)

    def _forgotten(self, result: dict[str, Any]) -> bool:
        """The server does not know this participant's client_id (it restarted on memory://,
        say) and the link may join its room again: a named room it is still in. A random
        pair's room cannot be made again."""
        return (
            result.get("code") == "unknown_client"
            and self.seat.room_id is not None
            and self.listening
        )

    async def _rejoin(self, client: Client, stale: str | None) -> None:
        """Join the room again, with the same name, once for every call that found `stale`
        forgotten; tells `on_status` "rejoined". The read position starts over, in the new
        conversation."""
        async with self._rejoining:
            if self.client_id != stale:  # another call did it meanwhile
                return
            self.client_id = None
            self.position = None
            await self._join(client)
            self.on_status("rejoined")

    @staticmethod
    async def _call(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        try:
            result = await client.call_tool(tool, {k: v for k, v in args.items() if v is not None})
        except MCPError as exc:
            raise _ConnectionLost(str(exc)) from exc
        data = result.structured_content
        if not isinstance(data, dict):
            raise _ConnectionLost(f"{tool} returned no structured result")
        return data
