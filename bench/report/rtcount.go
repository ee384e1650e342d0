package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/musterhq/muster/internal/testserver"
)

// counter reads a server-side count of requests received (nil when the
// backend has none this harness can read). Each read's own request is
// subtracted by the caller through self.
type counter struct {
	read func(ctx context.Context) (int64, error)
	self int64 // requests one read itself adds
	what string
}

func newCounter(b *backend) *counter {
	switch b.name {
	case "redis":
		c := goredis.NewClient(&goredis.Options{Addr: b.srv.Addr(), PoolSize: 1})
		return &counter{what: "socket reads (INFO total_reads_processed)", self: 1, read: func(ctx context.Context) (int64, error) {
			s, err := c.Info(ctx, "stats").Result()
			if err != nil {
				return 0, err
			}
			return field(s, "total_reads_processed:")
		}}
	case "zookeeper":
		return &counter{what: "requests (srvr Received)", self: 1, read: func(ctx context.Context) (int64, error) {
			s, err := testserver.FourLetter(ctx, b.srv.Addr(), "srvr")
			if err != nil {
				return 0, err
			}
			return field(s, "Received:")
		}}
	case "etcd":
		return &counter{what: "gRPC messages (grpc_server_msg_received_total)", read: func(ctx context.Context) (int64, error) {
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+b.srv.Addr()+"/metrics", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return 0, err
			}
			defer resp.Body.Close()
			var n float64
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				l := sc.Text()
				if strings.HasPrefix(l, "grpc_server_msg_received_total{") {
					f := strings.Fields(l)
					v, _ := strconv.ParseFloat(f[len(f)-1], 64)
					n += v
				}
			}
			return int64(n), sc.Err()
		}}
	case "mysql":
		d, err := myDB(b.srv, "")
		if err != nil {
			return nil
		}
		d.SetMaxOpenConns(1)
		return &counter{what: "statements (Questions)", self: 1, read: func(ctx context.Context) (int64, error) {
			var k string
			var v int64
			err := d.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Questions'").Scan(&k, &v)
			return v, err
		}}
	}
	return nil
}

func field(s, key string) (int64, error) {
	for _, l := range strings.Split(s, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), key); ok {
			return strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %q in server stats", key)
}

// perOp runs op k times and returns the requests per call the server saw.
func (c *counter) perOp(ctx context.Context, k int, op func() error) string {
	return c.around(ctx, k, nil, op, nil)
}

// around counts only op's requests: pre and post run outside the count.
func (c *counter) around(ctx context.Context, k int, pre, op, post func() error) string {
	if c == nil {
		return "—"
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var deltas []int64
	for range k {
		if pre != nil {
			if err := pre(); err != nil {
				return "err"
			}
		}
		before, err := c.read(ctx)
		if err != nil {
			return "?"
		}
		if err := op(); err != nil {
			return "err"
		}
		after, err := c.read(ctx)
		if err != nil {
			return "?"
		}
		deltas = append(deltas, after-before-c.self)
		if post != nil {
			if err := post(); err != nil {
				return "err"
			}
		}
	}
	return fmt.Sprint(mode(deltas))
}

// mode is the most frequent count (the smallest of equally frequent ones).
// Other clients' requests only ever add to a window, each time a different
// number, so the count a call takes is the one that recurs; a median moves
// once more than half the windows caught someone else's.
func mode(counts []int64) int64 {
	slices.Sort(counts)
	best, bestN := counts[0], 0
	for i := 0; i < len(counts); {
		j := i
		for j < len(counts) && counts[j] == counts[i] {
			j++
		}
		if j-i > bestN {
			best, bestN = counts[i], j-i
		}
		i = j
	}
	return best
}
