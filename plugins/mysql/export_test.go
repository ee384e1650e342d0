package mysql

import "fmt"

// HotQueries are the statements of the hot path, for EXPLAIN.
var HotQueries = map[string]string{
	"heartbeat":     heartbeatSQL,
	"sweep":         sweepSQL,
	"end instance":  endInstanceSQL,
	"members":       fmt.Sprintf(membersQuery, ""),
	"member":        fmt.Sprintf(membersQuery, "AND m.member = ?"),
	"lock row":      lockRowSQL,
	"session alive": sessionAliveSQL,
	"lock holder":   lockHolderSQL,
	"unlock":        unlockSQL,
	"insert lock":   insertLockSQL + toozFreeSQL,
	"holder alive":  holderAliveSQL,
}
