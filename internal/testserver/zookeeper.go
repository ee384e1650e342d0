package testserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ZooKeeper from Debian's zookeeper package, run as a foreground java
// process (QuorumPeerMain) with a generated zoo.cfg in its dir.

// ZooKeeperTick is the tickTime of test servers: sessions may be 2 ticks
// (200 ms) to ZooKeeperMaxSession long.
const ZooKeeperTick = 100 * time.Millisecond

// ZooKeeperMaxSession is the longest session the test servers grant
// (maxSessionTimeout, set above the default 20 ticks so sessions that must
// outlive a test can be opened).
const ZooKeeperMaxSession = 2 * time.Minute

const zkJars = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar"

// ZooKeeperPeer is one node of a cluster: its client port and its quorum and
// election ports.
type ZooKeeperPeer struct {
	ID                       int
	Client, Quorum, Election int
}

// ZooKeeper is the Spec of one ZooKeeper node. peers is empty for a single
// node; for a cluster node it lists every node and id names this one.
func ZooKeeper(id int, peers []ZooKeeperPeer) (Spec, error) {
	if _, err := Lookup("zookeeper", "/usr/share/java/zookeeper.jar"); err != nil {
		return Spec{}, err
	}
	java, err := Lookup("default-jre-headless", "java", "/usr/bin/java")
	if err != nil {
		return Spec{}, err
	}
	name := "zookeeper"
	if len(peers) > 0 {
		name = fmt.Sprintf("zookeeper-%d", id)
	}
	return Spec{
		Name: name,
		Command: func(port int, dir string) []string {
			return []string{java, "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
				"-Dlog4j.configuration=file:" + filepath.Join(dir, "log4j.properties"),
				"-cp", dir + ":" + zkJars,
				"org.apache.zookeeper.server.quorum.QuorumPeerMain", filepath.Join(dir, "zoo.cfg")}
		},
		Setup: func(port int, dir string) error {
			data := filepath.Join(dir, "data")
			if err := os.MkdirAll(data, 0o755); err != nil {
				return err
			}
			cfg := fmt.Sprintf(`tickTime=%d
initLimit=40
syncLimit=20
dataDir=%s
clientPort=%d
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,mntr
minSessionTimeout=%d
maxSessionTimeout=%d
maxClientCnxns=0
forceSync=no
preAllocSize=4096
`, ZooKeeperTick.Milliseconds(), data, port, 2*ZooKeeperTick.Milliseconds(), ZooKeeperMaxSession.Milliseconds())
			for _, p := range peers {
				cfg += fmt.Sprintf("server.%d=127.0.0.1:%d:%d\n", p.ID, p.Quorum, p.Election)
			}
			if len(peers) > 0 {
				if err := os.WriteFile(filepath.Join(data, "myid"), []byte(strconv.Itoa(id)+"\n"), 0o644); err != nil {
					return err
				}
			}
			if err := os.WriteFile(filepath.Join(dir, "zoo.cfg"), []byte(cfg), 0o644); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, "log4j.properties"), []byte(
				"log4j.rootLogger=ERROR, CONSOLE\n"+
					"log4j.logger.org.apache.zookeeper.server.ZooKeeperServer=ERROR\n"+
					"log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender\n"+
					"log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout\n"+
					"log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1}: %m%n\n"), 0o644)
		},
		Ready: func(ctx context.Context, addr string) error {
			if out, err := FourLetter(ctx, addr, "ruok"); err != nil || out != "imok" {
				return fmt.Errorf("ruok: %q, %v", out, err)
			}
			mode, err := ZooKeeperMode(ctx, addr)
			if err != nil {
				return err
			}
			if len(peers) > 0 && mode != "leader" && mode != "follower" {
				return fmt.Errorf("mode %q", mode)
			}
			return nil
		},
		ReadyTimeout: 60 * time.Second,
	}, nil
}

// StartZooKeeper starts a single ZooKeeper node on a free port.
func StartZooKeeper() (*Server, error) {
	spec, err := ZooKeeper(1, nil)
	if err != nil {
		return nil, err
	}
	return Start(spec)
}

// FourLetter sends a four-letter command to a ZooKeeper at addr and returns
// its answer, trimmed.
func FourLetter(ctx context.Context, addr, cmd string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	}
	if _, err := c.Write([]byte(cmd)); err != nil {
		return "", err
	}
	var b strings.Builder
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		b.WriteString(sc.Text())
		b.WriteByte('\n')
	}
	return strings.TrimSpace(b.String()), nil
}

// ZooKeeperMode is the "Mode:" line of srvr: standalone, leader or follower.
func ZooKeeperMode(ctx context.Context, addr string) (string, error) {
	out, err := FourLetter(ctx, addr, "srvr")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(out, "\n") {
		if m, ok := strings.CutPrefix(line, "Mode: "); ok {
			return strings.TrimSpace(m), nil
		}
	}
	return "", fmt.Errorf("srvr shows no mode: %q", out)
}

// ZooKeeperCluster is a 3-node ZooKeeper ensemble on loopback.
type ZooKeeperCluster struct {
	Nodes []*Server
}

// StartZooKeeperCluster starts n nodes (3 for a quorum of 2) at once and
// waits until each is a leader or follower.
func StartZooKeeperCluster(n int) (*ZooKeeperCluster, error) {
	peers := make([]ZooKeeperPeer, n)
	seen := map[int]bool{}
	for i := range peers {
		var ports [3]int
		for j := range ports {
			for {
				p, err := FreePort()
				if err != nil {
					return nil, err
				}
				if !seen[p] {
					seen[p] = true
					ports[j] = p
					break
				}
			}
		}
		peers[i] = ZooKeeperPeer{ID: i + 1, Client: ports[0], Quorum: ports[1], Election: ports[2]}
	}
	c := &ZooKeeperCluster{Nodes: make([]*Server, n)}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range peers {
		spec, err := ZooKeeper(i+1, peers)
		if err != nil {
			return nil, err
		}
		wg.Add(1)
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

// Addrs is the client addresses, comma-separated (a connect string).
func (c *ZooKeeperCluster) Addrs() string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.Addr())
	}
	return strings.Join(out, ",")
}

// Leader is the index of the node that is the leader now, or an error.
func (c *ZooKeeperCluster) Leader(ctx context.Context) (int, error) {
	for i, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		if m, err := ZooKeeperMode(ctx, n.Addr()); err == nil && m == "leader" {
			return i, nil
		}
	}
	return -1, errors.New("testserver: zookeeper cluster has no leader")
}

// Close stops every node and removes their dirs.
func (c *ZooKeeperCluster) Close() {
	for _, n := range c.Nodes {
		if n != nil {
			n.Close()
		}
	}
}
