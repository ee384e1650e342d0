package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/musterhq/muster/internal/testserver"
	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/driver"
)

// session is a ServiceGroup and the driver session under it (the core has
// no public Heartbeat: the driver's is timed directly).
type session struct {
	sg  *servicegroup.ServiceGroup
	drv atomic.Pointer[driver.Driver]
}

func (s *session) heartbeat(ctx context.Context) error {
	d := s.drv.Load()
	if d == nil {
		return fmt.Errorf("no driver session")
	}
	return (*d).Heartbeat(ctx)
}

// openSession opens a ServiceGroup of member on url through f.
func openSession(ctx context.Context, b *backend, f driver.Factory, url, member string, hb, ttl time.Duration) (*session, error) {
	s := &session{}
	wrapped := func(ctx context.Context, o driver.Options) (driver.Driver, error) {
		d, err := f(ctx, o)
		if err == nil {
			s.drv.Store(&d)
		}
		return d, err
	}
	sg, err := servicegroup.OpenDriver(ctx, servicegroup.Config{
		URL: url, Member: member, HeartbeatInterval: hb, MemberTTL: ttl, DialTimeout: 20 * time.Second,
	}, b.name, wrapped)
	if err != nil {
		return nil, err
	}
	s.sg = sg
	return s, nil
}

func (s *session) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = s.sg.Close(ctx)
}

// population is many driver-level member sessions that do not heartbeat
// on their own (a TTL of ttl), joined to groups.
type population struct {
	mu   sync.Mutex
	drvs []driver.Driver
	stop chan struct{}
	done chan struct{}
	// beating is held through each of keepAlive's heartbeats, and by
	// whoever counts a server's requests (quiet): they would otherwise be
	// counted as the measured call's.
	beating sync.Mutex
}

// quiet holds off keepAlive's heartbeats until the returned func is called.
func (p *population) quiet() (resume func()) {
	p.beating.Lock()
	return p.beating.Unlock
}

// longTTL is the longest session TTL b grants (the test ZooKeeper caps
// sessions at testserver.ZooKeeperMaxSession).
func longTTL(b *backend) time.Duration {
	if b.name == "zookeeper" {
		return min(testserver.ZooKeeperMaxSession*4/5, time.Hour)
	}
	return time.Hour
}

// keepAlive heartbeats every session once every interval until close,
// one at a time, spread over the interval: a round of 200 heartbeats in a
// burst would slow whatever sample it overlapped, on one side of a ratio.
func (p *population) keepAlive(interval time.Duration) {
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(p.done)
		t := time.NewTimer(interval)
		defer t.Stop()
		for next := 0; ; next++ {
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
			p.mu.Lock()
			n := len(p.drvs)
			var d driver.Driver
			if n > 0 {
				d = p.drvs[next%n]
			}
			p.mu.Unlock()
			if d != nil {
				p.beating.Lock()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_ = d.Heartbeat(ctx)
				cancel()
				p.beating.Unlock()
			}
			t.Reset(interval / time.Duration(max(n, 1)))
		}
	}()
}

// add opens n sessions named prefix0.. on url and joins each to every
// group in groups(i), workers at a time.
func (p *population) add(ctx context.Context, b *backend, url, prefix string, n int, ttl time.Duration, groups func(i int) []string) error {
	const workers = 16
	errc := make(chan error, workers)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				d, err := b.open(ctx, driver.Options{URL: url, Member: fmt.Sprintf("%s%d", prefix, i), TTL: ttl, DialTimeout: 30 * time.Second})
				if err != nil {
					errc <- err
					return
				}
				p.mu.Lock()
				p.drvs = append(p.drvs, d)
				p.mu.Unlock()
				for _, g := range groups(i) {
					if err := d.Join(ctx, g, nil); err != nil {
						errc <- fmt.Errorf("join %s: %w", g, err)
						return
					}
				}
			}
		}()
	}
	var err error
feed:
	for i := range n {
		select {
		case next <- i:
		case err = <-errc:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	return err
}

func (p *population) close() {
	if p.stop != nil {
		close(p.stop)
		<-p.done
		p.stop = nil
	}
	p.mu.Lock()
	ds := p.drvs
	p.drvs = nil
	p.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, d := range ds {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			_ = d.Close(ctx)
			cancel()
			<-sem
		}()
	}
	wg.Wait()
}

// timeIt times f.
func timeIt(f func() error) (time.Duration, error) {
	t := time.Now()
	err := f()
	return time.Since(t), err
}
