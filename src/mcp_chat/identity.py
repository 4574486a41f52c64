"""Who calls: a client_id checked against the store (by the hash of it, compared in
constant time) and against the room it names; what never changes about the participant is
then kept in this process, by secret hash."""

from __future__ import annotations

from dataclasses import dataclass

from mcp_chat import credentials, errors, names, rooms
from mcp_chat.presence import Tracker
from mcp_chat.stores.base import Store
from mcp_chat.types import Participant

_CACHE_SIZE = 100_000


@dataclass(frozen=True, slots=True)
class Identity:
    """What never changes about a participant; safe to cache by secret hash."""

    participant_id: str
    room_id: str
    display_name: str
    secret_hash: str

    def as_participant(self) -> Participant:
        """As a participant record, for what only reads its identity (an event's sender)."""
        return Participant(
            self.participant_id,
            self.room_id,
            self.display_name,
            self.secret_hash,
            cursor=0,
            joined_at="",
            left=False,
        )


class Identities:
    def __init__(self, store: Store, tracker: Tracker, max_room_id_chars: int) -> None:
        self.store, self.tracker = store, tracker
        self.max_room_id_chars = max_room_id_chars
        self._known: dict[str, Identity] = {}

    async def check(self, room_id: str, client_id: str) -> Identity:
        """The participant `client_id` names, if it is in `room_id` (by the name it joined,
        or as stored); a call from it is a sign of life."""
        names.check_room_id(room_id, self.max_room_id_chars)
        if not isinstance(client_id, str) or not client_id:
            raise errors.invalid("client_id is empty. Pass the client_id that join_room returned.")
        secret_hash = credentials.hash_secret(client_id)
        identity = self._known.get(secret_hash)
        if identity is None:
            participant = await self.store.participant(secret_hash)
            if participant is None or not credentials.matches(participant.secret_hash, client_id):
                raise errors.unknown_client()
            identity = Identity(
                participant.participant_id,
                participant.room_id,
                participant.display_name,
                participant.secret_hash,
            )
            if len(self._known) >= _CACHE_SIZE:
                self._known.clear()
            self._known[secret_hash] = identity
        if identity.room_id != room_id and rooms.public_id(identity.room_id) != room_id:
            raise errors.not_in_room(room_id)
        self.tracker.seen(identity.participant_id)
        return identity

    def forget(self, identity: Identity) -> None:
        """It left: nothing is kept of it (long-lived leftovers from many passing clients
        would pin the memory their requests used)."""
        self._known.pop(identity.secret_hash, None)
