// Package file is muster's embedded default backend: a directory shared by
// the processes of one host (file:///var/lib/muster).
//
// Liveness is decided by the filesystem's clock. A session is a file whose
// modification time Heartbeat sets to "now" as the kernel (or the file
// server) sees it, and a reader judges a session by comparing that time with
// the filesystem's now, read back from a scratch file it touches. No two
// clients' clocks are ever compared.
//
// Every read-modify-write of a record happens under a short flock(2) on one
// lock file, and records are written to a temporary file and renamed into
// place, so readers never take the lock and never see half a record; lock
// records and renewals, rewritten in place, carry checksums instead, and a
// reader that races a rewrite reads again. A muster lock is a record, not
// a held flock: a frozen holder loses it when its session expires. Records of dead sessions are treated as absent and
// deleted by whoever comes across them.
//
// Layout of the directory (names are used as file names as they are: every
// kind of record has a directory of its own, so no user name can collide
// with an internal file):
//
//	format                   "muster-file 3": the layout version
//	lock                     flock(2) target for every read-modify-write
//	clock                    scratch file touched to read the filesystem's now
//	swept                    mtime = when expired sessions were last swept
//	sessions/<id>            one per session; mtime = last renewal;
//	                         content: member, instance, TTL, pid
//	instances/<hash>         the id of the latest session of an instance
//	groups/<group>/          one directory per group
//	groups/<group>/<member>  membership: session id, TTL, capabilities
//	marks/<group>/<member>   forced-down marks; outlive sessions
//	locks/<name>             three checksummed slots (see lockfile.go): the
//	                         holder (session, member, TTL) and the last
//	                         fencing token issued, kept when free; and
//	                         twice, the fsynced token ceiling
//	tmp/w-<16 hex>           temporary files; leftovers of killed writers
//
// Ownership: Open uses a directory only if it is missing, empty, or holds
// the format file; it refuses any other directory, and system roots (/,
// /tmp, /var, /etc, ...) outright, touching nothing. Inside, it removes
// only what it can identify as its own (records that parse, its own
// temporary names); any other file is left alone.
//
// Durability: no token is returned above the lock's fsynced ceiling, which
// is raised (and fsynced) once per 1,024 tokens; after a power cut, which
// changes the boot id, the next token is above the ceiling. Lock files are
// never deleted, so tokens never go backwards, even across a power cut. Other records
// survive a killed process, not a power cut, which ends every session of
// the host anyway. See docs/backends/file.md.
package file
