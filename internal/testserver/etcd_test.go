package testserver

import (
	"context"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestEtcd checks the launcher and that the pinned Go client speaks to the
// Debian server: a single node, then a cluster that loses and regains its
// leader.
func TestEtcd(t *testing.T) {
	s, err := StartEtcd()
	if err != nil {
		Missing(t, err)
		t.Fatal(err)
	}
	defer s.Close()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Addr()}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lease, err := cli.Grant(ctx, 1)
	if err != nil {
		t.Fatalf("grant 1 s lease: %v", err)
	}
	if lease.TTL != 1 {
		t.Fatalf("granted TTL %d, want 1 s", lease.TTL)
	}
	if _, err := cli.Put(ctx, "k", "v", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.KeepAliveOnce(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	if r, err := cli.Get(ctx, "k", clientv3.WithPrefix()); err != nil || len(r.Kvs) != 1 {
		t.Fatalf("get: %v %v", r, err)
	}

	c, err := StartEtcdCluster(3)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Nodes[l].Kill(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		nl, err := c.Leader(ctx)
		if err == nil && nl != l {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new leader: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := c.Nodes[l].Restart(true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.Endpoints(), c.Nodes[l].Addr()) {
		t.Fatal("endpoints")
	}
}
