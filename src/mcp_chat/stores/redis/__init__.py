"""The shared store: one Redis that several server instances use as if they were one.

client.py      the URL, the pool, keys, the outage guard, optimistic transactions
lua.py         the scripts, each mapped to the pure function it restates
codecs.py      records to and from Redis
feed.py        the change feed: other instances' changes as wake-ups
writes.py      writes the operations share
rooms.py, messages.py, retention.py, queue.py, presence.py
               the operations, by the sections of `stores.base.Store`

Each multi-key operation is atomic in Redis itself. Where the logic is data only (appending
with the next sequence number, claiming past a read position, presence marks) it is a Lua
script; where a rule of `mcp_chat.rooms` or `mcp_chat.matching` decides, it is a WATCH/MULTI
transaction that reads, asks the rule in Python, writes, and starts again if another instance
changed what it read. Every change also publishes its key on `{prefix}:changes`, in the same
script or transaction, and one subscription per process turns those into wake-ups.

Keys, under the prefix P:
  P:room:ID           hash: capacity, created_at, last_seq, ended, invite_hash
  P:room:ID:log       sorted set: message payloads scored by seq
  P:room:ID:members   sorted set: participant ids in the room, scored by joining order
  P:room:ID:keys      hash: "participant_id message_key" -> seq (idempotent sends)
  P:p:ID              hash: a participant
  P:p:ID:sent         sorted set: the seqs of the participant's messages in its room's log
  P:secrets           hash: secret hash -> participant id
  P:rooms             sorted set: open public rooms, scored by creation time
  P:open              sorted set: every open room (public or private), by creation time
  P:all               sorted set: every room, open or ended, by creation time (retention)
  P:room:ID:everyone  set: every participant the room ever had (retention)
  P:present           sorted set: participants in open rooms not marked gone, by last_seen
  P:q:ID              hash: a queue entry (kept once matched, with its room_id)
  P:queue             sorted set: waiting entry ids, by entered_at
  P:qsecrets          hash: secret hash -> queue entry id
  P:readiness         string: written by each readiness check (/readyz), expires in a minute
"""

from __future__ import annotations

from mcp_chat.stores.redis.client import DEFAULT_PREFIX, POOL_SIZE, parse_url
from mcp_chat.stores.redis.feed import Feed
from mcp_chat.stores.redis.messages import MessageOps
from mcp_chat.stores.redis.presence import PresenceOps
from mcp_chat.stores.redis.queue import QueueOps
from mcp_chat.stores.redis.retention import RetentionOps
from mcp_chat.stores.redis.rooms import RoomOps


class RedisStore(RoomOps, MessageOps, RetentionOps, QueueOps, PresenceOps, Feed):
    """The store on one Redis, shared by every instance that opens the same URL and prefix."""


__all__ = ["DEFAULT_PREFIX", "POOL_SIZE", "RedisStore", "parse_url"]
