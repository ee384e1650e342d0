// Package partition splits work between the live members of a group, as
// Ceilometer's central agents split their polling: each member builds a
// Partitioner over the group, and the Partitioner follows the group through
// a servicegroup.View and keeps a consistent-hash ring
// (servicegroup/hashring) of the up members (live, not forced down) in
// step. Each member then asks, on its own and without talking to
// the others, which keys are its share: Owns(key), Subset(keys) (tooz's and
// Ceilometer's extract_my_subset), Owners(key, replicas).
//
// Because the ring is a pure function of the member set, members that see
// the same set agree on every key's owner: the subsets are disjoint and
// their union is every key. When a member joins, leaves or dies (its session
// expires after the member TTL), every Partitioner sees the change, Changed
// fires, and the keys move: only those of the member that left, or only to
// the member that joined.
//
// A member forced down (ServiceGroup.ForceDown) owns nothing until the
// mark is cleared. A member's share is proportional to its "weight"
// capability (an integer, default 1), as in tooz's partitioner; a change of
// it moves keys as soon as the view sees it. With hashring.Tooz the split is the
// one tooz's Partitioner computes, so Go and Python agents can share a
// group.
package partition
