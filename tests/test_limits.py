"""The per-participant limits, alone, on a clock the test moves."""

from __future__ import annotations

import pytest

from mcp_chat import rooms
from mcp_chat.errors import ChatError, Code
from mcp_chat.limits import Rate, WaitSlots


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_allowed_then_refused_with_the_wait_in_words() -> None:
    clock = Clock()
    rate = Rate(messages=3, window=30.0, clock=clock)  # one token per 10 s
    for _ in range(3):
        rate.take("alice")
    with pytest.raises(ChatError) as err:
        rate.take("alice")
    assert err.value.code is Code.RATE_LIMITED
    assert "Wait 10 seconds" in err.value.message
    clock.now += 4
    with pytest.raises(ChatError) as later:
        rate.take("alice")
    assert "Wait 6 seconds" in later.value.message


def test_tokens_come_back_with_time_up_to_the_burst() -> None:
    clock = Clock()
    rate = Rate(messages=2, window=2.0, clock=clock)
    rate.take("a")
    rate.take("a")
    clock.now += 1
    rate.take("a")
    clock.now += 3600  # a long pause refills to the burst, not beyond
    rate.take("a")
    rate.take("a")
    with pytest.raises(ChatError):
        rate.take("a")


def test_each_participant_has_its_own_bucket() -> None:
    rate = Rate(messages=1, window=60.0, clock=Clock())
    rate.take("a")
    rate.take("b")
    with pytest.raises(ChatError):
        rate.take("a")


def test_a_given_back_token_can_be_spent_again() -> None:
    rate = Rate(messages=1, window=60.0, clock=Clock())
    rate.take("a")
    rate.give_back("a")
    rate.take("a")


def test_zero_messages_turns_the_rate_limit_off() -> None:
    rate = Rate(messages=0, window=1.0, clock=Clock())
    for _ in range(1000):
        rate.take("a")


def test_full_buckets_are_forgotten() -> None:
    clock = Clock()
    rate = Rate(messages=1, window=1.0, clock=clock)
    for i in range(10_000):
        rate.take(f"p{i}")
    clock.now += 2
    rate.take("newcomer")
    assert len(rate._buckets) == 1


def test_wait_slots_bound_open_waits_per_participant() -> None:
    slots = WaitSlots(limit=2)
    with slots.hold("a"), slots.hold("a"):
        with pytest.raises(ChatError) as err, slots.hold("a"):
            pass
        assert err.value.code is Code.TOO_MANY_WAITS
        with slots.hold("b"):
            pass
    with slots.hold("a"), slots.hold("a"):
        pass


def test_room_count_limit() -> None:
    rooms.check_room_count(9, 10)
    rooms.check_room_count(10**6, 0)
    with pytest.raises(ChatError) as err:
        rooms.check_room_count(10, 10)
    assert err.value.code is Code.TOO_MANY_ROOMS
