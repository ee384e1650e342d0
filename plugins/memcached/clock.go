package memcached

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

// clock reads a memcached server's clock: the "time" line of "stats"
// (Unix seconds). gomemcache has no stats call, so this keeps one raw
// connection per server of its own.
type clock struct {
	ss      *memcache.ServerList
	timeout time.Duration

	mu    sync.Mutex
	conns map[string]*rawConn
}

type rawConn struct {
	mu sync.Mutex
	nc net.Conn
	r  *bufio.Reader
}

// now is the clock of the server that holds key.
func (c *clock) now(key string) (int64, error) {
	addr, err := c.ss.PickServer(key)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	if c.conns == nil {
		c.conns = map[string]*rawConn{}
	}
	rc := c.conns[addr.String()]
	if rc == nil {
		rc = &rawConn{}
		c.conns[addr.String()] = rc
	}
	c.mu.Unlock()

	rc.mu.Lock()
	defer rc.mu.Unlock()
	t, err := rc.stats(addr, c.timeout)
	if err != nil && rc.nc != nil {
		rc.nc.Close()
		rc.nc = nil
	}
	return t, err
}

func (rc *rawConn) stats(addr net.Addr, timeout time.Duration) (int64, error) {
	if rc.nc == nil {
		nc, err := net.DialTimeout(addr.Network(), addr.String(), timeout)
		if err != nil {
			return 0, err
		}
		rc.nc, rc.r = nc, bufio.NewReader(nc)
	}
	if err := rc.nc.SetDeadline(time.Now().Add(timeout)); err != nil {
		return 0, err
	}
	if _, err := rc.nc.Write([]byte("stats\r\n")); err != nil {
		return 0, err
	}
	var t int64 = -1
	for {
		line, err := rc.r.ReadString('\n')
		if err != nil {
			return 0, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "END" {
			break
		}
		if v, ok := strings.CutPrefix(line, "STAT time "); ok {
			t, _ = strconv.ParseInt(v, 10, 64)
		} else if !strings.HasPrefix(line, "STAT ") {
			return 0, fmt.Errorf("stats: unexpected reply %q", line)
		}
	}
	if t <= 0 {
		return 0, fmt.Errorf("stats: no time")
	}
	return t, nil
}

func (c *clock) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rc := range c.conns {
		rc.mu.Lock()
		if rc.nc != nil {
			rc.nc.Close()
			rc.nc = nil
		}
		rc.mu.Unlock()
	}
}
