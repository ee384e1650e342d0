package file

// SetSyncLocks turns the fsync of lock records on or off, for the
// benchmark that measures it; it returns the previous setting.
func SetSyncLocks(on bool) (was bool) {
	was, syncLocks = syncLocks, on
	return was
}

// ParseURL is the URL check Open runs before it touches anything.
func ParseURL(raw string) (string, error) { return parseURL(raw) }
