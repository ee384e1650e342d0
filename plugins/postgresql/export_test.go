package postgresql

// Statements the external tests EXPLAIN.
const (
	MembersSQL   = membersSQL
	HeartbeatSQL = heartbeatSQL
	CleanupSQL   = cleanupSQL
)
