// Package zookeeper is muster's ZooKeeper backend
// (zookeeper://host1:2181,host2:2181/[chroot]?timeout=10s, or tooz's
// kazoo://...), built on github.com/go-zookeeper/zk.
//
// One Driver is one ZooKeeper session, requested with a session timeout of
// the member TTL. Members are tooz's ephemeral znodes
// <chroot>/<namespace>/<group>/<member> (namespace "tooz" unless
// ?namespace= says otherwise) holding msgpack capabilities, so tooz and
// muster see each other's members. Locks use kazoo's Lock recipe at
// <chroot>/<namespace>/locks/<name>, as tooz does, so a tooz lock and a
// muster lock of one name exclude each other; "locks" is therefore not a
// usable group name. Everything else muster keeps (session records,
// instance records, forced-down marks) lives under <chroot>/muster/<namespace>,
// which tooz never lists.
//
// Liveness reflects the host: ZooKeeper's client pings by itself, so the
// Driver ends its own ZooKeeper session when no Heartbeat was called for
// a TTL; a frozen process loses its session by ZooKeeper's own timeout.
// See docs/backends/zookeeper.md.
package zookeeper
