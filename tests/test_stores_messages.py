"""The store contract on every backend (memory, SQLite, Redis): messages. Appending,
claiming, peeking, what is unread, history (the log, and read positions in it)."""

from __future__ import annotations

import asyncio

import pytest

from mcp_chat import messages
from mcp_chat.stores import Store
from mcp_chat.types import Kind, Message
from tests.stores_support import enter, text

pytestmark = pytest.mark.anyio


async def test_sequence_numbers_are_gapless_under_concurrent_appends(store: Store) -> None:
    a = await enter(store, "r", "A", capacity=3)
    b = await enter(store, "r", "B", capacity=3)
    results = await asyncio.gather(
        *(store.append(who.participant_id, text(who, f"m{i}")) for i in range(50) for who in (a, b))
    )
    seqs = sorted(r.message.seq for r in results)
    assert seqs == list(range(3, 103))  # 1 and 2 are the two 'joined' events
    log = await store.history("r", after=0, before=None, limit=500)
    assert [m.seq for m in log] == list(range(1, 103))


async def test_concurrent_claims_never_return_one_message_twice(store: Store) -> None:
    a = await enter(store, "r", "A")
    b = await enter(store, "r", "B")
    for i in range(20):
        await store.append(a.participant_id, text(a, f"m{i}"))
    claims = await asyncio.gather(*(store.claim(b.participant_id, None, 3) for _ in range(10)))
    seen = [m.text for c in claims for m in c.messages]
    joined_event = [m for c in claims for m in c.messages if m.kind is Kind.JOINED]
    assert len(joined_event) == 1
    assert sorted(t for t in seen if t.startswith("m")) == sorted(f"m{i}" for i in range(20))
    assert len(seen) == len(set(seen))


async def test_claim_skips_own_messages_and_moves_past_them(store: Store) -> None:
    a = await enter(store, "r", "A")
    b = await enter(store, "r", "B")
    await store.append(a.participant_id, text(a, "from a"))
    first = await store.claim(a.participant_id, None, 10)
    assert [m.kind for m in first.messages] == [Kind.JOINED]  # B's arrival, not A's own
    assert first.cursor == 3
    assert (await store.claim(a.participant_id, None, 10)).messages == []
    assert await store.unread(b.participant_id) == 2


async def test_claim_after_rereads_from_an_explicit_position(store: Store) -> None:
    a = await enter(store, "r", "A")
    b = await enter(store, "r", "B")
    for i in range(3):
        await store.append(a.participant_id, text(a, f"m{i}"))
    everything = await store.claim(b.participant_id, None, 10)
    assert [m.text for m in everything.messages][-3:] == ["m0", "m1", "m2"]
    again = await store.claim(b.participant_id, 3, 10)
    assert [m.text for m in again.messages] == ["m1", "m2"]
    beyond = await store.claim(b.participant_id, 10_000, 10)
    assert beyond.messages == [] and beyond.cursor == 5


async def test_batches_are_bounded_and_say_more_remains(store: Store) -> None:
    a = await enter(store, "r", "A")
    b = await enter(store, "r", "B")
    for i in range(7):
        await store.append(a.participant_id, text(a, f"m{i}"))
    first = await store.claim(b.participant_id, None, 4)
    second = await store.claim(b.participant_id, None, 4)
    assert len(first.messages) == 4 and first.has_more
    assert len(second.messages) == 4 and not second.has_more
    # B's own 'joined' (seq 2) is skipped; everything else arrives once, in order.
    assert [m.seq for m in first.messages + second.messages] == [1, *range(3, 10)]


async def test_a_retried_key_returns_the_first_message(store: Store) -> None:
    a = await enter(store, "r", "A")
    first = await store.append(a.participant_id, text(a, "hello", key="k1"))
    again = await store.append(a.participant_id, text(a, "hello", key="k1"))
    other = await store.append(a.participant_id, text(a, "hello", key="k2"))
    assert not first.duplicate and again.duplicate and not other.duplicate
    assert again.message == first.message
    assert len(await store.history("r", after=0, before=None, limit=10)) == 3


async def test_an_append_counts_what_its_sender_has_not_read(store: Store) -> None:
    a = await enter(store, "r", "A")
    b = await enter(store, "r", "B")  # each has the other's arrival unread
    assert (await store.append(b.participant_id, text(b, "one"))).unread == 1
    assert (await store.append(b.participant_id, text(b, "two", key="k"))).unread == 1
    sent = await store.append(a.participant_id, text(a, "hi"))  # B's arrival, "one", "two"
    assert sent.unread == 3 == await store.unread(a.participant_id)
    await store.claim(b.participant_id, None, 10)
    await store.append(a.participant_id, text(a, "and you?"))
    retried = await store.append(b.participant_id, text(b, "two", key="k"))
    assert retried.duplicate and retried.unread == 1
    await store.append(a.participant_id, text(a, "still there?"))
    retried = await store.append(b.participant_id, text(b, "two", key="k"))
    assert retried.duplicate and retried.unread == 2 == await store.unread(b.participant_id)


async def test_history_pages_backwards_and_forwards(store: Store) -> None:
    a = await enter(store, "r", "A")
    for i in range(9):
        await store.append(a.participant_id, text(a, f"m{i}"))
    newest = await store.history("r", after=None, before=None, limit=4)
    assert [m.seq for m in newest] == [7, 8, 9, 10]
    older = await store.history("r", after=None, before=7, limit=4)
    assert [m.seq for m in older] == [3, 4, 5, 6]
    forward = await store.history("r", after=8, before=None, limit=4)
    assert [m.seq for m in forward] == [9, 10]


async def test_a_peek_moves_nothing_and_says_where_the_read_position_is(store: Store) -> None:
    a = await enter(store, "r", "A")
    b = await enter(store, "r", "B")
    for i in range(4):
        await store.append(a.participant_id, text(a, f"m{i}"))  # seqs 3..6
    await store.claim(b.participant_id, None, 2)  # A's 'joined' and m0
    peeked = await store.peek(b.participant_id, None, 2)
    assert [m.text for m in peeked.messages] == ["m1", "m2"] and peeked.has_more
    assert peeked.cursor == 3 and not peeked.ended
    further = await store.peek(b.participant_id, 4, 10)
    assert [m.text for m in further.messages] == ["m2", "m3"] and not further.has_more
    assert await store.unread(b.participant_id) == 3
    assert [m.text for m in (await store.claim(b.participant_id, None, 10)).messages] == [
        "m1",
        "m2",
        "m3",
    ]


async def test_a_claim_through_a_seq_takes_nothing_past_it(store: Store) -> None:
    a = await enter(store, "r", "A")
    b = await enter(store, "r", "B")
    await store.append(b.participant_id, text(b, "own"))  # seq 3
    for i in range(4):
        await store.append(a.participant_id, text(a, f"m{i}"))  # seqs 4..7
    first = await store.claim(b.participant_id, None, 10, through=5)
    assert [m.seq for m in first.messages] == [1, 4, 5]
    assert first.cursor == 5 and not first.has_more
    assert await store.unread(b.participant_id) == 2
    behind = await store.claim(b.participant_id, None, 10, through=4)  # never moves back
    assert behind.messages == [] and behind.cursor == 5
    assert await store.unread(b.participant_id) == 2
    short = await store.claim(b.participant_id, None, 1, through=7)
    assert [m.seq for m in short.messages] == [6] and short.has_more
    assert await store.unread(b.participant_id) == 1
    reread = await store.claim(b.participant_id, 0, 10, through=4)  # from elsewhere
    assert [m.seq for m in reread.messages] == [1, 4] and reread.cursor == 4
    assert await store.unread(b.participant_id) == 3
    rest = await store.claim(b.participant_id, None, 10)
    assert [m.seq for m in rest.messages] == [5, 6, 7]
    assert await store.unread(b.participant_id) == 0


async def test_a_stored_message_keeps_whom_it_mentions(store: Store) -> None:
    a = await enter(store, "r", "A")
    b = await enter(store, "r", "B")
    to_b = (b.participant_id,)
    sent = await store.append(a.participant_id, messages.text_draft(a, "@B hi", None, to_b))
    plain = await store.append(a.participant_id, text(a, "plain"))
    keyed = await store.append(a.participant_id, messages.text_draft(a, "@B k", "k", to_b))
    again = await store.append(a.participant_id, messages.text_draft(a, "@B k", "k", to_b))
    assert sent.message.mentions == to_b == keyed.message.mentions == again.message.mentions
    assert plain.message.mentions == ()

    def mentioned(found: list[Message]) -> dict[str, tuple[str, ...]]:
        return {m.text: m.mentions for m in found if m.kind is Kind.MESSAGE}

    expected = {"@B hi": to_b, "plain": (), "@B k": to_b}
    assert mentioned(await store.history("r", after=0, before=None, limit=10)) == expected
    assert mentioned((await store.peek(b.participant_id, None, 10)).messages) == expected
    assert mentioned((await store.claim(b.participant_id, None, 10)).messages) == expected
    stored = await store.keyed(a.participant_id, "k")
    assert stored is not None and stored.mentions == to_b


async def test_a_short_claim_leaves_the_read_position_at_the_last_message_taken(
    store: Store,
) -> None:
    """When more remains, the read position stops at the last message taken, not past the
    reader's own messages after it (the memory store moved past them; SQLite and Redis did
    not: `reading.cursor_after`)."""
    a = await enter(store, "r", "A")
    b = await enter(store, "r", "B")  # seqs 1, 2
    await store.append(a.participant_id, text(a, "m0"))  # 3
    await store.append(b.participant_id, text(b, "own"))  # 4
    await store.append(a.participant_id, text(a, "m1"))  # 5
    short = await store.claim(b.participant_id, None, 2)
    assert [m.seq for m in short.messages] == [1, 3] and short.has_more
    assert short.cursor == 3
    assert (await store.peek(b.participant_id, None, 10)).cursor == 3
    assert (await store.participant(b.secret_hash)).cursor == 3  # type: ignore[union-attr]
    rest = await store.claim(b.participant_id, None, 2)
    assert [m.seq for m in rest.messages] == [5] and rest.cursor == 5


async def test_a_key_still_names_its_message_after_its_sender_left(store: Store) -> None:
    """A retried send with a stored key is answered with the first message, whoever asks when
    (the memory store refused one who had left; SQLite and Redis answered)."""
    a = await enter(store, "group", "A", capacity=3)
    await enter(store, "group", "B", capacity=3)
    sent = await store.append(a.participant_id, text(a, "hello", key="k"))
    await store.leave(a.participant_id, messages.event_draft(Kind.LEFT, a))
    assert await store.keyed(a.participant_id, "k") == sent.message
    assert await store.keyed(a.participant_id, "other") is None
