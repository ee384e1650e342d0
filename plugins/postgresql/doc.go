// Package postgresql is muster's PostgreSQL backend, built on pgx v5:
// postgresql://user:pass@host:port/db?sslmode=... (also postgres://, a
// unix socket with ?host=/run/postgresql or an escaped socket directory as
// the host, TLS with sslmode, sslrootcert, sslcert and sslkey). Other
// options are sent to the server as run-time parameters, e.g.
// ?search_path=muster to keep muster's tables in a schema of their own;
// pool_max_conns sizes the pool the sessions of one process share
// (default 8).
//
// Everything lives in muster_* tables, created on first use (or ahead of
// time: CreateSchema, SchemaSQL, GrantSQL), versioned in muster_schema:
//
//	muster_sessions     id, member, instance, ttl, renewed_at, expires_at
//	muster_groups       name
//	muster_members      (group_name, member) -> session_id, capabilities
//	muster_forced_down  (group_name, member)
//	muster_locks        name -> session_id, member, token
//	muster_fencing_tokens  the sequence every token comes from
//
// Liveness is decided by the server's clock: a session is live while
// expires_at > now(), which Heartbeat moves to now() + ttl. Every read
// filters on it, so members and locks of a dead session are never listed
// or honoured, whoever reads and whenever the dead rows are deleted (each
// process's janitor deletes a bounded batch every half TTL; members and
// locks go with their session by cascade). UpdatedAt is renewed_at.
//
// Members is one statement for any group size (the group joined with its
// members' live sessions and forced-down marks, by primary keys). Locks are
// rows owned by a session; a lock whose session expired is taken over by
// the next TryLock, so a frozen holder loses it at its TTL. Fencing tokens
// come from one sequence, drawn once the taker owns the lock's row and
// committed with it: they strictly increase per lock name, across server
// restarts and crashes.
//
// Watch LISTENs on a per-group channel that every change NOTIFYs in its
// own transaction; the core re-reads the group on each notification.
//
// TryLock also refuses a lock that OpenStack tooz's PostgreSQL driver holds
// (tooz takes pg_advisory_lock(md5(name)[0], md5(name)[1])): it probes that
// key with a shared transaction-scoped advisory lock in the acquiring
// transaction. tooz does not see muster's locks (see
// docs/backends/postgresql.md for why).
package postgresql
