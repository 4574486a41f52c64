"""Presence (`mcp_chat.presence`), alone: status, and the marks a store writes."""

from __future__ import annotations

from mcp_chat import presence
from mcp_chat.presence import PresencePolicy
from mcp_chat.types import Kind, Participant, Room, Status

OPEN = Room("r", 3, "", 4, False)
ENDED = Room("r", 3, "", 4, True)


def member(last_seen: float = 100.0, gone: bool = False, left: bool = False) -> Participant:
    return Participant("p-1", "r", "Ann", "h", 0, "", left=left, last_seen=last_seen, gone=gone)


def test_status_follows_silence_and_the_gone_flag() -> None:
    policy = PresencePolicy(away_after=60, gone_after=600)
    assert presence.status(member(100), 159, policy) is Status.PRESENT
    assert presence.status(member(100), 160, policy) is Status.AWAY
    assert presence.status(member(100, gone=True), 100, policy) is Status.GONE


def test_a_disconnected_mark_is_due_only_for_a_seated_member_of_an_open_room() -> None:
    assert presence.goes(member(), OPEN)
    assert not presence.goes(member(gone=True), OPEN)
    assert not presence.goes(member(left=True), OPEN)
    assert not presence.goes(member(), ENDED)


def test_a_sweep_marks_only_those_silent_since_its_cutoff() -> None:
    cutoff = presence.silent_since(700.0, 600.0)
    assert cutoff == 100.0
    assert presence.goes(member(last_seen=100.0), OPEN, cutoff)
    assert not presence.goes(member(last_seen=100.5), OPEN, cutoff)


def test_a_mark_logs_an_event_about_the_member_and_sets_its_flag() -> None:
    draft, marked = presence.mark(member(), Kind.DISCONNECTED)
    assert (draft.kind, draft.sender_id, marked.gone) == (Kind.DISCONNECTED, "p-1", True)
    draft, marked = presence.mark(member(gone=True), Kind.RETURNED)
    assert (draft.kind, draft.sender_name, marked.gone) == (Kind.RETURNED, "Ann", False)


def test_a_sign_of_life_never_moves_last_seen_back() -> None:
    assert presence.seen(member(last_seen=100.0), 150.0).last_seen == 150.0
    assert presence.seen(member(last_seen=100.0), 50.0).last_seen == 100.0
