// Package redis is muster's Redis backend (redis://host:port,
// rediss://... with TLS, redis:///path/to/socket, and Sentinel with
// ?sentinel=<master>&sentinel_fallback=host:port), built on go-redis v9.
//
// Membership uses OpenStack tooz's layout, so tooz services and muster
// agents see each other in one group (namespace N, tooz's default
// "_tooz", chosen with ?namespace=):
//
//	N_groups                 set: every group's name
//	N_group:<g>              hash: "__created__" = "1", <member> = msgpack caps
//	N_beats:<m>              string with a millisecond TTL: the member is alive
//	b'N'_<lock>_lock         a lock (tooz's key, py3 formatting included):
//	                         "muster1 <session> <token> <member>", PX TTL
//
// and records tooz never reads:
//
//	N_muster:s:<session>     hash, TTL = the session's: member, instance,
//	                         TTL, renewed-at (server TIME, ms), g:<group>
//	                         and l:<lock> entries (what Close frees)
//	N_muster:i:<instance>    the instance's latest session
//	N_muster:o:<g>           hash: member -> owning session
//	N_muster:d:<g>           set: members forced down
//	N_muster:f:<lock>        the last fencing token issued (never expires)
//	N_muster:e:<g>           pub/sub channel of the group's changes
//
// Every operation is one Lua script (one round trip), so a check and its
// write are atomic: a duplicate join never overwrites the first member's
// capabilities, dead members are pruned inside the script that finds
// them, and Members costs one round trip for any group size.
//
// Liveness is decided by Redis's clock: a muster member is alive while its
// owning session's key exists (its TTL is renewed by Heartbeat); a tooz
// member while its beat key exists. UpdatedAt is the server's TIME at the
// last renewal (for a tooz member: derived from the beat key's PTTL and
// ?membership_timeout=, tooz's option, 30 s by default).
//
// Fencing tokens are max(last token + 1, the server's TIME in
// microseconds), computed in the lock script: a server restarted empty
// never hands out a smaller token than before, as long as its clock has
// not gone back past the last token issued.
package redis
