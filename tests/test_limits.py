"""The per-participant limits, alone, on a clock the test moves."""

from __future__ import annotations

import pytest

from mcp_chat import matching, rooms
from mcp_chat.errors import ChatError, Code
from mcp_chat.limits import Limits, Rate, WaitSlots


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


# -- Limits: the bounds of a timeout and of a page of history --------------------------------


def test_absurd_timeouts_are_refused_or_clamped() -> None:
    limits = Limits()
    assert limits.clamp_timeout(-5) == 1.0
    assert limits.clamp_timeout(10_000) == 300.0
    assert limits.clamp_timeout(None) == limits.default_wait
    assert limits.clamp_timeout(2**1000) == limits.max_wait
    assert limits.clamp_timeout(-(2**1000)) == limits.min_wait
    for bad in (float("nan"), float("inf"), True, "5"):
        with pytest.raises(ChatError) as err:
            limits.clamp_timeout(bad)  # type: ignore[arg-type]
        assert err.value.code is Code.INVALID_ARGUMENT


def test_a_timeout_keeps_to_the_configured_bounds() -> None:
    limits = Limits(default_wait=10.0, min_wait=2.0, max_wait=20.0)
    assert limits.clamp_timeout(None) == 10.0
    assert limits.clamp_timeout(0.5) == 2.0
    assert limits.clamp_timeout(25) == 20.0
    assert limits.clamp_timeout(7.5) == 7.5


def test_history_bounds_default_to_a_full_page() -> None:
    assert Limits().history_bounds(None, None, None) == (None, None, 100)
    assert Limits(history_page=20).history_bounds(5, None, 3) == (5, None, 3)
    assert Limits().history_bounds(None, 7, 100) == (None, 7, 100)


@pytest.mark.parametrize(
    ("before", "after", "limit", "words"),
    [
        (1, 2, None, "either before or after"),
        (None, None, 0, "between 1 and 100"),
        (None, None, 101, "between 1 and 100"),
        (None, None, True, "whole number"),
        (None, None, 2.5, "whole number"),
        (-1, None, None, "before"),
        (None, "3", None, "after"),
    ],
)
def test_history_bounds_refuse_what_is_no_page(
    before: object, after: object, limit: object, words: str
) -> None:
    with pytest.raises(ChatError) as err:
        Limits().history_bounds(before, after, limit)  # type: ignore[arg-type]
    assert err.value.code is Code.INVALID_ARGUMENT
    assert words in err.value.message


def test_the_fixed_rules_are_read_through_limits() -> None:
    assert Limits().default_capacity == rooms.DEFAULT_CAPACITY == 2
    assert Limits().max_interests == matching.MAX_INTERESTS == 5
