"""Pairing rules, alone."""

from __future__ import annotations

import pytest

from mcp_chat.errors import ChatError
from mcp_chat.matching import (
    MatchPolicy,
    clean_interests,
    make_pair,
    on_entering,
    on_retry,
    pick_partner,
    position,
    shared_interests,
    stale,
)
from mcp_chat.types import QueueEntry

POLICY = MatchPolicy(fallback_after=30, stale_after=20)


def entry(name: str, *tags: str, at: float = 0.0, seen: float | None = None) -> QueueEntry:
    return QueueEntry(
        entry_id=name,
        secret_hash=f"h-{name}",
        display_name=name,
        interests=tags,
        entered_at=at,
        last_seen=at if seen is None else seen,
    )


def test_first_come_first_served_without_interests() -> None:
    waiting = [entry("a", at=1), entry("b", at=2)]
    assert pick_partner(entry("c", at=3), waiting, 3, POLICY) == waiting[0]


def test_a_shared_interest_goes_before_an_older_stranger() -> None:
    waiting = [entry("a", at=1), entry("b", "chess", at=2)]
    assert pick_partner(entry("c", "chess", at=3), waiting, 3, POLICY) == waiting[1]


def test_interests_stop_mattering_after_the_fallback_time() -> None:
    chess = entry("a", "chess", at=0)
    go = entry("b", "go", at=1)
    assert pick_partner(go, [chess], 5, POLICY) is None
    # Only the one who waited past the fallback takes anyone; the other must have too.
    still_here = entry("a", "chess", at=0, seen=30)
    assert pick_partner(go, [still_here], 30, POLICY) is None
    assert pick_partner(go, [still_here], 31, POLICY) == still_here


def test_people_without_interests_take_anyone_who_takes_them() -> None:
    assert pick_partner(entry("b", at=1), [entry("a", "chess", at=0)], 2, POLICY) is None
    assert pick_partner(entry("b", "chess", at=1), [entry("a", at=0)], 2, POLICY) is None
    assert pick_partner(entry("b", at=1), [entry("a", at=0)], 2, POLICY) is not None


def test_ghosts_and_the_matched_are_never_picked() -> None:
    ghost = entry("a", at=0, seen=0)
    assert pick_partner(entry("b", at=25), [ghost], 25, POLICY) is None
    taken = QueueEntry("c", "h", "c", (), 20, 24, room_id="pair-1")
    assert pick_partner(entry("b", at=25), [taken], 25, POLICY) is None


def test_interests_are_cleaned_and_bounded() -> None:
    assert clean_interests(["  Chess ", "chess", "Board  Games"]) == ("chess", "board games")
    assert clean_interests(None) == ()
    for bad in (["x" * 33], ["<script>"], [f"t{i}" for i in range(6)], [3]):
        with pytest.raises(ChatError):
            clean_interests(bad)  # type: ignore[arg-type]


def test_a_match_tells_each_which_interests_they_share() -> None:
    waited, seeker = entry("Ann", "chess", "go", "tea"), entry("Ben", "tea", "go")
    assert shared_interests(waited, seeker) == ("go", "tea")
    pair = make_pair(waited, seeker, 5.0)
    assert [e.text for e in pair.events] == [
        "Ann was matched with you: you share interests, go, tea. Say hello!",
        "Ben was matched with you: you share interests, go, tea. Say hello!",
    ]
    one = make_pair(entry("Cy", "chess"), entry("Di", "chess"), 5.0)
    assert one.events[0].text == "Cy was matched with you: you share an interest, chess. Say hello!"
    none = make_pair(entry("Ed"), entry("Flo", "chess"), 5.0)
    assert none.events[1].text == "Flo was matched with you. Say hello!"


def test_an_entrant_pairs_with_the_one_who_waited_or_waits() -> None:
    waiting = [entry("a", at=1), entry("b", at=2)]
    newcomer = entry("c", at=3)
    assert on_entering(newcomer, waiting, 3, POLICY) == (waiting[0], newcomer)
    assert on_entering(newcomer, [], 3, POLICY) is None


def test_a_retry_pairs_the_one_who_waited_longer_first() -> None:
    chess = entry("a", "chess", at=1, seen=30)
    late = entry("b", at=2)
    assert on_retry("a", [chess, late], 5, POLICY) is None  # interests still matter
    assert on_retry("a", [chess, late], 31, POLICY) is None  # b is a ghost by now
    fresh = entry("b", at=2, seen=30)
    assert on_retry("b", [chess, fresh], 31, POLICY) == (chess, fresh)
    assert on_retry("a", [chess, fresh], 31, POLICY) == (chess, fresh)
    assert on_retry("gone", [chess, fresh], 31, POLICY) is None


def test_positions_count_the_waiting_oldest_first() -> None:
    waiting = [entry("a", at=1), entry("b", at=2)]
    assert [position(e, waiting) for e in ("a", "b", "c")] == [1, 2, 0]


def test_a_sweep_drops_waiting_entries_silent_since_its_cutoff() -> None:
    assert stale(entry("a", seen=10), 10) and not stale(entry("a", seen=11), 10)
