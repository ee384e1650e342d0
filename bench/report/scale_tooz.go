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
		if err := parallel(n, 32, func(i int) error {
			_, err := c.Put(ctx, fmt.Sprintf("%stz%d", prefix, i), "\x80", clientv3.WithLease(l.ID))
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
		if err := parallel(n, 64, func(i int) error {
			_, err := c.Create(fmt.Sprintf("%s/tz%d", g, i), []byte{0x80}, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
			return err
		}); err != nil {
			c.Close()
			return nil, err
		}
		return func() { c.Close() }, nil
	}
	return nil, fmt.Errorf("no tooz layout for %s", b.name)
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
