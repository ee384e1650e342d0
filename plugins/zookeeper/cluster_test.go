// go-zookeeper v1.0.4 (the latest release) reads Conn.lastZxid in
// sendSetWatches while the new connection's recvLoop writes it, on every
// reconnect with watches set (upstream go-zookeeper/zk#35, samuel/go-zookeeper#260):
// the race detector stops any test that kills the node a client is on. These
// fault tests therefore build only without -race; `make test` runs them in a
// second, race-free pass. Every other test of the driver runs under -race.

//go:build !race

package zookeeper_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/testserver"
	"github.com/musterhq/muster/plugins/zookeeper"
	"github.com/musterhq/muster/servicegroup"
)

// Cluster timings: a TTL that rides out ZooKeeper's own leader election on
// a loaded machine.
const (
	clusterTTL  = 6 * time.Second
	clusterBeat = 500 * time.Millisecond
)

func startCluster(t *testing.T) *testserver.ZooKeeperCluster {
	t.Helper()
	if cluster == nil {
		c, err := testserver.StartZooKeeperCluster(3)
		if err != nil {
			testserver.Missing(t, err)
		}
		cluster = c
	}
	for _, n := range cluster.Nodes {
		n.LogOnFailure(t)
	}
	return cluster
}

// noLeft fails t if w reports a member leaving; it drains what is queued.
func noLeft(t *testing.T, w *servicegroup.Watch, what string) {
	t.Helper()
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatalf("%s: the watch ended: %v", what, w.Err())
			}
			if ev.Type == servicegroup.MemberLeft {
				t.Errorf("%s: %q left", what, ev.Member)
			}
		default:
			return
		}
	}
}

// TestClusterFaults: on a 3-node ensemble, losing a follower or the leader
// loses no member; losing the quorum makes calls fail in time, and everyone
// is back once it returns.
func TestClusterFaults(t *testing.T) {
	if testing.Short() && !testserver.CI() {
		t.Skip("cluster test: -short outside CI")
	}
	c := startCluster(t)
	url := "zookeeper://" + c.Addrs() + "/cluster-" + randomID()
	ctx := context.Background()
	open := func(member string) *servicegroup.ServiceGroup {
		sg, err := servicegroup.OpenDriver(ctx, servicegroup.Config{
			URL: url, Member: member, HeartbeatInterval: clusterBeat, MemberTTL: clusterTTL,
			WatchInterval: 200 * time.Millisecond, DialTimeout: 10 * time.Second,
		}, "zookeeper", zookeeper.Open)
		if err != nil {
			t.Fatalf("open %s: %v", member, err)
		}
		t.Cleanup(func() { _ = sg.Close(context.Background()) })
		return sg
	}
	members := []string{"a", "b", "c"}
	var sgs []*servicegroup.ServiceGroup
	for _, m := range members {
		sg := open(m)
		if err := sg.JoinOrCreate(ctx, "g", nil); err != nil {
			t.Fatal(err)
		}
		sgs = append(sgs, sg)
	}
	obs := open("observer")
	w, err := obs.Watch(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	all := func() error {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		ms, err := obs.Members(cctx, "g")
		if err != nil {
			return err
		}
		var ids []string
		for _, m := range ms {
			ids = append(ids, m.ID)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, members) {
			return fmt.Errorf("members %q", ids)
		}
		return nil
	}
	eventually := func(within time.Duration, what string, f func() error) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			err := f()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v: %v", what, within, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	eventually(10*time.Second, "all joined", all)
	time.Sleep(time.Second)
	for len(w.Events()) > 0 {
		<-w.Events()
	}
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	follower := (leader + 1) % 3

	// A follower dies, and comes back with its data.
	if err := c.Nodes[follower].Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	eventually(10*time.Second, "after a follower died", all)
	noLeft(t, w, "a follower killed")
	if err := c.Nodes[follower].Restart(true); err != nil {
		t.Fatal(err)
	}
	eventually(10*time.Second, "after the follower came back", all)
	noLeft(t, w, "the follower restarted")

	// The leader dies: ZooKeeper elects another; nobody is lost.
	if err := c.Nodes[leader].Kill(); err != nil {
		t.Fatal(err)
	}
	eventually(20*time.Second, "after the leader died", all)
	time.Sleep(2 * time.Second)
	eventually(10*time.Second, "a while after the leader died", all)
	noLeft(t, w, "the leader killed")
	if err := c.Nodes[leader].Restart(true); err != nil {
		t.Fatal(err)
	}
	eventually(10*time.Second, "after the old leader came back", all)
	noLeft(t, w, "the old leader restarted")

	// Quorum lost: calls fail in time, with a clear error, and a member
	// that cannot renew is reported lost by its own process (a lock it
	// held says so) within about a TTL.
	held := sgs[2].Lock("held")
	if _, err := held.TryAcquire(ctx); err != nil {
		t.Fatal(err)
	}
	down := []int{leader, follower}
	for _, i := range down {
		if err := c.Nodes[i].Kill(); err != nil {
			t.Fatal(err)
		}
	}
	// The survivor may answer a read or two from its own copy until it
	// notices it is alone (ZooKeeper serves reads locally); after that
	// every call must fail, and within its deadline.
	failed := false
	for deadline := time.Now().Add(20 * time.Second); !failed && time.Now().Before(deadline); {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		start := time.Now()
		_, err = sgs[0].Members(cctx, "g")
		cancel()
		took := time.Since(start)
		if took > 5*time.Second {
			t.Errorf("Members without a quorum took %v with a 2s deadline", took)
		}
		if err == nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		failed = true
		t.Logf("Members without a quorum failed after %v: %v", took.Round(time.Millisecond), err)
		if !strings.Contains(err.Error(), "zookeeper") && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %q names neither the backend nor the deadline", err)
		}
	}
	if !failed {
		t.Errorf("Members kept succeeding for 20s without a quorum")
	}
	select {
	case <-held.Lost():
	case <-time.After(3 * clusterTTL):
		t.Errorf("a lock held without a quorum was not reported lost within %v", 3*clusterTTL)
	}
	var wg sync.WaitGroup
	for _, i := range down {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Nodes[i].Restart(true); err != nil {
				t.Errorf("restart node %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	eventually(60*time.Second, "everyone back after the quorum returned", all)
}
