package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/musterhq/muster/internal/testserver"
	"github.com/musterhq/muster/plugins/etcd"
	"github.com/musterhq/muster/servicegroup"
)

// Cluster timings: a TTL that rides out etcd's own leader election (the
// test servers elect within about a second) on a loaded machine.
const (
	clusterTTL  = 4 * time.Second
	clusterBeat = 300 * time.Millisecond
)

func startCluster(t *testing.T) *testserver.EtcdCluster {
	t.Helper()
	if cluster == nil {
		c, err := testserver.StartEtcdCluster(3)
		if err != nil {
			testserver.Missing(t, err)
			t.Fatal(err)
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

func eventually(t *testing.T, within time.Duration, what string, f func() error) {
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

// clusterGroup is three members joined to "g" on the cluster, an observer
// watching it, and a check that all three are listed.
type clusterGroup struct {
	url string
	sgs map[string]*servicegroup.ServiceGroup
	obs *servicegroup.ServiceGroup
	w   *servicegroup.Watch
}

var members = []string{"a", "b", "c"}

func openClusterGroup(t *testing.T, c *testserver.EtcdCluster) *clusterGroup {
	t.Helper()
	ctx := context.Background()
	cg := &clusterGroup{url: "etcd://" + c.Endpoints() + "/cluster-" + randomID(), sgs: map[string]*servicegroup.ServiceGroup{}}
	open := func(member string) *servicegroup.ServiceGroup {
		sg, err := servicegroup.OpenDriver(ctx, servicegroup.Config{
			URL: cg.url, Member: member, HeartbeatInterval: clusterBeat, MemberTTL: clusterTTL,
			WatchInterval: 200 * time.Millisecond, DialTimeout: 10 * time.Second,
		}, "etcd", etcd.Open)
		if err != nil {
			t.Fatalf("open %s: %v", member, err)
		}
		t.Cleanup(func() {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = sg.Close(cctx)
		})
		return sg
	}
	for _, m := range members {
		sg := open(m)
		if err := sg.JoinOrCreate(ctx, "g", nil); err != nil {
			t.Fatal(err)
		}
		cg.sgs[m] = sg
	}
	cg.obs = open("observer")
	w, err := cg.obs.Watch(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	cg.w = w
	eventually(t, 10*time.Second, "all joined", cg.all)
	time.Sleep(time.Second)
	for len(w.Events()) > 0 {
		<-w.Events()
	}
	return cg
}

func (cg *clusterGroup) all() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	ms, err := cg.obs.Members(ctx, "g")
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

// TestClusterFaults: on a 3-node cluster, losing a follower or the leader
// (kill -9) loses no member and its return changes nothing; losing the
// quorum makes calls fail within their deadline, with a clear error, and
// everyone is back once it returns.
func TestClusterFaults(t *testing.T) {
	if testing.Short() && !testserver.CI() {
		t.Skip("cluster test (-short, outside CI)")
	}
	c := startCluster(t)
	cg := openClusterGroup(t, c)
	ctx := context.Background()
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
	eventually(t, 10*time.Second, "after a follower died", cg.all)
	noLeft(t, cg.w, "a follower killed")
	if err := c.Nodes[follower].Restart(true); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "after the follower came back", cg.all)
	noLeft(t, cg.w, "the follower restarted")

	// The leader dies: etcd elects another; nobody is lost.
	if err := c.Nodes[leader].Kill(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "after the leader died", cg.all)
	time.Sleep(2 * time.Second)
	eventually(t, 10*time.Second, "a while after the leader died", cg.all)
	noLeft(t, cg.w, "the leader killed")
	if err := c.Nodes[leader].Restart(true); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "after the old leader came back", cg.all)
	time.Sleep(time.Second)
	noLeft(t, cg.w, "the old leader restarted")

	// Quorum lost: calls fail in time, with a clear error, and a member
	// that cannot renew is reported lost by its own process (a lock it
	// held says so) within about a TTL.
	held := cg.sgs["c"].Lock("held")
	if _, err := held.TryAcquire(ctx); err != nil {
		t.Fatal(err)
	}
	down := []int{leader, follower}
	for _, i := range down {
		if err := c.Nodes[i].Kill(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	for what, call := range map[string]func(context.Context) error{
		"Members": func(ctx context.Context) error { _, err := cg.sgs["a"].Members(ctx, "g"); return err },
		"TryAcquire": func(ctx context.Context) error {
			_, err := cg.sgs["b"].Lock("q").TryAcquire(ctx)
			return err
		},
	} {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		start := time.Now()
		err := call(cctx)
		cancel()
		took := time.Since(start)
		if err == nil {
			t.Errorf("%s without a quorum succeeded", what)
			continue
		}
		t.Logf("%s without a quorum failed after %v: %v", what, took.Round(time.Millisecond), err)
		if took > 5*time.Second {
			t.Errorf("%s without a quorum took %v with a 2s deadline", what, took)
		}
		if !strings.Contains(err.Error(), "etcd") && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: error %q names neither the backend nor the deadline", what, err)
		}
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
	eventually(t, 30*time.Second, "everyone back after the quorum returned", cg.all)
}

// TestClusterLeaseRevoked: a member whose lease is revoked from outside
// (as `etcdctl lease revoke` does) re-joins by itself on a new lease, and
// a lock it held is reported lost.
func TestClusterLeaseRevoked(t *testing.T) {
	if testing.Short() && !testserver.CI() {
		t.Skip("cluster test (-short, outside CI)")
	}
	c := startCluster(t)
	cg := openClusterGroup(t, c)
	ctx := context.Background()
	l := cg.sgs["a"].Lock("held")
	tok, err := l.TryAcquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(c.Endpoints(), ","),
		DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	prefix := cg.url[strings.LastIndexByte(cg.url, '/'):]
	key := prefix + "/tooz/groups/g/a"
	r, err := cli.Get(ctx, key)
	if err != nil || len(r.Kvs) != 1 || r.Kvs[0].Lease == 0 {
		t.Fatalf("member key %s: %v, %v", key, r, err)
	}
	old := clientv3.LeaseID(r.Kvs[0].Lease)
	if _, err := cli.Revoke(ctx, old); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("the lock was not reported lost")
	}
	eventually(t, 15*time.Second, "re-joined on a new lease", func() error {
		r, err := cli.Get(ctx, key)
		if err != nil {
			return err
		}
		if len(r.Kvs) != 1 || clientv3.LeaseID(r.Kvs[0].Lease) == old {
			return fmt.Errorf("member key %s: %v", key, r.Kvs)
		}
		return cg.all()
	})
	tok2, err := cg.sgs["b"].Lock("held").TryAcquire(ctx)
	if err != nil || tok2 <= tok {
		t.Errorf("next holder: token %d, %v; want > %d", tok2, err, tok)
	}
}
