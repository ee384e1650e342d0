// Package hashring assigns keys to the members of a group by consistent
// hashing, so that every member can compute, alone, which keys are its own
// and all members agree.
//
// A Ring is a pure function of its algorithm and its member set. Adding a
// member moves to it about 1/(N+1) of the keys, taken from the others, and
// no other key; removing a member moves only that member's keys. Weights
// make shares proportional, and Owners gives each key a list of distinct
// replicas in preference order, optionally skipping members (for example
// those known to be down).
//
// Two algorithms are provided. Default (muster's own) answers Owner in tens
// of nanoseconds with one hash and one load from a table of 2^21 slots
// (4 MiB per Ring whatever the number of members). Members' shares of the
// keys are within about 0.6% of even (one standard deviation) up to a few
// hundred members; beyond, the table's slots get shared among more members
// and the spread grows, to about 2% at 1,000 members and 5% at 5,000. Tooz
// reproduces the hash ring of OpenStack's tooz library bit for bit, for
// groups shared with Python processes; its spread is about 18% (the
// busiest of 100 members gets about 1.5 times the mean).
//
// Owners with more than one replica, or with members to ignore, enumerates
// the points near the key: about a microsecond at 100 members and a few at
// 1,000 with Default, under a microsecond with Tooz.
//
// Rings are immutable and safe for concurrent use. With and Without return
// updated copies, identical to what New builds from the new member set; with
// Default at 1,000 members they take 5-15 ms where New takes 25-50 ms on two
// cores.
package hashring
