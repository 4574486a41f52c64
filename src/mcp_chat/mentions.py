"""Mentions: which participants a message addresses.

A message addresses a participant when it names them with `@Name` (`find`, resolved when it
is sent, against the room's members then), or when it is a system event that changes their
conversation: being matched with a partner (`matched`) and a partner's leave that ends a room
of two (`left`). Joins, leaves of a room that lives on, and presence events (disconnected,
returned) address nobody: in a group they are the room's comings and goings.

The stored message keeps the ids (`Message.mentions`); `addresses` is the one test of
"is this message for that participant", used by `wait_for_message(mentions_only=true)`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence

from mcp_chat.types import Draft, Message, Participant

MARK = "@"


def find(text: str, members: Iterable[Participant], sender_id: str) -> tuple[str, ...]:
    """The ids of the members `text` mentions, in order of first mention, each once.

    The rule, exactly:

    - A mention is an "@" that does not come right after a word character (a letter, a digit
      or "_", as Python's `\\w` has them), followed at once by a member's display name: so
      "ann@example.com" mentions nobody, while "(@Ann)" and "hi @Ann" do.
    - The name is compared without regard to case, character by character (as
      `re.IGNORECASE` compares: "@ann" and "@ANN" are Ann; "ß" is not "SS"), and must be
      followed by the end of the text or by a character that is not a word character:
      "@Ann," and "@Ann's" mention Ann, "@Annabel" does not.
    - Display names may hold spaces and punctuation; after an "@" the longest member name
      that matches and is so followed wins. With members "Ann" and "Ann Lee", "@Ann Lee"
      mentions Ann Lee, "@Ann Smith" and "@Ann Leeds" mention Ann. The text after a mention
      is searched on from the end of the name.
    - Members whose names match the same text (the same name, or one differing only in case)
      are all mentioned.
    - A name that is no member's mentions nobody, and is no error. The sender's own name is
      matched like any other (so that "@Ann Lee" from Ann Lee does not mention Ann), but the
      sender is never in the result: a message is not for its own author.
    """
    if MARK not in text:
        return ()
    people = list(members)
    names = sorted({m.display_name for m in people if m.display_name}, key=len, reverse=True)
    if not names:
        return ()
    # Longest first: the regex takes the first alternative that matches and is followed by a
    # non-word character, which is then the longest such name. Python caches the compiled
    # pattern, and a room's members rarely change between two sends.
    pattern = re.compile(r"(?<!\w)@(" + "|".join(map(re.escape, names)) + r")(?!\w)", re.IGNORECASE)
    named: dict[str, list[str]] = {}  # matched text -> the ids of the members it names
    found: dict[str, None] = {}  # ordered set
    for match in pattern.finditer(text):
        said = match.group(1)
        ids = named.get(said)
        if ids is None:
            ids = named[said] = [
                m.participant_id
                for m in people
                if re.fullmatch(re.escape(m.display_name), said, re.IGNORECASE)
            ]
        for participant_id in ids:
            if participant_id != sender_id:
                found[participant_id] = None
    return tuple(found)


def addresses(message: Message, participant_id: str) -> bool:
    """Whether `message` is for the participant: someone else's message that mentions them,
    or a system event that changes their conversation (see the module's text). Pure: the
    push of a colleague's channel asks it of each new message."""
    return participant_id in message.mentions and message.sender_id != participant_id


def matched(event: Draft, partner_id: str) -> Draft:
    """A 'matched' event (about one of a new pair) as logged: it addresses the other one."""
    return dataclasses.replace(event, mentions=(partner_id,))


def left(event: Draft, others: Sequence[str], ends_room: bool) -> Draft:
    """A 'left' event as logged: when the leave ends the room (a pair), it addresses those
    still in it, whose conversation is over; in a room that lives on, nobody."""
    if not ends_room or not others:
        return event
    return dataclasses.replace(event, mentions=tuple(others))
