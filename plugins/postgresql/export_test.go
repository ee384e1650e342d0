package postgresql

// Statements the external tests EXPLAIN.
const (
	MembersSQL   = membersSQL
	MemberSQL    = memberSQL
	HeartbeatSQL = heartbeatSQL
	CleanupSQL   = cleanupSQL
)
