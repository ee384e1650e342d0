package zookeeper_test

import "github.com/musterhq/muster/internal/testserver"

// cluster is the 3-node ensemble of the fault tests, started once by the
// first of them.
var cluster *testserver.ZooKeeperCluster
