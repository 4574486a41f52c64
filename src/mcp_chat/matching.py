"""Random-pairing rules: who may be matched with whom, and in which order."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mcp_chat import credentials, errors, mentions, messages, text
from mcp_chat.types import Draft, Participant, QueueEntry, Room

MAX_INTERESTS = 5
MAX_INTEREST_CHARS = 32
_INTEREST = re.compile(r"[a-z0-9][a-z0-9 _+#.-]*")


@dataclass(frozen=True, slots=True)
class MatchPolicy:
    fallback_after: float = 30.0
    """After waiting this long, a person with interests takes anyone."""
    stale_after: float = 30.0
    """An entry not heard from for this long is a ghost: never matched, soon dropped."""


def clean_interests(raw: Iterable[str] | None) -> tuple[str, ...]:
    """Lower-cased, trimmed, de-duplicated tags; an error names what is wrong."""
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    tags: list[str] = []
    for item in raw:
        if not isinstance(item, str):
            raise errors.invalid("interests must be a list of short words, e.g. ['chess', 'go'].")
        text.check_unicode(item, "an interest")
        tag = " ".join(item.lower().split())
        if not tag:
            continue
        if len(tag) > MAX_INTEREST_CHARS or not _INTEREST.fullmatch(tag):
            raise errors.invalid(
                f"interest '{tag[:MAX_INTEREST_CHARS]}' is not valid: use up to "
                f"{MAX_INTEREST_CHARS} letters, digits, spaces or - _ + # ."
            )
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_INTERESTS:
        raise errors.invalid(f"Give at most {MAX_INTERESTS} interests.")
    return tuple(tags)


def alive(entry: QueueEntry, now: float, policy: MatchPolicy) -> bool:
    return now - entry.last_seen < policy.stale_after


def shares_interest(a: QueueEntry, b: QueueEntry) -> bool:
    return not set(a.interests).isdisjoint(b.interests)


def accepts(entry: QueueEntry, other: QueueEntry, now: float, policy: MatchPolicy) -> bool:
    """Would `entry` take `other` as a partner now? Without interests, anyone; with them, a
    shared one, until it has waited `fallback_after` seconds."""
    return (
        not entry.interests
        or shares_interest(entry, other)
        or now - entry.entered_at >= policy.fallback_after
    )


def pick_partner(
    seeker: QueueEntry, waiting: Sequence[QueueEntry], now: float, policy: MatchPolicy
) -> QueueEntry | None:
    """The partner for `seeker` among `waiting` (oldest first): the longest-waiting one that
    shares an interest, else the longest-waiting one that both sides accept, else nobody."""
    candidates = [
        e
        for e in waiting
        if e.entry_id != seeker.entry_id
        and e.room_id is None
        and alive(e, now, policy)
        and accepts(seeker, e, now, policy)
        and accepts(e, seeker, now, policy)
    ]
    for entry in candidates:
        if shares_interest(seeker, entry):
            return entry
    return candidates[0] if candidates else None


def by_arrival(a: QueueEntry, b: QueueEntry) -> tuple[QueueEntry, QueueEntry]:
    """Two entries to pair, the one who waited longer first (it becomes the pair's `first`)."""
    return (a, b) if a.entered_at <= b.entered_at else (b, a)


# -- the steps a store takes ---------------------------------------------------------------------
# The memory, SQLite and Redis stores call these with the waiting entries, oldest first (each
# in its own transaction), so that nobody is matched twice.


def on_entering(
    entry: QueueEntry, waiting: Sequence[QueueEntry], now: float, policy: MatchPolicy
) -> tuple[QueueEntry, QueueEntry] | None:
    """An entrant comes: the pair it makes (the partner who waited, then the entrant), or
    None, and it waits in the queue."""
    partner = pick_partner(entry, waiting, now, policy)
    return None if partner is None else (partner, entry)


def on_retry(
    entry_id: str, waiting: Sequence[QueueEntry], now: float, policy: MatchPolicy
) -> tuple[QueueEntry, QueueEntry] | None:
    """A waiting entry tries again (its interests may have stopped mattering): the pair it
    makes, the one who waited longer first; None if it is not waiting or nobody fits."""
    entry = next((e for e in waiting if e.entry_id == entry_id and e.room_id is None), None)
    if entry is None:
        return None
    partner = pick_partner(entry, waiting, now, policy)
    return None if partner is None else by_arrival(partner, entry)


def position(entry_id: str, waiting: Sequence[QueueEntry]) -> int:
    """1 for the longest-waiting entry; 0 if `entry_id` is not waiting."""
    ids = [e.entry_id for e in waiting if e.room_id is None]
    return ids.index(entry_id) + 1 if entry_id in ids else 0


def stale(entry: QueueEntry, cutoff: float) -> bool:
    """Is a waiting entry last heard from no later than `cutoff` dropped by a sweep?"""
    return entry.room_id is None and entry.last_seen <= cutoff


@dataclass(frozen=True, slots=True)
class Pair:
    """What a match creates: a room of two, its two participants (the one who waited first),
    and the events to log, one about each so that each learns of the other."""

    room: Room
    first: Participant
    second: Participant
    events: tuple[Draft, Draft]


def make_pair(waited: QueueEntry, seeker: QueueEntry, now: float) -> Pair:
    stamp = messages.utc_now()
    room = Room(credentials.new_public_id("pair-"), 2, stamp, last_seq=0, ended=False)

    def member(entry: QueueEntry) -> Participant:
        return Participant(
            participant_id=entry.entry_id,
            room_id=room.room_id,
            display_name=entry.display_name,
            secret_hash=entry.secret_hash,
            cursor=0,
            joined_at=stamp,
            left=False,
            last_seen=now,
        )

    first, second = member(waited), member(seeker)
    shared = shared_interests(waited, seeker)
    return Pair(
        room,
        first,
        second,
        (
            mentions.matched(messages.match_draft(first, shared), second.participant_id),
            mentions.matched(messages.match_draft(second, shared), first.participant_id),
        ),
    )


def shared_interests(a: QueueEntry, b: QueueEntry) -> tuple[str, ...]:
    """The interests both gave, in the order `a` gave them."""
    return tuple(tag for tag in a.interests if tag in b.interests)
