"""wait_for_message: the messages from others past a participant's read position, at once
if there are any, else the first to arrive (or, with mentions_only, the first that addresses
the participant); and the turns readers take with a push that follows the participant."""

from __future__ import annotations

import asyncio
import contextlib
import functools

from mcp_chat import errors, mentions, messages
from mcp_chat.errors import ChatError
from mcp_chat.heartbeat import Heartbeat
from mcp_chat.identity import Identity
from mcp_chat.limits import Limits
from mcp_chat.presence import Tracker
from mcp_chat.signals import RoomSignals, Watch
from mcp_chat.stores.base import Store
from mcp_chat.types import Claim, WaitResult

_LOOK_AHEAD = 100
"""Messages a mentions_only wait reads per look past the read position."""


class ReadTurns:
    """Readers of a participant that a push follows take turns: a push reads without taking
    (`Store.peek`), writes, and only then moves the read position (see `push`), so a claim
    in between would return what it wrote. Participants no push follows need no turn: their
    claims are atomic in the store."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def join(self, participant_id: str) -> None:
        """A push starts following the participant (once per feed)."""
        lock, users = self._locks.get(participant_id, (None, 0))
        self._locks[participant_id] = (lock or asyncio.Lock(), users + 1)

    def leave(self, participant_id: str) -> None:
        lock, users = self._locks[participant_id]
        if users > 1:
            self._locks[participant_id] = (lock, users - 1)
        else:
            del self._locks[participant_id]

    def turn(self, participant_id: str) -> contextlib.AbstractAsyncContextManager[object]:
        found = self._locks.get(participant_id)
        return _NO_TURN if found is None else found[0]


_NO_TURN: contextlib.AbstractAsyncContextManager[object] = contextlib.nullcontext()


class Waits:
    """The waits of one chat service (`ChatService.wait` checks the arguments and the caller,
    then hands over here)."""

    def __init__(
        self,
        store: Store,
        signals: RoomSignals,
        tracker: Tracker,
        turns: ReadTurns,
        limits: Limits,
        heartbeat: Heartbeat,
    ) -> None:
        """A claim is made through `heartbeat.seated`: one marked gone takes a seat first."""
        self.store, self.signals, self.tracker = store, signals, tracker
        self.turns, self.limits, self.heartbeat = turns, limits, heartbeat

    async def wait(
        self, identity: Identity, seconds: float, after: int | None, mentions_only: bool
    ) -> WaitResult:
        room_id = identity.room_id
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + seconds
        position = after
        looked = after  # mentions_only: where the look for one addressed to the caller goes on
        with Watch(self.signals, room_id, "wait_for_message") as watch:
            while True:
                watch.look()
                through: int | None = None
                seen: Claim | None = None
                if mentions_only:
                    through, looked, seen = await self._addressed(identity, looked)
                if seen is not None and through is None and not seen.ended:
                    # Nothing addresses the caller yet: claim nothing, the rest stays unread.
                    claim = Claim([], seen.cursor, False, False, seen.room_id)
                else:
                    async with self.turns.turn(identity.participant_id):
                        claim = await self.heartbeat.seated(
                            identity.participant_id,
                            functools.partial(
                                self.store.claim,
                                identity.participant_id,
                                position,
                                self.limits.batch_size,
                                through,
                            ),
                        )
                    position = None
                    if through is not None and not claim.messages:
                        # Another wait of the caller's took that message: look on past it.
                        looked = max(through, claim.cursor)
                        continue
                waited = loop.time() - started
                if claim.messages:
                    watch.answer()
                    # The read position has moved: from here on nothing may fail the answer,
                    # or what was claimed would be skipped by the next wait. Past a message
                    # claimed `through`, what follows it stays unread: count that too.
                    more = claim.has_more or through is not None
                    return WaitResult(
                        [messages.shown(m) for m in claim.messages],
                        claim.has_more,
                        False,
                        claim.ended,
                        claim.cursor,
                        waited,
                        await self._still_unread(identity) if more else 0,
                    )
                watch.idle()
                if claim.ended:
                    raise errors.chat_ended(room_id)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return WaitResult([], False, True, False, claim.cursor, waited)
                with self.tracker.blocked(identity.participant_id):
                    await watch.sleep(remaining)

    async def _addressed(
        self, identity: Identity, after: int | None
    ) -> tuple[int | None, int | None, Claim]:
        """Looks past `after` (None: the read position) for the first message from others
        that addresses the participant, without moving the read position. Returns its seq
        (None if there is none yet), where the next look may start (what was looked at
        needs no second look: a wake-up reads only what is new), and the last look (its
        `cursor` is the read position, `ended` says whether the room has ended)."""
        participant_id = identity.participant_id
        while True:
            seen = await self.store.peek(participant_id, after, _LOOK_AHEAD)
            for message in seen.messages:
                if mentions.addresses(message, participant_id):
                    return message.seq, after, seen
            if seen.messages:
                after = seen.messages[-1].seq
            if not seen.has_more:
                return None, after, seen

    async def _still_unread(self, identity: Identity) -> int:
        """Unread count after a claim that left more behind. The claimed messages must reach
        the caller even if the store fails now: then 1, the least `has_more` promises."""
        try:
            return await self.store.unread(identity.participant_id)
        except ChatError:
            return 1
