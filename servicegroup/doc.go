// Package servicegroup is muster's public API: group membership with
// liveness, leader election and distributed locks with fencing tokens, over
// any backend (file, memory, and the networked ones as plugins).
//
// It speaks Nova's service-group vocabulary. A compute host Joins a group
// and stays up while its process heartbeats; a scheduler asks IsUp or
// GetAll and never sends work to a dead host; an operator can ForceDown a
// host. The core owns what tooz leaves to every caller: the heartbeat loop,
// re-opening a lost session and re-joining its groups, reporting locks and
// leadership lost on channels, and pushing Watch events without a
// run_watchers() call.
//
// Liveness is decided by the backend's clock, never by comparing two
// clients' clocks.
package servicegroup
