"""The agent-facing tools: each a few lines that call the core and shape its answer.

The tools' parameter annotations carry descriptions with the limits that apply (read from
`chat.limits` when the tools are registered), so this module does without `from __future__
import annotations`: FastMCP must see those annotations evaluated where they are written."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, TypeVar

from fastmcp import Context, FastMCP
from fastmcp.server.dependencies import get_http_request
from pydantic import Field

from mcp_chat.chat import ChatService
from mcp_chat.errors import ChatError, Code
from mcp_chat.mcp.resources import room_uris
from mcp_chat.mcp.results import (
    HistoryOut,
    JoinOut,
    LeaveOut,
    MembersOut,
    QueueOut,
    Result,
    RoomsOut,
    SendOut,
    WaitOut,
)
from mcp_chat.mcp.schemas import output_schema
from mcp_chat.types import QueueResult
from mcp_chat.views import MemberOut, MessageOut, RoomOut

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Result)

# Self-explanatory after the tool descriptions; no per-argument text (it would repeat in
# every tool of the list each assistant loads).
RoomId = str
ClientId = str


async def answer(model: type[R], action: Callable[[], Awaitable[R]]) -> R:
    """Run a tool's body; a ChatError or a crash becomes a failure of the tool's own shape."""
    try:
        return await action()
    except ChatError as exc:
        return model(success=False, error=exc.message, code=exc.code.value)
    except Exception:
        log.exception("tool %s failed", model.__name__)
        return model(
            success=False,
            error="The server hit an internal error; nothing was lost. Try the call again.",
            code=Code.INTERNAL_ERROR.value,
        )


def caller() -> str:
    """Whom a join counts against (`ChatService.join`): the client's address over HTTP, and
    over stdio the process's one client."""
    try:
        request = get_http_request()
    except RuntimeError:
        return "stdio"
    return request.client.host if request.client else "unknown"


async def receive(
    chat: ChatService,
    room_id: str,
    client_id: str,
    timeout: float,
    after: int | None,
    mentions_only: bool = False,
) -> WaitOut:
    """wait_for_message's answer (also served by `mcp.fastcalls` without the SDK's stack)."""

    async def run() -> WaitOut:
        w = await chat.wait(room_id, client_id, timeout, after, mentions_only)
        return WaitOut(
            success=True,
            messages=[MessageOut.of(m) for m in w.messages],
            has_more=w.has_more,
            timed_out=w.timed_out,
            chat_ended=w.chat_ended,
            position=w.cursor,
            unread=w.unread,
        )

    return await answer(WaitOut, run)


async def post(
    chat: ChatService, room_id: str, client_id: str, message: str, message_key: str | None
) -> SendOut:
    """send_message's answer (also served by `mcp.fastcalls` without the SDK's stack)."""

    async def run() -> SendOut:
        sent = await chat.send(room_id, client_id, message, message_key)
        m = sent.message
        return SendOut(
            success=True,
            seq=m.seq,
            message_id=m.message_id,
            timestamp=m.timestamp,
            duplicate=sent.duplicate,
            unread=sent.unread,
        )

    return await answer(SendOut, run)


@asynccontextmanager
async def keepalive(ctx: Context, interval: float) -> AsyncIterator[None]:
    """While a call blocks, send progress notifications every `interval` seconds if the client
    asked for progress, so clients that reset their timeout on progress keep waiting."""
    request = ctx.request_context
    token = (request.meta or {}).get("progressToken") if request is not None else None
    if token is None or interval <= 0:
        yield
        return
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def beat() -> None:
        while True:
            await asyncio.sleep(interval)
            waited = round(loop.time() - started, 1)
            await ctx.report_progress(waited, message=f"still waiting ({waited:g} s)")

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def register_tools(mcp: FastMCP, chat: ChatService, keepalive_every: float = 10.0) -> None:
    # Every number the descriptions give is the limit that applies (`Limits`).
    limits = chat.limits
    wait_default = limits.default_wait
    wait_range = f"{limits.min_wait:g}-{limits.max_wait:g}"

    @mcp.tool(output_schema=output_schema(JoinOut))
    async def join_room(
        display_name: Annotated[str, Field(description="The name others see.")],
        room_id: Annotated[
            str | None, Field(description="Room to join or create; omit for a new one.")
        ] = None,
        capacity: Annotated[
            int | None,
            Field(description=f"Places in a new room (default {limits.default_capacity})."),
        ] = None,
        invite: Annotated[
            str | None,
            Field(description="Invite secret: makes a new room private; needed to join one."),
        ] = None,
    ) -> JoinOut:
        """Enter a chat room, creating it if needed. Returns your secret client_id: pass it to
        every other call and never show it to anyone. Then loop: wait_for_message to hear,
        send_message to talk; leave_chat when done."""

        async def run() -> JoinOut:
            j = await chat.join(room_id, display_name, capacity, invite, caller())
            alone = len(j.members) < 2
            transcript_uri, members_uri = room_uris(j.room.room_id, j.participant.secret_hash)
            return JoinOut(
                success=True,
                client_id=j.client_id,
                room_id=j.room.room_id,
                participant_id=j.participant.participant_id,
                display_name=j.participant.display_name,
                capacity=j.room.capacity,
                created=j.created,
                members=[MemberOut.of(m.participant, m.status) for m in j.members],
                unread=j.unread,
                transcript_uri=transcript_uri,
                members_uri=members_uri,
                next_step=(
                    "Nobody else is here yet: call wait_for_message; it returns when someone joins."
                    if alone
                    else "Call wait_for_message to hear the others, or send_message to talk."
                ),
            )

        return await answer(JoinOut, run)

    @mcp.tool(output_schema=output_schema(SendOut))
    async def send_message(
        room_id: RoomId,
        message: Annotated[str, Field(description="The text to send.")],
        client_id: ClientId,
        message_key: Annotated[
            str | None,
            Field(
                description="Optional unique key; a retry with the same key is not stored twice."
            ),
        ] = None,
    ) -> SendOut:
        """Send a message to the room. It is stored and delivered even if nobody is waiting.
        Then call wait_for_message for the reply."""
        return await post(chat, room_id, client_id, message, message_key)

    @mcp.tool(
        output_schema=output_schema(WaitOut),
        description=(
            "Receive messages from the others in the room: returns at once with any you have "
            "not read, else blocks until one arrives or `timeout` seconds pass "
            f"(default {wait_default:g}, {wait_range}; keep it under 55 unless your client allows "
            "longer requests). timed_out=true just means call again. Each message has seq, "
            "sender, message, timestamp, kind; system=true marks events (joined, left, ...). "
            "If a response was lost, pass `after` (a seq) to read again."
        ),
    )
    async def wait_for_message(
        ctx: Context,
        room_id: RoomId,
        client_id: ClientId,
        timeout: Annotated[
            float, Field(description=f"Seconds to wait, {wait_range}.")
        ] = wait_default,
        after: Annotated[int | None, Field(description="Re-read messages after this seq.")] = None,
        mentions_only: Annotated[
            bool, Field(description="Block until a message mentions you (@your name).")
        ] = False,
    ) -> WaitOut:
        async with keepalive(ctx, keepalive_every):
            return await receive(chat, room_id, client_id, timeout, after, mentions_only)

    @mcp.tool(output_schema=output_schema(LeaveOut))
    async def leave_chat(room_id: RoomId, client_id: ClientId) -> LeaveOut:
        """Leave the room; the others are told. A room of two ends when either leaves."""

        async def run() -> LeaveOut:
            ended = await chat.leave(room_id, client_id)
            return LeaveOut(success=True, room_ended=ended)

        return await answer(LeaveOut, run)

    @mcp.tool(output_schema=output_schema(HistoryOut))
    async def get_messages(
        room_id: RoomId,
        client_id: ClientId,
        before: Annotated[
            int | None, Field(description="Page back: messages before this seq.")
        ] = None,
        after: Annotated[
            int | None, Field(description="Page forward: messages after this seq.")
        ] = None,
        limit: Annotated[
            int | None, Field(description=f"At most this many (max {limits.history_page}).")
        ] = None,
    ) -> HistoryOut:
        """Read the room's history (yours included), newest page by default. Does not change
        what wait_for_message returns next."""

        async def run() -> HistoryOut:
            page = await chat.history(room_id, client_id, before, after, limit)
            return HistoryOut(
                success=True,
                messages=[MessageOut.of(m) for m in page.messages],
                last_seq=page.last_seq,
                has_older=page.has_older,
                unread=page.unread,
            )

        return await answer(HistoryOut, run)

    @mcp.tool(output_schema=output_schema(MembersOut))
    async def list_participants(room_id: RoomId, client_id: ClientId) -> MembersOut:
        """Who is in the room now."""

        async def run() -> MembersOut:
            roster = await chat.members(room_id, client_id)
            room = roster.room
            return MembersOut(
                success=True,
                room_id=room.room_id,
                capacity=room.capacity,
                ended=room.ended,
                members=[MemberOut.of(m.participant, m.status) for m in roster.members],
                unread=roster.unread,
            )

        return await answer(MembersOut, run)

    @mcp.tool(output_schema=output_schema(QueueOut))
    async def enter_queue(
        display_name: Annotated[str, Field(description="The name others see.")],
        interests: Annotated[
            list[str] | None,
            Field(
                description=f"Up to {limits.max_interests} short tags; people sharing one are "
                "matched first."
            ),
        ] = None,
    ) -> QueueOut:
        """Get paired with a random stranger. Returns your secret client_id and either
        status 'matched' (with room_id: start chatting) or 'waiting': then call
        wait_for_match until matched. In the room, use the same client_id."""

        async def run() -> QueueOut:
            entered = await chat.pairing.enter(display_name, interests, caller())
            return queue_out(entered)

        return await answer(QueueOut, run)

    @mcp.tool(
        output_schema=output_schema(QueueOut),
        description=(
            "After enter_queue said 'waiting': blocks until you are matched, or `timeout` "
            f"seconds pass (default {wait_default:g}; keep it under 55). On timed_out, call it "
            "again: stop calling and you are dropped from the queue."
        ),
    )
    async def wait_for_match(
        ctx: Context,
        client_id: ClientId,
        timeout: Annotated[
            float, Field(description=f"Seconds to wait, {wait_range}.")
        ] = wait_default,
    ) -> QueueOut:
        async def run() -> QueueOut:
            async with keepalive(ctx, keepalive_every):
                waited = await chat.pairing.wait(client_id, timeout)
            return queue_out(waited)

        return await answer(QueueOut, run)

    @mcp.tool(output_schema=output_schema(Result))
    async def leave_queue(client_id: ClientId) -> Result:
        """Stop waiting for a random partner."""

        async def run() -> Result:
            await chat.pairing.leave(client_id)
            return Result(success=True)

        return await answer(Result, run)

    @mcp.tool(output_schema=output_schema(RoomsOut))
    async def list_rooms() -> RoomsOut:
        """Open public rooms you could join, newest first (private rooms are not listed)."""

        async def run() -> RoomsOut:
            return RoomsOut(success=True, rooms=[RoomOut.of(r) for r in await chat.rooms()])

        return await answer(RoomsOut, run)


def queue_out(q: QueueResult) -> QueueOut:
    partner = q.partner
    if q.matched is None or partner is None:
        return QueueOut(
            success=True,
            client_id=q.client_id,
            participant_id=q.participant_id,
            status="waiting",
            position=q.position,
            timed_out=q.timed_out,
            next_step="Call wait_for_match with your client_id; it returns when you are matched.",
        )
    room_id = q.matched.room.room_id
    me = q.matched.partner_of(partner.participant_id)
    transcript_uri, members_uri = room_uris(room_id, me.secret_hash)
    return QueueOut(
        success=True,
        client_id=q.client_id,
        participant_id=q.participant_id,
        status="matched",
        room_id=room_id,
        partner=MemberOut.of(partner),
        timed_out=False,
        unread=q.unread,
        transcript_uri=transcript_uri,
        members_uri=members_uri,
        next_step=(
            f"You are paired with {partner.display_name} in room '{room_id}': say hello with "
            "send_message, then wait_for_message for the reply."
        ),
    )
