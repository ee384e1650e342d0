// Package etcd is muster's etcd v3 backend
// (etcd://host1:2379,host2:2379[/prefix]?options, or tooz's
// etcd3+http://host:2379 and etcd3+https://host:2379), built on
// go.etcd.io/etcd/client/v3 and tested against etcd 3.4 servers.
//
// One Driver is one etcd lease, granted with the member TTL rounded up to
// whole seconds and renewed only by Heartbeat (one keep-alive request
// each): a host that stops heartbeating loses its session when the lease
// runs out, whatever its plugin does. Members are tooz's keys
// tooz/groups/<group>/<member> on that lease, holding msgpack
// capabilities, so tooz and muster see each other's members. Locks are
// tooz's single keys (both of tooz's etcd drivers' spellings at once), on
// the lease, with the key's create revision as the fencing token; blocking
// waiters queue in revision order, each watching its predecessor. Session
// records, instance records, lock queues and forced-down marks live under
// muster/, which tooz never lists. Watch is a native etcd watch on the
// group's prefix. See docs/backends/etcd.md.
package etcd
