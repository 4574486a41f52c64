"""The Redis store's key layout: which keys share a hash slot, so that on a Redis Cluster each
room's scripts and transactions touch one slot (one node), and which keys span rooms.

A `{...}` in a key is its hash tag: only what is inside picks the slot. Every key of a room,
of the conversations set aside under its name (`rooms.archive_id`) and of its participants
carries the room's public id as its tag, so a script or a transaction on a room stays in one
slot, and setting a room aside is a RENAME within that slot. The queue's keys share one tag of
their own. The keys that span rooms (the room indexes, `present`) are keys of their own, never
written in the same script or transaction as a room's keys; see `stores/redis/__init__.py`.
"""

from __future__ import annotations

import binascii
import functools

from mcp_chat import rooms

SLOTS = 16384
CHANNEL_BUCKETS = 128
"""On a cluster, change notices go out on this many sharded channels, each one in its own
stretch of the slot range, so that they spread over the primaries as the rooms do."""


def slot(key: str) -> int:
    """The cluster hash slot of `key` (CRC16 of its hash tag, or of the whole key)."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return binascii.crc_hqx(key.encode(), 0) % SLOTS


@functools.cache
def _bucket_tags() -> tuple[str, ...]:
    """For each bucket, a short tag whose slot lies in the bucket's stretch of slots."""
    width = SLOTS // CHANNEL_BUCKETS
    found: dict[int, str] = {}
    n = 0
    while len(found) < CHANNEL_BUCKETS:
        tag = f"c{n}"
        found.setdefault(slot(tag) // width, tag)
        n += 1
    return tuple(found[b] for b in range(CHANNEL_BUCKETS))


class Keys:
    """Every key name of the store under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def key(self, *parts: str) -> str:
        """A key that is its own slot on a cluster (an index, the readiness mark)."""
        return ":".join((self.prefix, *parts))

    def room(self, room_id: str) -> tuple[str, str, str, str]:
        """The room's hash, log, members and message keys."""
        tag = rooms.public_id(room_id)
        base = f"{self.prefix}:room:{{{tag}}}{room_id[len(tag) :]}"
        return base, f"{base}:log", f"{base}:members", f"{base}:keys"

    def room_set(self, room_id: str) -> list[str]:
        """Every key of one room: the four of `room`, and who it ever had."""
        keys = self.room(room_id)
        return [*keys, f"{keys[0]}:everyone"]

    def participant(self, room_id: str, participant_id: str) -> str:
        """The participant's hash, in its room's slot (the room as joined or set aside)."""
        return f"{self.prefix}:p:{{{rooms.public_id(room_id)}}}:{participant_id}"

    def sent(self, room_id: str, participant_id: str) -> str:
        return f"{self.participant(room_id, participant_id)}:sent"

    def located(self, participant_id: str) -> str:
        """Where a participant is filed: its room's public id (which never changes for it)."""
        return f"{self.prefix}:at:{{{participant_id}}}"

    def secret(self, secret_hash: str) -> str:
        """A secret's hash -> the id of the participant it belongs to."""
        return f"{self.prefix}:secret:{{{secret_hash}}}"

    # The queue: one slot of its own, for its transactions pair from all of it.

    def queue(self) -> str:
        return f"{self.prefix}:{{queue}}:waiting"

    def entry(self, entry_id: str) -> str:
        return f"{self.prefix}:{{queue}}:q:{entry_id}"

    def queue_secrets(self) -> str:
        return f"{self.prefix}:{{queue}}:secrets"

    def channel(self, notice_key: str) -> str:
        """The sharded channel of a change notice about `notice_key` (a room id, or
        `queue:ID`): the bucket of the room's slot, so that it mostly lives on the room's node."""
        tag = rooms.public_id(notice_key)
        return self.channels()[slot(tag) * CHANNEL_BUCKETS // SLOTS]

    @functools.cache  # noqa: B019 - one Keys per store, kept for its life
    def channels(self) -> tuple[str, ...]:
        return tuple(f"{self.prefix}:changes:{{{tag}}}" for tag in _bucket_tags())
