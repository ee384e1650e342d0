package main

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	goredis "github.com/redis/go-redis/v9"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// toozLayout writes n members of group in tooz's layout under muster URL u
// with one raw client, as tooz members (a beat key, a lease, an ephemeral
// node) that muster lists; done removes them.
func toozLayout(ctx context.Context, b *backend, u, group string, n int) (done func(), err error) {
	pu, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	switch b.name {
	case "redis":
		ns := pu.Query().Get("namespace")
		c := goredis.NewClient(&goredis.Options{Addr: b.srv.Addr()})
		p := c.Pipeline()
		for i := range n {
			m := fmt.Sprintf("tz%d", i)
			p.HSet(ctx, ns+"_group:"+group, m, []byte{0x80})
			p.Set(ctx, ns+"_beats:"+m, "tooz", time.Hour)
			if i%500 == 499 {
				if _, err := p.Exec(ctx); err != nil {
					c.Close()
					return nil, err
				}
			}
		}
		if _, err := p.Exec(ctx); err != nil {
			c.Close()
			return nil, err
		}
		return func() { c.Close() }, nil
	case "etcd":
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{b.srv.Addr()}, DialTimeout: 5 * time.Second})
		if err != nil {
			return nil, err
		}
		l, err := c.Grant(ctx, 3600)
		if err != nil {
			c.Close()
			return nil, err
		}
		prefix := pu.Path + "/tooz/groups/" + group + "/"
		// Transactions of 100 puts (etcd allows 128 operations in one).
		if err := parallel((n+99)/100, 4, func(t int) error {
			var ops []clientv3.Op
			for i := t * 100; i < min(n, t*100+100); i++ {
				ops = append(ops, clientv3.OpPut(fmt.Sprintf("%stz%d", prefix, i), "\x80", clientv3.WithLease(l.ID)))
			}
			_, err := c.Txn(ctx).Then(ops...).Commit()
			return err
		}); err != nil {
			c.Close()
			return nil, err
		}
		return func() {
			_, _ = c.Revoke(context.Background(), l.ID)
			c.Close()
		}, nil
	case "zookeeper":
		c, _, err := zk.Connect([]string{b.srv.Addr()}, 10*time.Second, zk.WithLogInfo(false))
		if err != nil {
			return nil, err
		}
		g := pu.Path + "/tooz/" + group
		// Multi requests of 100 creates.
		if err := parallel((n+99)/100, 4, func(t int) error {
			var ops []any
			for i := t * 100; i < min(n, t*100+100); i++ {
				ops = append(ops, &zk.CreateRequest{Path: fmt.Sprintf("%s/tz%d", g, i), Data: []byte{0x80}, Acl: zk.WorldACL(zk.PermAll), Flags: zk.FlagEphemeral})
			}
			_, err := c.Multi(ops...)
			return err
		}); err != nil {
			c.Close()
			return nil, err
		}
		return func() { c.Close() }, nil
	}
	return nil, fmt.Errorf("no tooz layout for %s", b.name)
}

// rawList returns a read of group's n members under muster URL u by the
// backend's own client, the way tooz lists a group, on the records muster
// lists: redis HGETALL of the group hash + MGET of the members' beat keys;
// etcd one Get of the group's prefix; ZooKeeper Children + a Get of every
// member node, 64 in flight. It is the floor for muster's GetAll of the same
// group (which also reads every member's renewal time and forced-down mark).
func rawList(ctx context.Context, b *backend, u, group string, n int) (list func() error, done func(), err error) {
	pu, err := url.Parse(u)
	if err != nil {
		return nil, nil, err
	}
	check := func(got int) error {
		if got != n {
			return fmt.Errorf("raw: %d members, want %d", got, n)
		}
		return nil
	}
	switch b.name {
	case "redis":
		ns := pu.Query().Get("namespace")
		c := goredis.NewClient(&goredis.Options{Addr: b.srv.Addr()})
		return func() error {
			h, err := c.HGetAll(ctx, ns+"_group:"+group).Result()
			if err != nil {
				return err
			}
			keys := make([]string, 0, len(h))
			for m := range h {
				if m != "__created__" {
					keys = append(keys, ns+"_beats:"+m)
				}
			}
			v, err := c.MGet(ctx, keys...).Result()
			if err != nil {
				return err
			}
			return check(len(v))
		}, func() { c.Close() }, nil
	case "etcd":
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{b.srv.Addr()}, DialTimeout: 5 * time.Second})
		if err != nil {
			return nil, nil, err
		}
		prefix := pu.Path + "/tooz/groups/" + group + "/"
		return func() error {
			r, err := c.Get(ctx, prefix, clientv3.WithPrefix())
			if err != nil {
				return err
			}
			members := 0
			for _, kv := range r.Kvs {
				if string(kv.Key) != prefix { // the group's own key
					members++
				}
			}
			return check(members)
		}, func() { c.Close() }, nil
	case "zookeeper":
		c, _, err := zk.Connect([]string{b.srv.Addr()}, 10*time.Second, zk.WithLogInfo(false))
		if err != nil {
			return nil, nil, err
		}
		g := pu.Path + "/tooz/" + group
		return func() error {
			kids, _, err := c.Children(g)
			if err != nil {
				return err
			}
			if err := parallel(len(kids), 64, func(i int) error {
				_, _, err := c.Get(g + "/" + kids[i])
				return err
			}); err != nil {
				return err
			}
			return check(len(kids))
		}, func() { c.Close() }, nil
	}
	return nil, nil, fmt.Errorf("no raw list for %s", b.name)
}

// parallel runs f(0..n-1), workers at a time; the first error wins.
func parallel(n, workers int, f func(i int) error) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}
