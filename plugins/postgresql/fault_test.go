package postgresql_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/testserver"
	"github.com/musterhq/muster/plugins/postgresql"
	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/driver"
)

// openSG opens an in-process ServiceGroup on url as member.
func openSG(t *testing.T, url, member string, hb, ttl time.Duration) *servicegroup.ServiceGroup {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sg, err := servicegroup.OpenDriver(ctx, servicegroup.Config{
		URL: url, Member: member, HeartbeatInterval: hb, MemberTTL: ttl,
		WatchInterval: 100 * time.Millisecond, DialTimeout: 5 * time.Second,
	}, "postgresql", postgresql.Open)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = sg.Close(ctx)
	})
	return sg
}

func eventually(t *testing.T, within time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func listed(sg *servicegroup.ServiceGroup, group string, want ...string) func() error {
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		ms, err := sg.Members(ctx, group)
		if err != nil {
			return err
		}
		var ids []string
		for _, m := range ms {
			ids = append(ids, m.ID)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, want) {
			return fmt.Errorf("members %v; want %v", ids, want)
		}
		return nil
	}
}

// TestServerRestart restarts the server under three joined members and a
// held lock: a short crash-like outage (within the TTL) keeps the
// sessions, a long one (past the TTL) loses the lock, whose next token is
// larger; the members are listed again either way.
func TestServerRestart(t *testing.T) {
	s := server(t)
	url := nsURL(t)
	const hb, ttl = 200 * time.Millisecond, 3 * time.Second
	ctx := context.Background()
	var sgs []*servicegroup.ServiceGroup
	for _, m := range []string{"a", "b", "c"} {
		sg := openSG(t, url, m, hb, ttl)
		if err := sg.JoinOrCreate(ctx, "g", nil); err != nil {
			t.Fatal(err)
		}
		sgs = append(sgs, sg)
	}
	lock := sgs[0].Lock("l")
	tok1, err := lock.TryAcquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, listed(sgs[2], "g", "a", "b", "c"))

	// Short outage: a crash, back at once.
	if err := testserver.PostgresCrash(s); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(true); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	eventually(t, 20*time.Second, listed(sgs[1], "g", "a", "b", "c"))
	t.Logf("after a short outage all three listed %v after the server was back", time.Since(back).Round(time.Millisecond))
	select {
	case <-lock.Lost():
		t.Fatal("the lock was lost in an outage shorter than the TTL")
	default:
	}
	if _, tok, err := sgs[2].LockHolder(ctx, "l"); err != nil || tok != tok1 {
		t.Fatalf("after a short outage the lock's holder has token %d (%v); want %d", tok, err, tok1)
	}
	stopped := time.Now()

	// Long outage: the lock outlives its TTL.
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lock.Lost():
	case <-time.After(4 * ttl):
		t.Fatal("the lock was not reported lost while the server was down past the TTL")
	}
	t.Logf("the lock was reported lost %v after the server stopped", time.Since(stopped).Round(time.Millisecond))
	if err := s.Restart(true); err != nil {
		t.Fatal(err)
	}
	back = time.Now()
	eventually(t, 30*time.Second, listed(sgs[1], "g", "a", "b", "c"))
	t.Logf("after a long outage all three listed again %v after the server was back", time.Since(back).Round(time.Millisecond))
	var tok2 servicegroup.Token
	eventually(t, 20*time.Second, func() error {
		var err error
		tok2, err = sgs[1].Lock("l").TryAcquire(ctx)
		return err
	})
	if tok2 <= tok1 {
		t.Errorf("token after the restart %d; want more than %d", tok2, tok1)
	}
}

// TestTerminatedBackend kills every connection of the test's sessions from
// the server side: the session lives on.
func TestTerminatedBackend(t *testing.T) {
	server(t)
	url := nsURL(t)
	ctx := context.Background()
	d, err := postgresql.Open(ctx, driver.Options{URL: url, Member: "m", TTL: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(ctx)
	if err := d.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if err := d.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := admin(ctx, testDB, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
  WHERE application_name = 'muster' AND pid <> pg_backend_pid()`); err != nil {
			t.Fatal(err)
		}
		if err := d.Heartbeat(ctx); err != nil {
			t.Fatalf("heartbeat after pg_terminate_backend: %v", err)
		}
		ms, err := d.Members(ctx, "g")
		if err != nil || len(ms) != 1 {
			t.Fatalf("members after pg_terminate_backend: %v, %v", ms, err)
		}
	}
}

// TestManyMembers heartbeats 200 in-process sessions at once on one server.
func TestManyMembers(t *testing.T) {
	server(t)
	url := nsURL(t)
	ctx := context.Background()
	const n = 200
	ds := make([]driver.Driver, n)
	var wg sync.WaitGroup
	errs := make(chan error, n*10)
	for i := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := postgresql.Open(ctx, driver.Options{URL: url, Member: fmt.Sprintf("m%03d", i), TTL: 30 * time.Second})
			if err != nil {
				errs <- err
				return
			}
			ds[i] = d
			if i == 0 {
				_ = d.CreateGroup(ctx, "g")
			}
		}()
	}
	wg.Wait()
	defer func() {
		for _, d := range ds {
			if d != nil {
				_ = d.Close(ctx)
			}
		}
	}()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	errs = make(chan error, n*10)
	for i, d := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.Join(ctx, "g", nil); err != nil && !errors.Is(err, driver.ErrGroupNotFound) {
				errs <- err
			} else if err != nil { // the creator has not committed yet
				_ = d.CreateGroup(ctx, "g")
				if err := d.Join(ctx, "g", nil); err != nil {
					errs <- fmt.Errorf("m%03d: %w", i, err)
				}
			}
			for range 5 {
				if err := d.Heartbeat(ctx); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ms, err := ds[0].Members(ctx, "g")
	if err != nil || len(ms) != n {
		t.Fatalf("%d members listed (%v); want %d", len(ms), err, n)
	}
}
