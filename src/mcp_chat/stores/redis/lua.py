"""The Redis store's Lua scripts: each runs atomically in Redis, and is the one written
restatement of rules that the memory and SQLite stores call as Python functions. Where a
script restates one, the pure function is the reference, and the store contract checks both
against it (tests/test_stores_walk.py):

  COUNT_UNREAD  reading.unread: messages from others past the read position
  APPEND        mode 'text': a message appended, with the sender's unread (reading.unread);
                mode 'gone': presence.goes decides whether a 'disconnected' mark is due, and
                presence.mark's flag is set (the event is presence.mark's draft, made in Python)
  CLAIM         reading.read: reading.window, reading.take (in chunks of the log) and
                reading.cursor_after; a peek (move '0') answers the read position unmoved
  UNREAD        reading.unread
  TOUCH         presence.seen: last_seen rises, never falls (sent whole, as EVAL: it runs in
                a pipeline, which on a cluster does not load scripts)
  DEQUEUE       matching.stale with a cutoff (a sweep), or leave_queue without one

Coming back and pairing are WATCH/MULTI transactions in Python instead (stores/redis/presence.py,
queue.py), which call `rooms` and `matching` themselves.
"""

# A log entry is a JSON array [message_id, sender_id, sender_name, kind, text, timestamp],
# and a seventh item, the list of ids it mentions, when it has any (entries written before
# mentions existed have six); its score in the room's log is its seq. Scripts read only the
# sender (item 2), and return a status word first.

COUNT_UNREAD = """
-- Messages in `log` past `cursor` from anyone but `participant_id`: all past it, less the
-- participant's own (`sent`), two O(log n) counts. A participant stored before `sent` was kept
-- (no `indexed` flag) has its part of the log read instead.
local function count_unread(log, sent, cursor, participant_id, indexed)
  local past = '(' .. cursor
  if indexed == '1' then
    return redis.call('ZCOUNT', log, past, '+inf') - redis.call('ZCOUNT', sent, past, '+inf')
  end
  local n = 0
  for _, item in ipairs(redis.call('ZRANGE', log, past, '+inf', 'BYSCORE')) do
    if cjson.decode(item)[2] ~= participant_id then n = n + 1 end
  end
  return n
end
"""

APPEND = (
    COUNT_UNREAD
    + """
-- KEYS: participant, room, log, keys, participant's sent (all in the room's slot)
-- ARGV: mode, payload, dedup field ('' for none), channel ('' for none), notice, participant id,
--       silent-since cutoff ('' for none), the participant's room id as the caller knows it
-- mode 'text': a participant's message; the answer ends with the sender's unread count.
-- A sender marked gone holds no seat and gets 'gone' (it must come back first, see rooms.py).
-- 'gone': a presence event that also sets the participant's gone flag, and is skipped if it
-- no longer applies (presence.goes: not left, the room open, not gone already, and silent
-- since the cutoff when one is given). Coming back is a transaction instead
-- (RedisStore.come_back): whether a seat is free is a rule of rooms.py. The caller takes a
-- participant marked gone out of the `present` index (a key of its own, see keys.py).
local mode = ARGV[1]
local p = redis.call('HMGET', KEYS[1], 'left', 'gone', 'last_seen', 'cursor', 'indexed',
                     'room_id')
local function unread() return count_unread(KEYS[3], KEYS[5], p[4], ARGV[6], p[5]) end
if not p[1] then
  if mode == 'text' then return {'unknown'} end
  return {'skip'}
end
if p[6] ~= ARGV[8] then return {'moved'} end
if p[1] == '1' then
  if mode == 'text' then return {'left'} end
  return {'skip'}
end
if ARGV[3] ~= '' then
  local seq = redis.call('HGET', KEYS[4], ARGV[3])
  if seq then
    return {'duplicate', seq, redis.call('ZRANGE', KEYS[3], seq, seq, 'BYSCORE')[1], unread()}
  end
end
if redis.call('HGET', KEYS[2], 'ended') == '1' then
  if mode == 'text' then return {'ended'} end
  return {'skip'}
end
if mode == 'text' and p[2] == '1' then return {'gone'} end
if mode == 'gone' then
  if p[2] == '1' then return {'skip'} end
  if ARGV[7] ~= '' and tonumber(p[3]) > tonumber(ARGV[7]) then return {'skip'} end
  redis.call('HSET', KEYS[1], 'gone', '1')
end
local seq = redis.call('HINCRBY', KEYS[2], 'last_seq', 1)
redis.call('ZADD', KEYS[3], seq, ARGV[2])
redis.call('ZADD', KEYS[5], seq, seq)
if ARGV[3] ~= '' then redis.call('HSET', KEYS[4], ARGV[3], seq) end
if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[4], ARGV[5]) end
if mode == 'text' then return {'ok', seq, unread()} end
return {'ok', seq}
"""
)

CLAIM = """
-- KEYS: participant, room, log.
-- ARGV: after ('' for the read position), limit, participant id, its room id as known,
--       through ('' for none), move ('1' to claim, '0' to peek)
-- reading.read: the first `limit` messages from others in reading.window (past the start,
-- not past `through`); the read position moves past them (reading.cursor_after), or to the
-- end (or to `through`) when nothing more remains. A peek moves nothing and answers the read
-- position.
-- A reader marked gone in an open room holds no seat: its claim gets 'gone' (see APPEND).
-- The answer: 'ok', the read position after, the one before, whether more remains, whether
-- the room ended, then each message taken and its seq.
local p = redis.call('HMGET', KEYS[1], 'left', 'cursor', 'room_id', 'gone')
if not p[1] then return {'unknown'} end
if p[3] ~= ARGV[4] then return {'moved'} end
if p[1] == '1' then return {'left'} end
local room = redis.call('HMGET', KEYS[2], 'last_seq', 'ended')
if ARGV[6] ~= '0' and p[4] == '1' and room[2] ~= '1' then return {'gone'} end
local last = tonumber(room[1])
local start = tonumber(p[2])
if ARGV[1] ~= '' then start = math.max(tonumber(ARGV[1]), 0) end
start = math.min(start, last)
local stop = last
if ARGV[5] ~= '' then stop = math.max(start, math.min(tonumber(ARGV[5]), last)) end
local limit = tonumber(ARGV[2])
local taken = {}
local count = 0
local more = 0
local from = start
while more == 0 do
  local chunk = redis.call('ZRANGE', KEYS[3], '(' .. from, stop, 'BYSCORE',
                           'LIMIT', 0, limit + 1, 'WITHSCORES')
  if #chunk == 0 then break end
  for i = 1, #chunk, 2 do
    if cjson.decode(chunk[i])[2] ~= ARGV[3] then
      if count == limit then more = 1 break end
      count = count + 1
      taken[#taken + 1] = chunk[i]
      taken[#taken + 1] = chunk[i + 1]
    end
    from = chunk[i + 1]
  end
end
local cursor = stop
if more == 1 then cursor = tonumber(taken[#taken]) end
if ARGV[6] == '0' then
  cursor = tonumber(p[2])
elseif cursor ~= tonumber(p[2]) then
  redis.call('HSET', KEYS[1], 'cursor', cursor)
end
return {'ok', cursor, p[2], more, room[2], unpack(taken)}
"""

UNREAD = (
    COUNT_UNREAD
    + """
-- KEYS: participant, log, participant's sent.  ARGV: participant id, its room id as known
local p = redis.call('HMGET', KEYS[1], 'left', 'cursor', 'indexed', 'room_id')
if not p[1] then return {'unknown'} end
if p[4] ~= ARGV[2] then return {'moved'} end
if p[1] == '1' then return {'left'} end
return {'ok', count_unread(KEYS[2], KEYS[3], p[2], ARGV[1], p[3])}
"""
)

TOUCH = """
-- KEYS: a participant or a queue entry.  ARGV: when
-- Raises last_seen (never lowers it); returns the gone flag ('' if none, or no such record).
-- The `present` index is raised apart from it (ZADD XX GT: a key of its own, see keys.py).
if redis.call('EXISTS', KEYS[1]) == 0 then return '' end
if tonumber(ARGV[1]) > tonumber(redis.call('HGET', KEYS[1], 'last_seen')) then
  redis.call('HSET', KEYS[1], 'last_seen', ARGV[1])
end
return redis.call('HGET', KEYS[1], 'gone') or ''
"""

DEQUEUE = """
-- KEYS: queue entry, queue, qsecrets.  ARGV: entry id, silent-since cutoff ('' for none)
-- Removes a waiting entry (never a matched one); 1 if it did.
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
if ARGV[2] ~= '' and tonumber(redis.call('HGET', KEYS[1], 'last_seen')) > tonumber(ARGV[2]) then
  return 0
end
local secret = redis.call('HGET', KEYS[1], 'secret_hash')
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if secret then redis.call('HDEL', KEYS[3], secret) end
return 1
"""
