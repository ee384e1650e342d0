package memcached_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/musterhq/muster/servicegroup/driver"
)

// BenchmarkMembers lists groups of 1 and 200 members with the driver's
// two multi-gets, beside tooz's way: one get per member.
func BenchmarkMembers(b *testing.B) {
	for _, n := range []int{1, 200} {
		url := nsURL(b)
		obs := open(b, url, "obs", time.Minute)
		must(b, obs.CreateGroup(bg, "g"), "create")
		for i := range n {
			d := open(b, url, fmt.Sprintf("m%03d", i), time.Minute)
			must(b, d.Join(bg, "g", nil), "join")
		}
		b.Run(fmt.Sprintf("muster/%d", n), func(b *testing.B) {
			for b.Loop() {
				ms, err := obs.Members(bg, "g")
				if err != nil || len(ms) != n {
					b.Fatalf("%d members, %v", len(ms), err)
				}
			}
		})
		// tooz's get_members: the group record, then one get per member.
		mc := memcache.New(server.Addr())
		pre := url[len(url)-len(prefixOf(url)):]
		b.Run(fmt.Sprintf("get-per-member/%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := mc.Get(pre + "_TOOZ_GROUP_g"); err != nil {
					b.Fatal(err)
				}
				for i := range n {
					_, _ = mc.Get(fmt.Sprintf("%s_TOOZ_MEMBER_m%03d", pre, i))
				}
			}
		})
		mc.Close()
	}
}

// BenchmarkMember reads one member of a group of 200 as the core's IsUp
// does, with Member and with Members, beside the raw client's one
// multi-get of the group record and tooz's member key. Every iteration
// runs each read once, in a rotating order, so their times are compared
// under the same load: <read>-ns/op is each one's time, <read>-req/op the
// commands the server received for it (multi-gets and stats), counted by
// a proxy in front of it.
func BenchmarkMember(b *testing.B) {
	const n = 200
	url := nsURL(b)
	pre := prefixOf(url)
	for i := range n {
		d := open(b, url, fmt.Sprintf("m%03d", i), time.Minute)
		if i == 0 {
			must(b, d.CreateGroup(bg, "g"), "create")
		}
		must(b, d.Join(bg, "g", nil), "join")
	}
	// A tooz member in a group of its own: its UpdatedAt costs a read of
	// the server's clock.
	mc := memcache.New(server.Addr())
	defer mc.Close()
	must(b, mc.Set(&memcache.Item{Key: pre + "_TOOZ_GROUP_tz", Flags: 2, Value: []byte{0x81, 0xc4, 2, 't', '1', 0x81,
		0xc4, 12, 'c', 'a', 'p', 'a', 'b', 'i', 'l', 'i', 't', 'i', 'e', 's', 0xc4, 0}}), "tooz group")
	must(b, mc.Set(&memcache.Item{Key: pre + "_TOOZ_MEMBER_t1", Value: []byte("alive"), Flags: 1}), "tooz member")

	addr, reqs := countRequests(b, server.Addr())
	obs := open(b, "memcached://"+addr+"?prefix="+pre, "obs", time.Minute)
	get := obs.(driver.MemberGetter)
	rawc := memcache.New(addr)
	defer rawc.Close()
	reads := []struct {
		name string
		read func() error
	}{
		{"Members", func() error {
			ms, err := obs.Members(bg, "g")
			if err == nil && (len(ms) != n || ms[0].ID != "m000") {
				err = fmt.Errorf("%d members", len(ms))
			}
			return err
		}},
		{"Member", func() error { _, err := get.Member(bg, "g", "m000"); return err }},
		{"Member-tooz", func() error { _, err := get.Member(bg, "tz", "t1"); return err }},
		{"raw", func() error {
			_, err := rawc.GetMulti([]string{pre + "_TOOZ_GROUP_g", pre + "_TOOZ_MEMBER_m000"})
			return err
		}},
	}
	took := make([]time.Duration, len(reads))
	sent := make([]int64, len(reads))
	for _, r := range reads {
		must(b, r.read(), r.name) // Member learns m000's session
	}
	i := 0
	for b.Loop() {
		for j := range reads {
			k := (i + j) % len(reads)
			before, start := reqs.Load(), time.Now()
			if err := reads[k].read(); err != nil {
				b.Fatalf("%s: %v", reads[k].name, err)
			}
			took[k] += time.Since(start)
			sent[k] += reqs.Load() - before
		}
		i++
	}
	for k, r := range reads {
		b.ReportMetric(float64(took[k].Nanoseconds())/float64(i), r.name+"-ns/op")
		b.ReportMetric(float64(sent[k])/float64(i), r.name+"-req/op")
	}
}

// countRequests starts a proxy to addr that counts the retrieval and
// stats commands it forwards; it stops when b ends.
func countRequests(b *testing.B, addr string) (string, *atomic.Int64) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(b, err, "listen")
	var (
		n     atomic.Int64
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	b.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			track(c)
			track(s)
			wg.Go(func() { _, _ = io.Copy(c, s); c.Close() })
			wg.Go(func() {
				defer s.Close()
				r := bufio.NewReader(c)
				start := true // at the start of a line
				for {
					line, err := r.ReadSlice('\n')
					if start && (bytes.HasPrefix(line, []byte("get")) || bytes.HasPrefix(line, []byte("stats"))) {
						n.Add(1)
					}
					start = err == nil
					if _, werr := s.Write(line); werr != nil || (err != nil && !errors.Is(err, bufio.ErrBufferFull)) {
						return
					}
				}
			})
		}
	})
	return ln.Addr().String(), &n
}

func prefixOf(url string) string {
	for i := len(url) - 1; i >= 0; i-- {
		if url[i] == '=' {
			return url[i+1:]
		}
	}
	return ""
}

func BenchmarkHeartbeat(b *testing.B) {
	d := open(b, nsURL(b), "m", time.Minute)
	must(b, d.CreateGroup(bg, "g"), "create")
	must(b, d.Join(bg, "g", nil), "join")
	for b.Loop() {
		if err := d.Heartbeat(bg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLockUnlock(b *testing.B) {
	d := open(b, nsURL(b), "m", time.Minute)
	for b.Loop() {
		tok, err := d.TryLock(bg, "l")
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Unlock(bg, "l", tok); err != nil {
			b.Fatal(err)
		}
	}
}

var _ driver.Driver // the SPI is what is measured
