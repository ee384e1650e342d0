// Package mysql is muster's MySQL and MariaDB backend
// (mysql://user:pass@host:port/db?tls=..., tooz's URL form, also
// ?unix_socket=/path), built on go-sql-driver/mysql and database/sql.
//
// Every record is a row in muster's own InnoDB tables (prefix muster_),
// created on first use or ahead of time by CreateSchema, and versioned in
// muster_schema:
//
//	muster_sessions     id, member, instance, ttl_us, renewed_at, expires_at
//	muster_groups       name, created_at
//	muster_members      (grp, member) -> session_id, caps (msgpack)
//	muster_forced_down  (grp, member)
//	muster_locks        name -> session_id, member, token, acquired_at
//	muster_tokens       the fencing-token auto-increment counter
//
// Liveness is decided by the server's clock: a session row's expires_at is
// CURRENT_TIMESTAMP(6) + its TTL, computed by the server at every
// Heartbeat, and every read of members or locks joins on a live session.
// Members and locks of a session are deleted with it (foreign keys, ON
// DELETE CASCADE): by Close at once, by a bounded sweep of dead sessions
// that heartbeats run, or by the next Join or TryLock that finds them.
//
// Fencing tokens come from one auto-increment counter (InnoDB keeps it
// across restarts since MariaDB 10.2.4 / MySQL 8.0), so they strictly
// increase per lock name, and across names. A lock whose holder's session
// expired is taken over by the next TryLock: a frozen holder loses it at
// its TTL, unlike a GET_LOCK bound to a connection.
//
// tooz's MySQL driver locks with GET_LOCK(name): TryLock refuses a name
// for which such a lock is held (on the whole server, as GET_LOCK names
// are not per database), but a muster lock does not stop tooz from
// taking GET_LOCK on the same name. See docs/backends/mysql.md.
package mysql
