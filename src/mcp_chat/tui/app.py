"""The chat window: a live transcript of one room, an input line and slash commands."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any

from textual.app import App, ComposeResult
from textual.widgets import Input, Static
from textual.worker import Worker, WorkerCancelled, WorkerFailed

from mcp_chat.tui.link import ChatLink, Message, Refused, Seat
from mcp_chat.tui.transcript import Transcript
from mcp_chat.tui.trouble import Unreachable
from mcp_chat.tui.wording import Moment, refusal

HELP = """\
Commands:
  /who       who is in the room
  /history   fill in the room's recent history
  /leave     leave the room (the others are told), or the queue while waiting
  /next      in a random chat: leave it, and wait for someone else (same name, interests)
  /quit      leave and close the window
  /help      this list
Anything else is sent to the room."""


def _who(member: dict[str, Any]) -> str:
    """A member's name, with its presence unless simply present."""
    presence = member.get("presence") or "present"
    return str(member["display_name"]) + ("" if presence == "present" else f" ({presence})")


class ChatApp(App[None]):
    """One person in one room (or first in the random queue, then in the room it makes).
    Talks to the server only through `ChatLink`."""

    TITLE = "mcp-chat"
    CSS = """
    #bar { height: 1; background: $primary; color: $text; padding: 0 1; }
    #bar.trouble { background: $warning; }
    #entry { dock: bottom; }
    """

    def __init__(self, seat: Seat) -> None:
        super().__init__()
        self.link = ChatLink(seat, on_messages=self._show, on_status=self._status)
        self.in_room = False
        self._lost = False
        self._trouble: str | None = None
        """The reason last shown for not connecting (each is shown once)."""
        self._noted_position: int | None = None
        self.transcript = Transcript()
        self.link_worker: Worker[None] | None = None
        """Runs the link; finished once the link stops trying (left, refused, ended)."""

    def compose(self) -> ComposeResult:
        yield Static(id="bar")
        yield self.transcript
        yield Input(placeholder="Type a message; /help for commands", id="entry")

    def on_mount(self) -> None:
        self._status("connecting")
        self.query_one(Input).focus()
        self.link_worker = self.run_worker(self._stay_in_room(), name="link", exit_on_error=False)

    # -- from the link ----------------------------------------------------------------------

    async def _stay_in_room(self) -> None:
        try:
            await self.link.run()
        except Unreachable as unreachable:
            self.transcript.note(f"{unreachable.sentence} Not trying again; /quit to close.")
            self._status("not connected")
        except Refused as refused:
            if refused.code == "chat_ended":
                more = "/next to chat with someone else, " if self._random else ""
                self.transcript.note(f"The chat has ended. {more}/quit to close the window.")
                self._status("chat ended")
            else:
                moment: Moment = "in the room" if self.in_room else "joining"
                self.transcript.note(refusal(refused.code, self.link.room_id, moment))
                self._status("not in the room")
        else:
            self._status("left the room" if self.link.room_id else "left the queue")
        self.in_room = False

    def _status(self, state: str) -> None:
        link = self.link
        self._note_queue(state)
        if link.client_id and link.room_id and not self.in_room and link.listening:
            self.in_room = True
            self.transcript.note(
                f"You are in room {link.room_id} as {link.joined.get('display_name')}. "
                "Type /help for commands."
            )
        lost = state.startswith("disconnected")
        trouble = link.trouble
        if lost and trouble is not None and not link.connections:
            # Never connected: say why at each new reason, not at each attempt.
            if trouble.sentence != self._trouble:
                self._trouble = trouble.sentence
                self.transcript.note(f"Cannot connect: {trouble.sentence}. Trying again…")
            state = "cannot connect; trying again"
        elif lost and not self._lost:
            self._lost = True
            why = f": {trouble.sentence}." if trouble is not None else "."
            self.transcript.note(f"Lost the connection to the server{why} Reconnecting…")
        elif state == "connected" and self._trouble is not None and link.connections == 1:
            self._trouble = None
            self.transcript.note("Connected.")
        elif state == "connected" and self._lost:
            self._lost = False
            self.transcript.note("Reconnected.")
        place = f"room {link.room_id}" if link.room_id else "random queue"
        if link.waiting and state in ("connected", "waiting"):
            state = f"waiting for a partner (position {link.queue_position})"
        bar = self.query_one("#bar", Static)
        bar.update(f"mcp-chat · {place} · {link.seat.display_name} · {state}")
        bar.set_class(lost, "trouble")

    def _note_queue(self, state: str) -> None:
        link = self.link
        if state == "waiting" and link.queue_position != self._noted_position:
            self._noted_position = link.queue_position
            self.transcript.note(f"Waiting for a partner (position {link.queue_position})…")
        elif state == "matched":
            self.transcript.note(f"Matched with {link.partner}.")
        elif state == "rejoined":
            # A new conversation under the same name: its seqs start again at 1.
            self.transcript.new_conversation()
            self.transcript.note(
                f"The server had forgotten this chat (it restarted without keeping its rooms): "
                f"you joined room {link.room_id} again as {link.joined.get('display_name')}."
            )
        elif state == "requeued":
            self._noted_position = None
            self.transcript.note(
                "The server no longer had you in the queue (too long without a word); "
                "entering it again."
            )

    def _show(self, messages: list[Message]) -> None:
        for message in messages:
            self.transcript.add(message, own=self._is_own(message))

    def _is_own(self, message: Message) -> bool:
        return bool(message.get("sender_id") == self.link.joined.get("participant_id"))

    # -- from the person --------------------------------------------------------------------

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        event.input.value = ""
        if not text:
            return
        if text.startswith("/"):
            self.run_worker(self._command(text.split()[0].lower()), group="commands")
        elif self.link.waiting:
            self.transcript.note("Not sent: no partner yet. You can talk once you are matched.")
        elif not self.in_room and self.link.client_id:
            more = "/next to chat with someone else, " if self._random else ""
            self.transcript.note(f"You are not in the room any more; {more}/quit to close.")
        else:
            self.run_worker(self._send(text), group="sends")

    async def _send(self, text: str) -> None:
        sent = await self.link.send(text)
        if not sent["success"]:
            self.transcript.note(f"Not sent: {refusal(sent['code'], self.link.room_id, 'sending')}")
            return
        joined = self.link.joined
        self.transcript.add(
            {
                "seq": sent["seq"],
                "sender": joined.get("display_name"),
                "sender_id": joined.get("participant_id"),
                "message": text,
                "timestamp": sent["timestamp"],
                "kind": "message",
                "system": False,
            },
            own=True,
        )

    async def _command(self, command: str) -> None:
        if command == "/help":
            self.transcript.note(HELP)
        elif command == "/quit":
            await self.action_quit()
        elif command == "/leave" and self.link.waiting:
            await self._leave_queue()
        elif command == "/next":
            await self._next()
        elif not self.in_room:
            self.transcript.note(f"{command}: you are not in the room.")
        elif command == "/who":
            await self._who()
        elif command == "/history":
            await self._history()
        elif command == "/leave":
            await self._leave()
        else:
            self.transcript.note(f"Unknown command {command}. /help lists them.")

    async def _who(self) -> None:
        found = await self.link.call("list_participants")
        if not found["success"]:
            self.transcript.note(refusal(found["code"], self.link.room_id))
            return
        names = ", ".join(_who(m) for m in found["members"])
        # Those gone hold no place: a newcomer may have taken theirs.
        taken = sum(m.get("presence") != "gone" for m in found["members"])
        places = f"{taken} of {found['capacity']} places"
        self.transcript.note(f"In room {found['room_id']} ({places}): {names}")

    async def _history(self) -> None:
        page: dict[str, Any] = await self.link.call("get_messages", limit=100)
        if not page["success"]:
            self.transcript.note(refusal(page["code"], self.link.room_id))
            return
        added = sum(self.transcript.add(m, own=self._is_own(m)) for m in page["messages"])
        self.transcript.note(f"History: {added} earlier message(s) filled in.")

    async def _leave(self) -> None:
        self.link.listening = False
        self.in_room = False
        left = await self.link.call("leave_chat")
        if left["success"]:
            self.transcript.note(f"You left room {self.link.room_id}. /quit to close.")
        else:
            self.transcript.note(refusal(left["code"], self.link.room_id))

    @property
    def _random(self) -> bool:
        """Started with --random: its chats come from the queue."""
        return self.link.seat.room_id is None

    async def _next(self) -> None:
        """Leave the random chat (if it still goes on) and enter the queue again, as the
        same person with the same interests."""
        if not self._random:
            self.transcript.note("/next is for random chats (mcp-chat chat --random).")
            return
        if self.link.waiting:
            self.transcript.note("You are already waiting for a partner.")
            return
        if self.in_room:
            await self._leave()
        if self.link_worker is not None:
            # The old link is done, or about to be (left, or the chat ended).
            with contextlib.suppress(WorkerFailed, WorkerCancelled):
                await self.link_worker.wait()
        self.link = ChatLink(self.link.seat, on_messages=self._show, on_status=self._status)
        self.in_room = False
        self._lost = False
        self._noted_position = None
        self.transcript.new_conversation()
        self.transcript.note("Looking for someone else to chat with…")
        self.link_worker = self.run_worker(self._stay_in_room(), name="link", exit_on_error=False)

    async def _leave_queue(self) -> None:
        left = await self.link.leave_queue()
        if self.link.room_id is not None:  # matched just as it left
            self.transcript.note(f"You left room {self.link.room_id}. /quit to close.")
        elif left["success"] or left.get("code") == "not_in_queue":
            self.transcript.note("You left the queue. /quit to close.")
        else:
            self.transcript.note(refusal(left["code"], None))

    async def action_quit(self) -> None:
        """Leave the room or the queue (if still in it and the server answers soon), then
        close."""
        leaving: Awaitable[Any] | None = None
        if self.link.waiting:
            leaving = self.link.leave_queue()
        elif self.in_room:
            leaving = self.link.call("leave_chat")
        self.link.listening = False
        self.in_room = False
        if leaving is not None:
            try:
                async with asyncio.timeout(3):
                    await leaving
            except TimeoutError:
                pass
        self.exit()
