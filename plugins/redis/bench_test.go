package redis_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/musterhq/muster/plugins/redis"
	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/driver"
)

func benchOpen(b *testing.B, url, member string) driver.Driver {
	b.Helper()
	d, err := redis.Open(context.Background(), driver.Options{URL: url, Member: member, TTL: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = d.Close(context.Background()) })
	return d
}

// benchGroup opens an observer and n members m0.. joined to group g, each
// its own session, and returns the observer.
func benchGroup(b *testing.B, n int) driver.Driver {
	b.Helper()
	ctx := context.Background()
	url := nsURL(b)
	obs := benchOpen(b, url, "obs")
	if err := obs.CreateGroup(ctx, "g"); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		if err := benchOpen(b, url, fmt.Sprint("m", i)).Join(ctx, "g", []byte{0x80}); err != nil {
			b.Fatal(err)
		}
	}
	return obs
}

// BenchmarkMembers lists groups of 1 and 200 as Members does (one script)
// and as GetAll does (MemberStates: a MULTI, then an MGET and an HMGET).
func BenchmarkMembers(b *testing.B) {
	for _, n := range []int{1, 200} {
		obs := benchGroup(b, n)
		for name, list := range map[string]func(context.Context, string) ([]driver.Member, error){
			"Members": obs.Members, "MemberStates": obs.(driver.StateLister).MemberStates,
		} {
			b.Run(fmt.Sprint(name, "/", n), func(b *testing.B) {
				ctx := context.Background()
				for b.Loop() {
					if ms, err := list(ctx, "g"); err != nil || len(ms) != n {
						b.Fatalf("%d members, %v", len(ms), err)
					}
				}
			})
		}
	}
}

func BenchmarkHeartbeat(b *testing.B) {
	d := benchOpen(b, nsURL(b), "m")
	ctx := context.Background()
	for b.Loop() {
		if err := d.Heartbeat(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLockUnlock(b *testing.B) {
	d := benchOpen(b, nsURL(b), "m")
	ctx := context.Background()
	for b.Loop() {
		tok, err := d.TryLock(ctx, "l")
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Unlock(ctx, "l", tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCoreLock is BenchmarkLockUnlock through the core (TryAcquire
// and Release of a servicegroup.Lock), with a context that cannot end and
// with one that can: the core then runs each call on a worker goroutine,
// so that a caller who gives up returns at once.
func BenchmarkCoreLock(b *testing.B) {
	sg, err := servicegroup.Open(context.Background(), servicegroup.Config{URL: nsURL(b), Member: "m", Mode: servicegroup.ModeInProcess})
	if err != nil {
		b.Fatal(err)
	}
	defer sg.Close(context.Background())
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, c := range []struct {
		name string
		ctx  context.Context
	}{{"background", context.Background()}, {"cancellable", cctx}} {
		b.Run(c.name, func(b *testing.B) {
			l := sg.Lock("l-" + c.name)
			for b.Loop() {
				if _, err := l.TryAcquire(c.ctx); err != nil {
					b.Fatal(err)
				}
				if err := l.Release(c.ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMember reads one member of a group of 1 and of 200
// (driver.MemberGetter, what IsUp costs): its cost must not grow with the
// group.
func BenchmarkMember(b *testing.B) {
	for _, n := range []int{1, 200} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			ctx := context.Background()
			obs := benchGroup(b, n)
			getter := obs.(driver.MemberGetter)
			b.ResetTimer()
			for b.Loop() {
				if _, err := getter.Member(ctx, "g", "m0"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// musterMembers writes n live muster members of group g under the URL's
// namespace as muster's scripts lay them out (a session record, a beat key
// and an owner field each), with one raw client: opening n sessions would
// take n connections.
func musterMembers(b *testing.B, url string, n int) {
	b.Helper()
	ctx := context.Background()
	ns := namespace(url)
	c := goredis.NewClient(&goredis.Options{Addr: server(b).Addr()})
	defer c.Close()
	p := c.Pipeline()
	for i := range n {
		m, sid := fmt.Sprint("m", i), fmt.Sprintf("%032x", i)
		p.HSet(ctx, ns+"_muster:s:"+sid, "m", m, "i", "", "t", 3600000, "r", time.Now().UnixMilli())
		p.PExpire(ctx, ns+"_muster:s:"+sid, time.Hour)
		p.Set(ctx, ns+"_beats:"+m, sid, time.Hour)
		p.HSet(ctx, ns+"_group:g", m, []byte{0x80})
		p.HSet(ctx, ns+"_muster:o:g", m, sid)
		if i%500 == 499 || i == n-1 {
			if _, err := p.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkGetAll10k lists a group of 10,000 live members as GetAll does
// (MemberStates), as Members does, and as a raw client reads it, for the
// ratios in one run.
func BenchmarkGetAll10k(b *testing.B) {
	ctx := context.Background()
	url := nsURL(b)
	obs := benchOpen(b, url, "obs")
	if err := obs.CreateGroup(ctx, "g"); err != nil {
		b.Fatal(err)
	}
	musterMembers(b, url, 10000)
	ns := namespace(url)
	c := goredis.NewClient(&goredis.Options{Addr: server(b).Addr()})
	defer c.Close()
	// raw: what a client that trusts the beat keys alone reads (the
	// group's hash, then every beat key), as tooz does.
	raw := func(ctx context.Context, g string) ([]driver.Member, error) {
		f, err := c.HGetAll(ctx, ns+"_group:"+g).Result()
		if err != nil {
			return nil, err
		}
		var keys []string
		for m := range f {
			if m != "__created__" {
				keys = append(keys, ns+"_beats:"+m)
			}
		}
		v, err := c.MGet(ctx, keys...).Result()
		out := make([]driver.Member, 0, len(v))
		for range v {
			out = append(out, driver.Member{})
		}
		return out, err
	}
	for _, list := range []struct {
		name string
		f    func(context.Context, string) ([]driver.Member, error)
	}{{"raw", raw}, {"MemberStates", obs.(driver.StateLister).MemberStates}, {"Members", obs.Members}} {
		name, list := list.name, list.f
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if ms, err := list(ctx, "g"); err != nil || len(ms) != 10000 {
					b.Fatalf("%d members, %v", len(ms), err)
				}
			}
		})
	}
}
