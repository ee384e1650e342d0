package testserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// etcd from Debian's etcd-server package (3.4), one foreground process per
// member with its data in the member's dir.

// EtcdHeartbeat and EtcdElection are the raft timings of test servers, in
// milliseconds: small, so a lost leader is replaced quickly and leases
// down to about a second are honoured (etcd's minimum lease TTL is
// 3/2 × election timeout, rounded up to whole seconds).
const (
	EtcdHeartbeat = 50
	EtcdElection  = 500
)

// EtcdPeer is one member of a cluster: its name and client and peer ports.
type EtcdPeer struct {
	Name         string
	Client, Peer int
}

func (p EtcdPeer) peerURL() string { return fmt.Sprintf("http://127.0.0.1:%d", p.Peer) }

// Etcd is the Spec of one etcd member. For a single node, peers holds just
// self; for a cluster member it lists every member.
func Etcd(self EtcdPeer, peers []EtcdPeer) (Spec, error) {
	bin, err := Lookup("etcd-server", "etcd", "/usr/bin/etcd")
	if err != nil {
		return Spec{}, err
	}
	ctl, err := Lookup("etcd-client", "etcdctl", "/usr/bin/etcdctl")
	if err != nil {
		return Spec{}, err
	}
	if len(peers) == 0 {
		peers = []EtcdPeer{self}
	}
	var initial []string
	for _, p := range peers {
		initial = append(initial, p.Name+"="+p.peerURL())
	}
	name := "etcd"
	if len(peers) > 1 {
		name = "etcd-" + self.Name
	}
	// The data (and WAL) live in memory when /dev/shm is there: etcd
	// fsyncs every write, and on a loaded shared disk an fsync can take
	// longer than a test's lease. dir/data is a link to it.
	shm := func(dir string) string { return filepath.Join("/dev/shm", "muster-"+filepath.Base(dir)) }
	return Spec{
		Name: name,
		Setup: func(_ int, dir string) error {
			if fi, err := os.Stat("/dev/shm"); err != nil || !fi.IsDir() {
				return nil // data on disk, in dir
			}
			target := shm(dir)
			_ = os.RemoveAll(target)
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
			return os.Symlink(target, filepath.Join(dir, "data"))
		},
		Cleanup: func(dir string) { _ = os.RemoveAll(shm(dir)) },
		Command: func(port int, dir string) []string {
			data := filepath.Join(dir, "data")
			state := "new"
			// A member restarted with its data rejoins the cluster it was in.
			if _, err := os.Stat(filepath.Join(data, "member")); err == nil {
				state = "existing"
			}
			client := fmt.Sprintf("http://127.0.0.1:%d", port)
			return []string{bin,
				"--name", self.Name,
				"--data-dir", data,
				"--listen-client-urls", client,
				"--advertise-client-urls", client,
				"--listen-peer-urls", self.peerURL(),
				"--initial-advertise-peer-urls", self.peerURL(),
				"--initial-cluster", strings.Join(initial, ","),
				"--initial-cluster-state", state,
				"--initial-cluster-token", "muster-test",
				"--heartbeat-interval", fmt.Sprint(EtcdHeartbeat),
				"--election-timeout", fmt.Sprint(EtcdElection),
				"--log-level", "warn",
				"--logger", "zap",
			}
		},
		Ready: func(ctx context.Context, addr string) error {
			out, err := exec.CommandContext(ctx, ctl, "--endpoints="+addr,
				"--command-timeout=900ms", "endpoint", "health").CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
			}
			return nil
		},
	}, nil
}

// StartEtcd starts a single-node etcd on free loopback ports.
func StartEtcd() (*Server, error) {
	client, err := FreePort()
	if err != nil {
		return nil, err
	}
	peer, err := FreePort()
	if err != nil {
		return nil, err
	}
	self := EtcdPeer{Name: "default", Client: client, Peer: peer}
	spec, err := Etcd(self, nil)
	if err != nil {
		return nil, err
	}
	return StartOn(spec, client)
}

// EtcdCluster is an etcd cluster on loopback.
type EtcdCluster struct {
	Nodes []*Server
}

// StartEtcdCluster starts n members (3 for a quorum of 2) at once and waits
// until each is healthy.
func StartEtcdCluster(n int) (*EtcdCluster, error) {
	peers := make([]EtcdPeer, n)
	for i := range peers {
		c, err := FreePort()
		if err != nil {
			return nil, err
		}
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		peers[i] = EtcdPeer{Name: string(rune('a' + i)), Client: c, Peer: p}
	}
	c := &EtcdCluster{Nodes: make([]*Server, n)}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range peers {
		spec, err := Etcd(peers[i], peers)
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		// Members start together: none is healthy before a quorum is up.
		go func() {
			defer wg.Done()
			c.Nodes[i], errs[i] = StartOn(spec, peers[i].Client)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Endpoints is every member's client address, comma-separated.
func (c *EtcdCluster) Endpoints() string {
	var eps []string
	for _, n := range c.Nodes {
		eps = append(eps, n.Addr())
	}
	return strings.Join(eps, ",")
}

// Leader returns the index of the member that leads now, asking the
// running members with etcdctl endpoint status.
func (c *EtcdCluster) Leader(ctx context.Context) (int, error) {
	ctl, err := Lookup("etcd-client", "etcdctl", "/usr/bin/etcdctl")
	if err != nil {
		return -1, err
	}
	var last error = errors.New("no member running")
	for _, n := range c.Nodes {
		if n == nil || !n.Running() {
			continue
		}
		out, err := exec.CommandContext(ctx, ctl, "--endpoints="+n.Addr(),
			"--command-timeout=2s", "endpoint", "status", "-w", "json").Output()
		if err != nil {
			last = err
			continue
		}
		var st []struct {
			Status struct {
				Header struct {
					MemberID uint64 `json:"member_id"`
				} `json:"header"`
				Leader uint64 `json:"leader"`
			} `json:"Status"`
		}
		if err := json.Unmarshal(out, &st); err != nil || len(st) == 0 {
			last = fmt.Errorf("endpoint status: %v: %s", err, out)
			continue
		}
		if st[0].Status.Leader == 0 {
			last = errors.New("no leader")
			continue
		}
		if st[0].Status.Leader == st[0].Status.Header.MemberID {
			return c.index(n), nil
		}
		// Ask the leader itself next: only it knows its own id for sure.
		last = fmt.Errorf("%s follows %x", n.Addr(), st[0].Status.Leader)
	}
	return -1, fmt.Errorf("testserver: etcd leader: %w", last)
}

func (c *EtcdCluster) index(s *Server) int {
	for i, n := range c.Nodes {
		if n == s {
			return i
		}
	}
	return -1
}

// Close stops every member and removes their dirs.
func (c *EtcdCluster) Close() {
	for _, n := range c.Nodes {
		if n != nil {
			n.Close()
		}
	}
}
