package redis

import (
	"fmt"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// Every script gets the namespace as ARGV[1] and the session id as
// ARGV[2], and builds key names itself: keys depend on what the script
// reads (the owners of members, the holder of a lock), so they cannot all
// be declared up front. That rules out Redis Cluster, as tooz does; a
// single server or a Sentinel-managed master is fine.
//
// Status replies: every script answers a table whose first element is a
// status code (see the st* constants).
const (
	stOK       = 0
	stLost     = 1 // the session's record is gone
	stNotFound = 2
	stExists   = 3
	stNotMem   = 4
	stNotEmpty = 5
	stHeld     = 6
	stNotHeld  = 7
)

// Key kinds: a key is the namespace, a kind's prefix and a name. This one
// table gives both the Go code (session.key) and the scripts (lib's k_*
// functions, generated from it) their key names, so the two cannot drift.
const (
	kGroup  = "_group:"    // tooz's group hash: member -> capabilities
	kBeat   = "_beats:"    // tooz's member beat key
	kSess   = "_muster:s:" // a session's record
	kInst   = "_muster:i:" // an instance's latest session
	kOwners = "_muster:o:" // member -> owning session
	kDown   = "_muster:d:" // members forced down
	kFence  = "_muster:f:" // a lock's last fencing token
	kEvents = "_muster:e:" // a group's pub/sub channel
)

var keyKinds = []struct{ lua, prefix string }{
	{"k_group", kGroup}, {"k_beat", kBeat}, {"k_sess", kSess}, {"k_inst", kInst},
	{"k_owners", kOwners}, {"k_down", kDown}, {"k_fence", kFence}, {"k_events", kEvents},
}

func (s *session) key(kind, name string) string { return s.cfg.namespace + kind + name }

// lib is prepended to every script: key names and the liveness rule.
var lib = luaKeys() + `local function k_groups() return ns .. '_groups' end
local function k_lock(l) return "b'" .. ns .. "'_" .. l .. '_lock' end
local CREATED = '__created__'
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function live_session()
  return redis.call('EXISTS', k_sess(sid)) == 1
end
-- liveness of member m whose owning session is owner (false or nil for a
-- tooz member, which has none): alive, updated-at (ms)
local function owner_state(owner, m, tooz_ttl, now)
  if owner then
    local r = redis.call('HGET', k_sess(owner), 'r')
    if r then return true, tonumber(r) end
    return false, 0
  end
  local pttl = redis.call('PTTL', k_beat(m))
  if pttl == -2 then return false, 0 end
  if pttl == -1 then return true, now end
  local upd = now - (tooz_ttl - pttl)
  if upd > now then upd = now end
  return true, upd
end
-- liveness of member m of group g: alive, updated-at (ms)
local function member_state(g, m, tooz_ttl, now)
  return owner_state(redis.call('HGET', k_owners(g), m), m, tooz_ttl, now)
end
local function drop_member(g, m)
  redis.call('HDEL', k_group(g), m)
  redis.call('HDEL', k_owners(g), m)
  redis.call('PUBLISH', k_events(g), 'l ' .. m)
end
-- parse a muster lock value: "muster1 <sid> <token> <member>"
local function parse_lock(v)
  if not v then return nil end
  local s, tok, m = string.match(v, '^muster1 (%S+) (%d+) (.*)$')
  return s, tok, m
end
-- the live holder's value of lock l, nil when free (a dead holder's record
-- is removed)
local function lock_value(l)
  local v = redis.call('GET', k_lock(l))
  if not v then return nil end
  local s = parse_lock(v)
  if s and redis.call('EXISTS', k_sess(s)) == 0 then
    redis.call('DEL', k_lock(l))
    return nil
  end
  return v
end
-- end session s: leave its groups, free its locks
local function end_session(s)
  local f = redis.call('HGETALL', k_sess(s))
  local m
  for i = 1, #f, 2 do if f[i] == 'm' then m = f[i+1] end end
  for i = 1, #f, 2 do
    local key, val = f[i], f[i+1]
    local p = string.sub(key, 1, 2)
    if p == 'g:' and m then
      local g = string.sub(key, 3)
      if redis.call('HGET', k_owners(g), m) == s then drop_member(g, m) end
    elseif p == 'l:' then
      local l = string.sub(key, 3)
      if redis.call('GET', k_lock(l)) == val then redis.call('DEL', k_lock(l)) end
    end
  end
  if m and redis.call('GET', k_beat(m)) == s then redis.call('DEL', k_beat(m)) end
  redis.call('DEL', k_sess(s))
end
`

func script(body string) *goredis.Script { return goredis.NewScript(lib + body) }

// luaKeys declares the scripts' ns and sid and a k_* function per key kind.
func luaKeys() string {
	var b strings.Builder
	b.WriteString("local ns, sid = ARGV[1], ARGV[2]\n")
	for _, k := range keyKinds {
		fmt.Fprintf(&b, "local function %s(n) return ns .. '%s' .. n end\n", k.lua, k.prefix)
	}
	return b.String()
}

// ARGV: ns, sid, member, instance, ttl_ms
var openScript = script(`
local m, inst, ttl = ARGV[3], ARGV[4], tonumber(ARGV[5])
if inst ~= '' then
  local old = redis.call('GET', k_inst(inst))
  if old and old ~= sid then end_session(old) end
  redis.call('SET', k_inst(inst), sid, 'PX', ttl)
end
redis.call('HSET', k_sess(sid), 'm', m, 'i', inst, 't', ttl, 'r', now_ms())
redis.call('PEXPIRE', k_sess(sid), ttl)
redis.call('SET', k_beat(m), sid, 'PX', ttl)
return {0}
`)

// ARGV: ns, sid, member, instance, ttl_ms. Answers {status, lost locks...}.
var heartbeatScript = script(`
local m, inst, ttl = ARGV[3], ARGV[4], tonumber(ARGV[5])
if not live_session() then return {1} end
redis.call('PEXPIRE', k_sess(sid), ttl)
redis.call('HSET', k_sess(sid), 'r', now_ms())
redis.call('SET', k_beat(m), sid, 'PX', ttl)
if inst ~= '' and redis.call('GET', k_inst(inst)) == sid then redis.call('PEXPIRE', k_inst(inst), ttl) end
local out = {0}
local f = redis.call('HGETALL', k_sess(sid))
for i = 1, #f, 2 do
  if string.sub(f[i], 1, 2) == 'l:' then
    local l = string.sub(f[i], 3)
    if redis.call('GET', k_lock(l)) == f[i+1] then
      redis.call('PEXPIRE', k_lock(l), ttl)
    else
      redis.call('HDEL', k_sess(sid), f[i])
      table.insert(out, l)
    end
  end
end
return out
`)

// ARGV: ns, sid
var closeScript = script(`
local inst = redis.call('HGET', k_sess(sid), 'i')
end_session(sid)
if inst and inst ~= '' and redis.call('GET', k_inst(inst)) == sid then redis.call('DEL', k_inst(inst)) end
return {0}
`)

// ARGV: ns, sid, group
var createScript = script(`
local g = ARGV[3]
if not live_session() then return {1} end
if redis.call('EXISTS', k_group(g)) == 1 then return {3} end
redis.call('SADD', k_groups(), g)
redis.call('HSET', k_group(g), CREATED, '1')
return {0}
`)

// ARGV: ns, sid, group, tooz_ttl_ms
var deleteScript = script(`
local g, tt = ARGV[3], tonumber(ARGV[4])
if not live_session() then return {1} end
if redis.call('EXISTS', k_group(g)) == 0 then return {2} end
local now = now_ms()
local f = redis.call('HKEYS', k_group(g))
for _, m in ipairs(f) do
  if m ~= CREATED then
    local alive = member_state(g, m, tt, now)
    if alive then return {5} end
    drop_member(g, m)
  end
end
redis.call('SREM', k_groups(), g)
redis.call('DEL', k_group(g), k_owners(g), k_down(g))
redis.call('PUBLISH', k_events(g), 'd')
return {0}
`)

// ARGV: ns, sid
var groupsScript = script(`
if not live_session() then return {1} end
return {0, redis.call('SMEMBERS', k_groups())}
`)

// ARGV: ns, sid, group, member, caps, tooz_ttl_ms
var joinScript = script(`
local g, m, caps, tt = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
if not live_session() then return {1} end
if redis.call('EXISTS', k_group(g)) == 0 then return {2} end
if redis.call('HEXISTS', k_group(g), m) == 1 then
  local alive = member_state(g, m, tt, now_ms())
  if alive then return {3} end
  drop_member(g, m)
end
redis.call('HSET', k_group(g), m, caps)
redis.call('HSET', k_owners(g), m, sid)
redis.call('HSET', k_sess(sid), 'g:' .. g, '1')
redis.call('PUBLISH', k_events(g), 'j ' .. m)
return {0}
`)

// ARGV: ns, sid, group, member
var leaveScript = script(`
local g, m = ARGV[3], ARGV[4]
if not live_session() then return {1} end
if redis.call('EXISTS', k_group(g)) == 0 then return {2} end
if redis.call('HGET', k_owners(g), m) ~= sid or redis.call('HEXISTS', k_group(g), m) == 0 then return {4} end
drop_member(g, m)
redis.call('HDEL', k_sess(sid), 'g:' .. g)
return {0}
`)

// ARGV: ns, sid, group, member, caps
var setCapsScript = script(`
local g, m, caps = ARGV[3], ARGV[4], ARGV[5]
if not live_session() then return {1} end
if redis.call('EXISTS', k_group(g)) == 0 then return {2} end
if redis.call('HGET', k_owners(g), m) ~= sid or redis.call('HEXISTS', k_group(g), m) == 0 then return {4} end
redis.call('HSET', k_group(g), m, caps)
redis.call('PUBLISH', k_events(g), 'c ' .. m)
return {0}
`)

// ARGV: ns, sid, group, member, down ("1" or "")
var forceDownScript = script(`
local g, m, down = ARGV[3], ARGV[4], ARGV[5]
if not live_session() then return {1} end
if redis.call('EXISTS', k_group(g)) == 0 then return {2} end
if down == '1' then redis.call('SADD', k_down(g), m) else redis.call('SREM', k_down(g), m) end
redis.call('PUBLISH', k_events(g), 'c ' .. m)
return {0}
`)

// ARGV: ns, sid, group, tooz_ttl_ms, only (empty for all). Answers {0, now,
// m1, caps1, updated1, down1, ...}; dead members are pruned on the way.
var membersScript = script(`
local g, tt, only = ARGV[3], tonumber(ARGV[4]), ARGV[5]
if not live_session() then return {1} end
if redis.call('EXISTS', k_group(g)) == 0 then return {2} end
local now = now_ms()
local out, n = {0, now}, 2
local f, owners, down = {}, {}, {}
if only == '' then
  -- The whole group: its owners and marks in one call each, not one per
  -- member (a group of 10,000 took 30,000 calls).
  f = redis.call('HGETALL', k_group(g))
  local o = redis.call('HGETALL', k_owners(g))
  for i = 1, #o, 2 do owners[o[i]] = o[i+1] end
  for _, m in ipairs(redis.call('SMEMBERS', k_down(g))) do down[m] = 1 end
else
  -- One member: its fields alone, whatever the group's size.
  local caps = redis.call('HGET', k_group(g), only)
  if caps then
    f = {only, caps}
    owners[only] = redis.call('HGET', k_owners(g), only)
    down[only] = redis.call('SISMEMBER', k_down(g), only)
  end
end
for i = 1, #f, 2 do
  local m = f[i]
  if m ~= CREATED then
    local alive, upd = owner_state(owners[m], m, tt, now)
    if alive then
      out[n+1], out[n+2], out[n+3], out[n+4] = m, f[i+1], upd, down[m] or 0
      n = n + 4
    else
      drop_member(g, m)
    end
  end
end
return out
`)

// ARGV: ns, sid, group, tooz_ttl_ms, m1, m2, ...: drops each named member
// that is not live, as membersScript would (MemberStates found them dead
// outside a script, so each is judged again here).
var pruneScript = script(`
local g, tt = ARGV[3], tonumber(ARGV[4])
if not live_session() then return {1} end
if redis.call('EXISTS', k_group(g)) == 0 then return {2} end
local now = now_ms()
for i = 5, #ARGV do
  local m = ARGV[i]
  if m ~= CREATED and redis.call('HEXISTS', k_group(g), m) == 1 and not member_state(g, m, tt, now) then
    drop_member(g, m)
  end
end
return {0}
`)

// ARGV: ns, sid, group, tooz_ttl_ms. Answers {0, m1, caps1, updated1,
// down1, alive1, ...}: every member field of the group hash, live or not
// (updated is 0 once a dead member's session record has expired), then the
// forced-down names with no field (caps false). It writes nothing, unlike
// membersScript: listing the dead must not prune them.
var knownScript = script(`
local g, tt = ARGV[3], tonumber(ARGV[4])
if not live_session() then return {1} end
if redis.call('EXISTS', k_group(g)) == 0 then return {2} end
local now = now_ms()
local out = {0}
local listed = {}
local f = redis.call('HGETALL', k_group(g))
for i = 1, #f, 2 do
  local m = f[i]
  if m ~= CREATED then
    local alive, upd = member_state(g, m, tt, now)
    listed[m] = true
    table.insert(out, m)
    table.insert(out, f[i+1])
    table.insert(out, upd)
    table.insert(out, redis.call('SISMEMBER', k_down(g), m))
    table.insert(out, alive and 1 or 0)
  end
end
for _, m in ipairs(redis.call('SMEMBERS', k_down(g))) do
  if not listed[m] then
    table.insert(out, m)
    table.insert(out, false)
    table.insert(out, 0)
    table.insert(out, 1)
    table.insert(out, 0)
  end
end
return out
`)

// ARGV: ns, sid, lock, member, ttl_ms. Answers {0, token}.
var lockScript = script(`
local l, m, ttl = ARGV[3], ARGV[4], tonumber(ARGV[5])
if not live_session() then return {1} end
if lock_value(l) then return {6} end
local last = tonumber(redis.call('GET', k_fence(l)) or '0')
local tok = now_us()
if tok <= last then tok = last + 1 end
local ts = string.format('%.0f', tok)
redis.call('SET', k_fence(l), ts)
local v = 'muster1 ' .. sid .. ' ' .. ts .. ' ' .. m
redis.call('SET', k_lock(l), v, 'PX', ttl)
redis.call('HSET', k_sess(sid), 'l:' .. l, v)
return {0, ts}
`)

// ARGV: ns, sid, lock, value
var unlockScript = script(`
local l, v = ARGV[3], ARGV[4]
if not live_session() then return {1} end
if redis.call('GET', k_lock(l)) ~= v then return {7} end
redis.call('HDEL', k_sess(sid), 'l:' .. l)
redis.call('DEL', k_lock(l))
return {0}
`)

// ARGV: ns, sid, lock. Answers {0, value} or {7}.
var holderScript = script(`
local l = ARGV[3]
if not live_session() then return {1} end
local v = lock_value(l)
if not v then return {7} end
return {0, v}
`)

// ARGV: ns, sid, lock
var breakScript = script(`
local l = ARGV[3]
if not live_session() then return {1} end
local v = lock_value(l)
if not v then return {7} end
redis.call('DEL', k_lock(l))
local s = parse_lock(v)
if s then redis.call('HDEL', k_sess(s), 'l:' .. l) end
return {0}
`)
