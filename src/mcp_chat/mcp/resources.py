"""Rooms as MCP resources, and push: subscriptions told when a room changes.

A room's transcript and member list are resources whose URI holds the reader's read key:
`chat://rooms/{room_id}/{key}/messages` and `.../members`. The key is handed to each
participant by join_room and enter_queue; it opens the room while its holder is a member and
nowhere else, so knowing a room id is never enough to read it.

Push uses the protocol's own mechanisms: `resources/subscribe` with
`notifications/resources/updated` on handshake-era connections, and `subscriptions/listen`
streams on 2026-07-28. FastMCP has no handlers for either, so they go on its low-level server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from contextvars import ContextVar
from typing import Any, Final
from urllib.parse import unquote

from fastmcp import FastMCP
from fastmcp.exceptions import ValidationError as FastMCPValidationError
from mcp.server.context import ServerRequestContext
from mcp.server.session import ServerSession
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ResourceUpdated
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INVALID_PARAMS,
    EmptyResult,
    SubscribeRequestParams,
    SubscriptionsListenRequestParams,
    SubscriptionsListenResult,
    UnsubscribeRequestParams,
)

from mcp_chat import credentials, errors
from mcp_chat.chat import ChatService
from mcp_chat.errors import ChatError
from mcp_chat.limits import WaitSlots
from mcp_chat.mcp import sdk
from mcp_chat.signals import EVERY_ROOM
from mcp_chat.types import Room
from mcp_chat.views import MemberOut, MessageOut

log = logging.getLogger(__name__)

TRANSCRIPT = "chat://rooms/{room_id}/{key}/messages"
MEMBERS = "chat://rooms/{room_id}/{key}/members"
_URI = re.compile(r"chat://rooms/([^/]+)/([^/]+)/(messages|members)")


def room_uris(room_id: str, secret_hash: str) -> tuple[str, str]:
    """The transcript and member-list URIs for the participant with this secret hash."""
    key = credentials.read_key(secret_hash)
    return (
        TRANSCRIPT.format(room_id=room_id, key=key),
        MEMBERS.format(room_id=room_id, key=key),
    )


def register_resources(mcp: FastMCP, chat: ChatService) -> None:
    @mcp.resource(
        TRANSCRIPT,
        name="room_transcript",
        mime_type="application/json",
        description=f"The room's newest messages (up to {chat.limits.history_page}), oldest first.",
    )
    async def transcript(room_id: str, key: str) -> str:
        room = await _open(chat, room_id, key)
        found = await chat.transcript(room.room_id)
        return json.dumps(
            {
                "room_id": room.room_id,
                "last_seq": room.last_seq,
                "ended": room.ended,
                "messages": [MessageOut.of(m).model_dump() for m in found],
            }
        )

    @mcp.resource(MEMBERS, name="room_members", mime_type="application/json")
    async def members(room_id: str, key: str) -> str:
        """Who is in the room, each present, away or gone."""
        room = await _open(chat, room_id, key)
        found = await chat.room_members(room.room_id)
        return json.dumps(
            {
                "room_id": room.room_id,
                "capacity": room.capacity,
                "members": [MemberOut.of(m.participant, m.status).model_dump() for m in found],
            }
        )

    feeds = Feeds(chat)
    lowlevel = sdk.lowlevel(mcp)
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, feeds.subscribe)
    lowlevel.add_request_handler(
        "resources/unsubscribe", UnsubscribeRequestParams, feeds.unsubscribe
    )
    lowlevel.add_request_handler(
        "subscriptions/listen", SubscriptionsListenRequestParams, feeds.listen
    )
    chat.signals.add_listener(feeds.changed)


_admitted: ContextVar[tuple[str, str, Room] | None] = ContextVar("mcp_chat_read", default=None)
"""The room `admit_read` opened for this request: (room id, key, room)."""


def _parse(uri: str) -> tuple[str, str] | None:
    """The room id and key a room resource URI names (unquoted, as FastMCP's template match
    hands them to the resource functions), or None for any other URI."""
    match = _URI.fullmatch(uri)
    return None if match is None else (unquote(match.group(1)), unquote(match.group(2)))


@asynccontextmanager
async def admit_read(chat: ChatService, uri: str) -> AsyncIterator[None]:
    """Around a resources/read (in the server's middleware): a room URI whose key does not
    open the room is refused here, as invalid params (-32602, what the SDK and FastMCP answer
    for a resource that is not there) in one debug line. Refused inside the resource
    function, it went through FastMCP's read path, which logs every failure with its
    traceback at ERROR and answers -32603: a wrong key is the caller's error, not the
    server's. The room found is handed on so the read does not check the key twice."""
    parsed = _parse(uri)
    if parsed is None:
        yield
        return
    try:
        room = await chat.check_reader(*parsed)
    except ChatError as exc:
        log.debug("resources/read refused (%s)", exc.code.value)
        raise MCPError(INVALID_PARAMS, exc.message) from None
    token = _admitted.set((*parsed, room))
    try:
        yield
    finally:
        _admitted.reset(token)


async def _open(chat: ChatService, room_id: str, key: str) -> Room:
    admitted = _admitted.get()
    if admitted is not None and admitted[:2] == (room_id, key):
        return admitted[2]
    # Not through `admit_read` (or the URI read differently): check here. FastMCP maps its
    # ValidationError to invalid params, and logs it at the level given.
    try:
        return await chat.check_reader(room_id, key)
    except ChatError as exc:
        raise FastMCPValidationError(exc.message, log_level=logging.DEBUG) from exc


MAX_STREAMS: Final = 1024
"""Listen streams open in this process at most, whoever holds them: the SDK's default cap for
one ListenHandler (`max_subscriptions`), kept now that each stream has a handler of its own."""

TOO_MANY_STREAMS: Final = -32010
"""The JSON-RPC error code of a listen refused for a limit. No standard code means "limit
reached" (the SDK's own listen limit answers internal error, which reads as a bug), and
JSON-RPC leaves -32000..-32099 to servers, of which the 2026-07-28 spec keeps -32000..-32019
for implementations (the SDK uses -32000 and -32001). The error's `data.code` says
`too_many_streams`, like a tool's failure code."""


class Feeds:
    """Who is subscribed to which room's resources, and telling them when it changes."""

    def __init__(self, chat: ChatService) -> None:
        self._chat = chat
        # Handshake-era subscriptions: room -> {(connection id, uri): session to notify on}.
        self._sessions: dict[str, dict[tuple[int, str], ServerSession]] = {}
        # 2026-07-28 listen streams: room -> how many streams follow each uri.
        self._streams: dict[str, Counter[str]] = {}
        self._bus = InMemorySubscriptionBus()
        # Each listen stream is served by a ListenHandler of its own, so that it can be ended
        # alone: `ListenHandler.close` ends all of its handler's streams, gracefully (the
        # client gets the stream's result as its last frame, and stops listening).
        self._holders: dict[str, set[ListenHandler]] = {}
        """A key's holder (participant id) -> the streams that name its key."""
        self._listening = 0
        self._checking: list[set[str]] = []
        """For each listen whose keys are being checked: who departed meanwhile."""
        # A stream lives as long as a blocked wait, or longer, and holds about as much memory
        # (~67 KiB), so a holder may have as many open as waits: --max-waits. Counted apart
        # from the waits, though: an assistant that follows its room on a stream must still
        # have all its waits.
        self._stream_slots = WaitSlots(chat.limits.max_waits, errors.too_many_streams)
        self._pushes: set[asyncio.Task[None]] = set()
        chat.heartbeat.add_departure_listener(self.departed)

    async def _room_of(self, uri: str) -> str:
        """The room a subscription URI names, if its key opens it; else an error."""
        return (await self._reader_of(uri))[0]

    async def _reader_of(self, uri: str) -> tuple[str, str]:
        """The room a subscription URI names and its key's holder (a participant id), if the
        key opens the room; else an error."""
        parsed = _parse(uri)
        if parsed is None:
            raise MCPError(INVALID_PARAMS, f"'{uri}' is not a room resource of this server.")
        room_id, key = parsed
        try:
            room = await self._chat.check_reader(room_id, key)
        except ChatError as exc:
            raise MCPError(INVALID_PARAMS, exc.message) from exc
        # The key is known good: which member holds it is no secret to the caller.
        for member in await self._chat.room_members(room.room_id):
            if credentials.read_key(member.participant.secret_hash) == key:
                return str(room.room_id), member.participant.participant_id
        raise MCPError(INVALID_PARAMS, _HOLDER_LEFT)

    async def subscribe(
        self, ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams
    ) -> EmptyResult:
        room_id = await self._room_of(params.uri)
        connection = sdk.connection_of(ctx.session)
        subscribed = self._sessions.setdefault(room_id, {})
        subscribed[(id(connection), params.uri)] = ctx.session
        if not connection.state.get(_CLEANUP_KEY):
            connection.state[_CLEANUP_KEY] = True
            connection.exit_stack.callback(self._drop_connection, id(connection))
        return EmptyResult()

    async def unsubscribe(
        self, ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams
    ) -> EmptyResult:
        key = (id(sdk.connection_of(ctx.session)), params.uri)
        for subscribed in self._sessions.values():
            subscribed.pop(key, None)
        return EmptyResult()

    def _drop_connection(self, connection_id: int) -> None:
        for subscribed in self._sessions.values():
            for key in [k for k in subscribed if k[0] == connection_id]:
                del subscribed[key]

    async def listen(
        self, ctx: ServerRequestContext[Any, Any], params: SubscriptionsListenRequestParams
    ) -> SubscriptionsListenResult:
        """One stream, until the client closes it or a holder of a key it names leaves its
        room or is marked gone (`departed`). At most `--max-waits` streams per key."""
        uris = list(params.notifications.resource_subscriptions or ())
        departed: set[str] = set()
        self._checking.append(departed)
        try:
            readers = [await self._reader_of(uri) for uri in uris]
        finally:
            self._checking.remove(departed)
        holders = {holder for _, holder in readers}
        if holders & departed:
            raise MCPError(INVALID_PARAMS, _HOLDER_LEFT)
        if self._listening >= MAX_STREAMS:
            log.debug("subscriptions/listen refused: %d streams open", self._listening)
            raise MCPError(
                TOO_MANY_STREAMS,
                f"This server has its limit of {MAX_STREAMS} listen streams open. Call "
                "wait_for_message instead, or listen again later.",
                data={"code": errors.Code.TOO_MANY_STREAMS.value},
            )
        stream = ListenHandler(self._bus)
        with ExitStack() as held:
            try:
                for holder in holders:
                    held.enter_context(self._stream_slots.hold(holder))
            except ChatError as exc:
                log.debug("subscriptions/listen refused (%s)", exc.code.value)
                data = {"code": exc.code.value, "limit": self._stream_slots.limit}
                raise MCPError(TOO_MANY_STREAMS, exc.message, data=data) from None
            self._listening += 1
            for holder in holders:
                self._holders.setdefault(holder, set()).add(stream)
            for room_id, uri in zip((room for room, _ in readers), uris, strict=True):
                self._streams.setdefault(room_id, Counter())[uri] += 1
            try:
                return await stream(ctx, params)
            finally:
                self._listening -= 1
                for holder in holders:
                    streams = self._holders.get(holder)
                    if streams is not None:
                        streams.discard(stream)
                        if not streams:
                            del self._holders[holder]
                for room_id, uri in zip((room for room, _ in readers), uris, strict=True):
                    followed = self._streams[room_id]
                    followed[uri] -= 1
                    if not followed[uri]:
                        del followed[uri]
                    if not followed:
                        del self._streams[room_id]

    def departed(self, participant_ids: set[str]) -> None:
        """These participants left their rooms, or were marked gone: end the streams that
        name their keys. A key's power ends with its holder's membership, and a stream that
        went on would tell the room's activity to one who left (or to whoever took the key).
        One marked gone may come back, and listen again."""
        for departed in self._checking:
            departed |= participant_ids
        for participant_id in participant_ids:
            for stream in self._holders.pop(participant_id, ()):
                stream.close()

    def changed(self, room_id: str) -> None:
        rooms = {*self._sessions, *self._streams} if room_id == EVERY_ROOM else {room_id}
        for room in rooms:
            if self._sessions.get(room) or self._streams.get(room):
                task = asyncio.get_running_loop().create_task(self._push(room))
                self._pushes.add(task)
                task.add_done_callback(self._pushes.discard)

    async def _push(self, room_id: str) -> None:
        for key, session in list(self._sessions.get(room_id, {}).items()):
            try:
                await session.send_resource_updated(key[1])
            except Exception as exc:  # a dead connection must not stop the others
                log.debug("resource update not delivered: %s", exc)
        for uri in list(self._streams.get(room_id, {})):
            await self._bus.publish(ResourceUpdated(uri=uri))


_CLEANUP_KEY = "mcp_chat.subscriptions"
_HOLDER_LEFT = (
    "The holder of a key in these URIs has just left its room, or been marked gone. Listen "
    "with the URIs of a room you are in (join_room gives them)."
)
