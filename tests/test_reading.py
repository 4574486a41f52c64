"""Reading a room's log (`mcp_chat.reading`), alone: windows, cuts and read positions."""

from __future__ import annotations

from mcp_chat import reading
from mcp_chat.reading import Window
from mcp_chat.types import Kind, Message


def message(seq: int, sender: str) -> Message:
    return Message("r", seq, f"m{seq}", sender, sender.upper(), Kind.MESSAGE, f"t{seq}", "")


# A's and B's messages: B reads, so its own (2 and 4) are never taken.
LOG = [message(1, "a"), message(2, "b"), message(3, "a"), message(4, "b"), message(5, "a")]


def test_a_window_starts_at_the_read_position_or_at_after_and_never_past_the_end() -> None:
    assert reading.window(2, None, 5, None) == Window(2, 5)
    assert reading.window(2, 0, 5, None) == Window(0, 5)
    assert reading.window(2, -7, 5, None) == Window(0, 5)  # after is never below 0
    assert reading.window(2, 99, 5, None) == Window(5, 5)  # past the last seq: at the end
    assert reading.window(9, None, 5, None) == Window(5, 5)


def test_through_bounds_a_window_and_never_moves_it_back() -> None:
    assert reading.window(1, None, 5, 3) == Window(1, 3)
    assert reading.window(1, None, 5, 99) == Window(1, 5)
    assert reading.window(4, None, 5, 2) == Window(4, 4)  # behind the read position


def test_a_cut_takes_up_to_the_limit_and_says_whether_more_remain() -> None:
    assert reading.cut([1, 2, 3], 2) == ([1, 2], True)
    assert reading.cut([1, 2], 2) == ([1, 2], False)
    assert reading.cut([], 2) == ([], False)


def test_a_claim_takes_from_others_only_and_leaves_the_position_at_the_end() -> None:
    read = reading.read(LOG, "b", 0, None, 10, 5)
    assert [m.seq for m in read.messages] == [1, 3, 5]
    assert read.cursor == 5 and not read.has_more


def test_a_short_claim_stops_at_the_last_message_taken() -> None:
    read = reading.read(LOG, "b", 0, None, 2, 5)
    assert [m.seq for m in read.messages] == [1, 3] and read.has_more
    assert read.cursor == 3  # not past B's own 4: 5 is still to read


def test_a_claim_past_own_messages_only_moves_past_them() -> None:
    read = reading.read(LOG[:4], "b", 3, None, 10, 4)
    assert read.messages == [] and read.cursor == 4 and not read.has_more


def test_a_claim_through_a_seq_takes_nothing_past_it() -> None:
    read = reading.read(LOG, "b", 0, None, 10, 5, through=3)
    assert [m.seq for m in read.messages] == [1, 3] and read.cursor == 3
    behind = reading.read(LOG, "b", 4, None, 10, 5, through=2)
    assert behind.messages == [] and behind.cursor == 4


def test_a_pruned_log_reads_from_what_is_left() -> None:
    read = reading.read(LOG[3:], "b", 0, None, 10, 5)  # 1 to 3 removed
    assert [m.seq for m in read.messages] == [5] and read.cursor == 5


def test_unread_counts_messages_from_others_past_the_read_position() -> None:
    assert reading.unread(LOG, "b", 0) == 3
    assert reading.unread(LOG, "b", 3) == 1
    assert reading.unread(LOG, "a", 0) == 2
    assert reading.unread(LOG, "a", 5) == 0
