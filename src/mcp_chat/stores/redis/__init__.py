"""The shared store: one Redis, or one Redis Cluster, that several server instances use as if
they were one.

connect.py     the URL (one Redis, or a cluster's seed nodes), and the client it opens
keys.py        the key layout: which keys share a hash slot
client.py      the outage guard, optimistic transactions, where participants are filed
replicas.py    `min_replicas=N`: writes acknowledged once N replicas have them (WAIT)
lua.py         the scripts, each mapped to the pure function it restates
codecs.py      records to and from Redis
subscriptions.py, feed.py
               the change feed: other instances' changes as wake-ups
writes.py      writes the operations share, and the indexes written apart from a room's
rooms.py, messages.py, retention.py, queue.py, presence.py
               the operations, by the sections of `stores.base.Store`

Each operation on a room is atomic in Redis itself, on the room's hash slot. Where the logic is
data only (appending with the next sequence number, claiming past a read position, presence
marks) it is a Lua script; where a rule of `mcp_chat.rooms` or `mcp_chat.matching` decides, it
is a WATCH/MULTI transaction that reads, asks the rule in Python, writes, and starts again if
another instance changed what it read. No script or transaction touches two slots: the keys
that span rooms are written apart (writes.py says in which order, and readers check what an
index names). On one Redis every change also publishes its key on `{prefix}:changes`, in the
same script or transaction; on a cluster, once it is done, on one of the sharded channels
`{prefix}:changes:{cN}` (keys.py). One subscription per process turns those into wake-ups.

Keys, under the prefix P ({R} is a room's public id: `rooms.public_id`):
  P:room:{R}          hash: capacity, created_at, last_seq, ended, invite_hash
  P:room:{R}~X        the same for a conversation set aside under the name (`rooms.archive_id`)
  P:room:{R}:log      sorted set: message payloads scored by seq
  P:room:{R}:members  sorted set: participant ids in the room, scored by joining order
  P:room:{R}:keys     hash: "participant_id message_key" -> seq (idempotent sends)
  P:room:{R}:everyone set: every participant the room ever had (retention)
  P:room:{R}:replicated  string: the mark that `min_replicas` waits for (expires)
  P:p:{R}:ID          hash: a participant of the room (or of one set aside under its name)
  P:p:{R}:ID:sent     sorted set: the seqs of the participant's messages in its room's log
  P:at:{ID}           string: R, where participant ID is filed (never changes)
  P:secret:{HASH}     string: the participant id a secret's hash belongs to
  P:rooms             sorted set: open public rooms, scored by creation time
  P:open              sorted set: every open room (public or private), by creation time
  P:all               sorted set: every room, open or ended, by creation time (retention)
  P:present           sorted set: participants in open rooms not marked gone, by last_seen
  P:{queue}:q:ID      hash: a queue entry (kept once matched, with its room_id)
  P:{queue}:waiting   sorted set: waiting entry ids, by entered_at
  P:{queue}:secrets   hash: secret hash -> queue entry id
  P:readiness         string: written by each readiness check (/readyz), expires in a minute
"""

from __future__ import annotations

from mcp_chat.stores.redis.connect import DEFAULT_PREFIX, POOL_SIZE, parse_url
from mcp_chat.stores.redis.feed import Feed
from mcp_chat.stores.redis.messages import MessageOps
from mcp_chat.stores.redis.presence import PresenceOps
from mcp_chat.stores.redis.queue import QueueOps
from mcp_chat.stores.redis.retention import RetentionOps
from mcp_chat.stores.redis.rooms import RoomOps


class RedisStore(RoomOps, MessageOps, RetentionOps, QueueOps, PresenceOps, Feed):
    """The store on one Redis or one cluster, shared by every instance that opens the same URL
    and prefix."""


__all__ = ["DEFAULT_PREFIX", "POOL_SIZE", "RedisStore", "parse_url"]
