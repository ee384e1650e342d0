package mysql_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/testserver"
	"github.com/musterhq/muster/plugins/mysql"
	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/driver"
)

// These tests stop, kill or flood the package's one server, so none of
// them runs in parallel with another test.

// eventually polls cond until it holds or bound passes.
func eventually(t *testing.T, bound time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > bound {
			t.Fatalf("not within %v: %s", bound, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

func sgOpen(t *testing.T, url, member string, hb, ttl time.Duration) *servicegroup.ServiceGroup {
	t.Helper()
	sg, err := servicegroup.OpenDriver(context.Background(), servicegroup.Config{URL: url, Member: member,
		HeartbeatInterval: hb, MemberTTL: ttl, Mode: servicegroup.ModeInProcess}, "mysql", mysql.Open)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sg.Close(context.Background()) })
	return sg
}

func ids(ms []servicegroup.Member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.ID)
	}
	slices.Sort(out)
	return out
}

// TestServerRestart: the server restarted under three joined members and
// a held lock. The members, whose TTL outlives the outage, are listed
// again once it is back; the lock, whose holder's TTL the outage
// outlived, is reported lost and its next token is larger.
func TestServerRestart(t *testing.T) {
	srv := server(t)
	url := dbURL(t)
	ctx := context.Background()
	const hb = 200 * time.Millisecond
	var members []*servicegroup.ServiceGroup
	for i := 1; i <= 3; i++ {
		sg := sgOpen(t, url, fmt.Sprintf("compute-%d", i), hb, 20*time.Second)
		if err := sg.JoinOrCreate(ctx, "compute", servicegroup.Capabilities{"n": i}); err != nil {
			t.Fatal(err)
		}
		members = append(members, sg)
	}
	holder := sgOpen(t, url, "holder", hb, time.Second)
	lock := holder.Lock("job")
	tok1, err := lock.TryAcquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"compute-1", "compute-2", "compute-3"}
	listed := func() bool {
		ms, err := members[0].Members(ctx, "compute")
		return err == nil && slices.Equal(ids(ms), want)
	}
	eventually(t, 10*time.Second, "three members listed", listed)

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // longer than the holder's TTL
	if err := srv.Restart(true); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	took := eventually(t, 20*time.Second, "three members listed after the restart", listed)
	t.Logf("members listed %v after the server was back (heartbeat %v)", took, hb)
	select {
	case <-lock.Lost():
	case <-time.After(20 * time.Second):
		t.Fatal("the lock outlived by its TTL was not reported lost")
	}
	t.Logf("lock reported lost %v after the server was back", time.Since(back))
	other := sgOpen(t, url, "other", hb, 20*time.Second)
	var tok2 servicegroup.Token
	eventually(t, 10*time.Second, "the lock taken again", func() bool {
		tok2, err = other.Lock("job").TryAcquire(ctx)
		return err == nil
	})
	if tok2 <= tok1 {
		t.Fatalf("token after the restart %d, before %d: want larger", tok2, tok1)
	}
}

// TestTokenCounterSurvivesCrash: InnoDB keeps the auto-increment counter
// across a crash (MariaDB 10.2.4+), even with every counter row deleted,
// so tokens never go back.
func TestTokenCounterSurvivesCrash(t *testing.T) {
	srv := server(t)
	url := dbURL(t)
	db := url[strings.LastIndexByte(url, '/')+1:]
	ctx := context.Background()
	d, err := mysql.Open(ctx, driver.Options{URL: url, Member: "a", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var tok1 driver.Token
	for i := 0; i < 3; i++ {
		if tok1, err = d.TryLock(ctx, "l"); err != nil {
			t.Fatal(err)
		}
		if err := d.Unlock(ctx, "l", tok1); err != nil {
			t.Fatal(err)
		}
	}
	_ = d.Close(ctx)
	if _, err := admin.ExecContext(ctx, "DELETE FROM "+db+".muster_tokens"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(true); err != nil {
		t.Fatal(err)
	}
	e := open(t, url, "b", time.Minute)
	tok2, err := e.TryLock(ctx, "l")
	if err != nil {
		t.Fatal(err)
	}
	if tok2 <= tok1 {
		t.Fatalf("token after a crash with an empty counter table %d, before %d", tok2, tok1)
	}
	t.Logf("token before the crash %d, after %d", tok1, tok2)
}

// TestConnectionKilled: KILL of every connection of a session from the
// server side is survived transparently.
func TestConnectionKilled(t *testing.T) {
	srv := server(t)
	url := dbURL(t)
	db := url[strings.LastIndexByte(url, '/')+1:]
	ctx := context.Background()
	a, b := open(t, url, "a", 30*time.Second), open(t, url, "b", 30*time.Second)
	if err := a.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if err := a.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	tok, err := a.TryLock(ctx, "l")
	if err != nil {
		t.Fatal(err)
	}
	out, err := testserver.MariaDBExec(ctx, srv, "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = '"+db+"'")
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, id := range strings.Fields(out) {
		if _, err := testserver.MariaDBExec(ctx, srv, "KILL "+id); err == nil {
			killed++
		}
	}
	if killed == 0 {
		t.Fatalf("no connection to kill: %q", out)
	}
	t.Logf("killed %d connections", killed)
	for _, d := range []driver.Driver{a, b} {
		if err := d.Heartbeat(ctx); err != nil {
			t.Fatalf("Heartbeat after KILL: %v", err)
		}
	}
	ms, err := b.Members(ctx, "g")
	if err != nil || len(ms) != 1 || ms[0].ID != "a" {
		t.Fatalf("Members after KILL = %v, %v", ms, err)
	}
	if err := a.Unlock(ctx, "l", tok); err != nil {
		t.Fatalf("Unlock after KILL: %v", err)
	}
}

// TestManyMembers: 200 sessions heartbeating at once against one server,
// without errors, all listed.
func TestManyMembers(t *testing.T) {
	url := dbURL(t)
	ctx := context.Background()
	const n = 200
	first := open(t, url, "m-000", 30*time.Second)
	if err := first.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	ds := make([]driver.Driver, n)
	ds[0] = first
	var wg sync.WaitGroup
	errs := make(chan error, n*10)
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := mysql.Open(ctx, driver.Options{URL: url, Member: fmt.Sprintf("m-%03d", i), TTL: 30 * time.Second})
			if err != nil {
				errs <- err
				return
			}
			ds[i] = d
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, d := range ds[1:] {
			if d != nil {
				_ = d.Close(ctx)
			}
		}
	})
	if len(errs) > 0 {
		t.Fatal(<-errs)
	}
	for round := 0; round < 5; round++ {
		for _, d := range ds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if round == 0 {
					if err := d.Join(ctx, "g", nil); err != nil {
						errs <- err
					}
				}
				if err := d.Heartbeat(ctx); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ms, err := first.Members(ctx, "g")
	if err != nil || len(ms) != n {
		t.Fatalf("Members: %d, %v; want %d", len(ms), err, n)
	}
}

// TestTokenCounterTrimmed: a session's locks trim the counter's rows on
// its first lock and every 64th after it, so the table stays small while
// tokens keep growing.
func TestTokenCounterTrimmed(t *testing.T) {
	url := dbURL(t)
	db := url[strings.LastIndexByte(url, '/')+1:]
	ctx := context.Background()
	d := open(t, url, "a", time.Minute)
	var last driver.Token
	for i := 0; i < 200; i++ {
		tok, err := d.TryLock(ctx, "l")
		if err != nil {
			t.Fatal(err)
		}
		if tok <= last {
			t.Fatalf("lock %d: token %d after %d", i, tok, last)
		}
		last = tok
		if err := d.Unlock(ctx, "l", tok); err != nil {
			t.Fatal(err)
		}
	}
	var rows int
	if err := admin.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+db+".muster_tokens").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	// 200 locks: trims at the 1st, 65th, 129th and 193rd leave the 193rd's
	// row and the 7 after it.
	if rows != 8 {
		t.Fatalf("%d counter rows after 200 locks, want 8", rows)
	}
}

// TestTryLockSessionExpired: a session whose row the server has expired
// (its TTL passed without a heartbeat reaching the server) takes no lock:
// TryLock says the session is lost and leaves no lock row.
func TestTryLockSessionExpired(t *testing.T) {
	url := dbURL(t)
	db := url[strings.LastIndexByte(url, '/')+1:]
	ctx := context.Background()
	a, b := open(t, url, "a", time.Minute), open(t, url, "b", time.Minute)
	if _, err := admin.ExecContext(ctx, "UPDATE "+db+".muster_sessions SET expires_at = CURRENT_TIMESTAMP(6) - INTERVAL 1 SECOND WHERE member = 'a'"); err != nil {
		t.Fatal(err)
	}
	if tok, err := a.TryLock(ctx, "l"); !errors.Is(err, driver.ErrSessionLost) {
		t.Fatalf("TryLock of an expired session: token %d, %v; want ErrSessionLost", tok, err)
	}
	if h, err := b.LockHolder(ctx, "l"); !errors.Is(err, driver.ErrNotLocked) {
		t.Fatalf("LockHolder after the refused TryLock: %+v, %v; want ErrNotLocked", h, err)
	}
	var rows int
	if err := admin.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+db+".muster_locks").Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("lock rows: %d, %v; want none", rows, err)
	}
}
