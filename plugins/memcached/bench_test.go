package memcached_test

import (
	"fmt"
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
