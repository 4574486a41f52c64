"""The transcript: messages in sequence order, each shown once, with names, times and events."""

from __future__ import annotations

import asyncio
import bisect
from datetime import datetime
from typing import Any

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from mcp_chat.tui.markdown import to_text

_NAME_COLORS = ["cyan", "magenta", "green", "yellow", "blue", "red"]


def clock(timestamp: str) -> str:
    """HH:MM in local time, from the server's UTC timestamp."""
    try:
        return datetime.fromisoformat(timestamp).astimezone().strftime("%H:%M")
    except ValueError:
        return "--:--"


def render(message: dict[str, Any], own: bool) -> Text:
    """One message. Its text is safe Markdown (`markdown.to_text`): emphasis, code, lists and
    links are styled; markup of Rich or HTML in it is shown, never applied."""
    when = Text(clock(str(message.get("timestamp", ""))) + "  ", style="dim")
    sender = str(message.get("sender", "?"))
    if message.get("system"):  # the server's own sentence: "Bob joined the room."
        return when + Text(f"— {message.get('message', '')}", style="italic dim")
    color = "bold white" if own else f"bold {_NAME_COLORS[sum(map(ord, sender)) % 6]}"
    return when + Text(sender, style=color) + Text("  ") + to_text(str(message.get("message", "")))


class Transcript(VerticalScroll):
    """Messages by seq (a seq already shown is ignored), and notes from the app between them."""

    DEFAULT_CSS = """
    Transcript { height: 1fr; padding: 0 1; }
    Transcript > Static { width: 1fr; }
    Transcript > .own { text-align: right; }
    Transcript > .note { color: $text-muted; text-style: italic; }
    """

    def __init__(self) -> None:
        super().__init__(id="transcript")
        self._seqs: list[int] = []
        self._rows: list[Static] = []
        self._lines: list[tuple[Static, Text]] = []
        self._changed = asyncio.Event()

    def add(self, message: dict[str, Any], own: bool = False) -> bool:
        """Show a message in its place by seq; False if that seq is already shown."""
        seq = int(message["seq"])
        at = bisect.bisect_left(self._seqs, seq)
        if at < len(self._seqs) and self._seqs[at] == seq:
            return False
        text = render(message, own)
        row = Static(text, classes="own" if own else "system" if message.get("system") else "")
        if at < len(self._rows):
            self.mount(row, before=self._rows[at])
        else:
            self.mount(row)
        self._seqs.insert(at, seq)
        self._rows.insert(at, row)
        self._lines.append((row, text))
        self._touch()
        return True

    def new_conversation(self) -> None:
        """What follows is another conversation (the room was made anew), whose seqs start
        over: its messages go below everything shown so far, each once."""
        self._seqs = []
        self._rows = []

    def note(self, text: str) -> None:
        """A line from the app itself (help, errors, connection state)."""
        line = Text(text)
        row = Static(line, classes="note")
        self.mount(row)
        self._lines.append((row, line))
        self._touch()

    def _touch(self) -> None:
        self.scroll_end(animate=False)
        self._changed.set()
        self._changed = asyncio.Event()

    @property
    def last_seq(self) -> int:
        return self._seqs[-1] if self._seqs else 0

    def texts(self) -> list[Text]:
        """Every line as shown (with its styles), top to bottom."""
        order = {id(row): i for i, row in enumerate(self.children)}
        return [text for row, text in sorted(self._lines, key=lambda p: order[id(p[0])])]

    def lines(self) -> list[str]:
        """The plain text of every line, top to bottom."""
        return [text.plain for text in self.texts()]

    async def changed(self) -> None:
        """Returns at the next change."""
        await self._changed.wait()
