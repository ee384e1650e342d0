package servicegroup_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/testserver"
	_ "github.com/musterhq/muster/plugins/redis" // registers redis:// in-process
	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/driver"
)

func openMemory(t *testing.T, ctx context.Context, url, member string) *servicegroup.ServiceGroup {
	t.Helper()
	sg, err := servicegroup.Open(ctx, servicegroup.Config{URL: url, Member: member,
		HeartbeatInterval: 100 * time.Millisecond, MemberTTL: time.Second, WatchInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sg.Close(context.Background()) })
	return sg
}

// eventually polls cond until it returns nil, failing t after within.
func eventually(t *testing.T, within time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s: %v", within, what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sameAsIsUp checks that the view answers IsUp as sg does, for ids.
func sameAsIsUp(t *testing.T, ctx context.Context, sg *servicegroup.ServiceGroup, v *servicegroup.View, ids ...string) {
	t.Helper()
	if err := v.Synced(ctx); err != nil {
		t.Fatalf("Synced: %v", err)
	}
	for _, id := range ids {
		want, werr := sg.IsUp(ctx, v.Group(), id)
		got, gerr := v.IsUp(id)
		if got != want || (werr == nil) != (gerr == nil) {
			t.Errorf("IsUp(%q): view %v, %v; ServiceGroup %v, %v", id, got, gerr, want, werr)
		}
	}
}

func TestViewFollowsTheGroup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := fmt.Sprintf("memory://view-follows-%d", time.Now().UnixNano())
	obs, a, b := openMemory(t, ctx, url, "obs"), openMemory(t, ctx, url, "a"), openMemory(t, ctx, url, "b")
	if err := obs.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if err := a.Join(ctx, "g", servicegroup.Capabilities{"weight": 2}); err != nil {
		t.Fatal(err)
	}
	v, err := obs.View(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	ids := []string{"a", "b", "nobody"}
	sameAsIsUp(t, ctx, obs, v, ids...)
	if m, err := v.Member("a"); err != nil || !reflect.DeepEqual(m.Capabilities, servicegroup.Capabilities{"weight": int64(2)}) {
		t.Fatalf("Member(a): %+v, %v", m, err)
	}
	if _, err := v.Member("b"); !errors.Is(err, servicegroup.ErrNotMember) {
		t.Fatalf("Member(b) before it joined: %v; want ErrNotMember", err)
	}

	changed := v.Changed()
	if err := b.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("Changed not closed after a join")
	}
	sameAsIsUp(t, ctx, obs, v, ids...)

	if err := obs.ForceDown(ctx, "g", "a", true); err != nil {
		t.Fatal(err)
	}
	sameAsIsUp(t, ctx, obs, v, ids...)
	if up, _ := v.IsUp("a"); up {
		t.Fatal("a is up in the view after force-down")
	}
	all, err := v.GetAll()
	if err != nil || len(all) != 1 || all[0].ID != "b" {
		t.Fatalf("GetAll with a forced down: %+v, %v", all, err)
	}
	ms, err := v.Members()
	if err != nil || len(ms) != 2 || ms[0].ID != "a" || !ms[0].ForcedDown || ms[1].ID != "b" {
		t.Fatalf("Members: %+v, %v", ms, err)
	}
	if err := obs.ForceDown(ctx, "g", "a", false); err != nil {
		t.Fatal(err)
	}
	if err := a.SetCapabilities(ctx, "g", servicegroup.Capabilities{"weight": 3}); err != nil {
		t.Fatal(err)
	}
	sameAsIsUp(t, ctx, obs, v, ids...)
	if m, err := v.Member("a"); err != nil || m.Capabilities["weight"] != int64(3) || m.ForcedDown {
		t.Fatalf("Member(a) after update: %+v, %v", m, err)
	}
	if err := b.Leave(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	sameAsIsUp(t, ctx, obs, v, ids...)
	if n, err := v.Len(); n != 1 || err != nil {
		t.Fatalf("Len after b left: %d, %v", n, err)
	}
	// Names are checked as IsUp checks them.
	if _, err := v.IsUp("a/b"); !errors.Is(err, servicegroup.ErrInvalidName) {
		t.Fatalf("IsUp of a bad name: %v", err)
	}
	v.Close()
	if _, err := v.IsUp("a"); !errors.Is(err, servicegroup.ErrClosed) {
		t.Fatalf("IsUp after Close: %v; want ErrClosed", err)
	}
}

func TestViewOfMissingGroup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sg := openMemory(t, ctx, fmt.Sprintf("memory://view-missing-%d", time.Now().UnixNano()), "obs")
	if _, err := sg.View(ctx, "missing"); !errors.Is(err, servicegroup.ErrGroupNotFound) {
		t.Fatalf("View of a missing group: %v; want ErrGroupNotFound", err)
	}
}

// A view whose reads of the group fail says it is stale once the bound
// has passed, and answers again when they succeed.
func TestViewStaleWhileReadsFail(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g := &gates{}
	sg, err := servicegroup.OpenDriver(ctx, servicegroup.Config{
		URL: fmt.Sprintf("memory://view-stale-%d", time.Now().UnixNano()), Member: "m",
		HeartbeatInterval: 100 * time.Millisecond, MemberTTL: time.Second, WatchInterval: 50 * time.Millisecond,
	}, "memory", g.open)
	if err != nil {
		t.Fatal(err)
	}
	defer sg.Close(context.Background())
	if err := sg.JoinOrCreate(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	v, err := sg.View(ctx, "g", servicegroup.StaleAfter(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.Synced(ctx); err != nil {
		t.Fatal(err)
	}
	g.set("Members", hook{fail: func(*gated) error { return fmt.Errorf("gated: %w", driver.ErrUnavailable) }})
	changed := v.Changed()
	eventually(t, 10*time.Second, "the view says it is stale", func() error {
		if _, err := v.IsUp("m"); !errors.Is(err, servicegroup.ErrStale) {
			return fmt.Errorf("IsUp: %v", err)
		}
		return nil
	})
	select {
	case <-changed: // going stale is a change
	case <-time.After(10 * time.Second):
		t.Fatal("Changed not closed when the view went stale")
	}
	_, err = v.IsUp("m")
	if msg := err.Error(); !strings.Contains(msg, "since") || !strings.Contains(msg, "unavailable") {
		t.Errorf("stale error %q says neither since when nor why", msg)
	}
	for _, read := range []func() error{
		func() error { _, err := v.GetAll(); return err },
		func() error { _, err := v.Members(); return err },
		func() error { _, err := v.Member("m"); return err },
	} {
		if err := read(); !errors.Is(err, servicegroup.ErrStale) {
			t.Errorf("read of a stale view: %v; want ErrStale", err)
		}
	}
	g.clear("Members")
	if err := v.Synced(ctx); err != nil {
		t.Fatalf("Synced after reads work again: %v", err)
	}
	if up, err := v.IsUp("m"); !up || err != nil {
		t.Fatalf("IsUp after recovery: %v, %v", up, err)
	}
}

// A real backend stopped under a view: it goes stale, and recovers by
// itself when the server is back (a redis without persistence: the group
// is re-created by the member's re-join).
func TestViewStaleWhenRedisStops(t *testing.T) {
	srv, err := testserver.StartRedis()
	if err != nil {
		testserver.Missing(t, err)
		return
	}
	defer srv.Close()
	srv.LogOnFailure(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	open := func(member string) *servicegroup.ServiceGroup {
		sg, err := servicegroup.Open(ctx, servicegroup.Config{URL: "redis://" + srv.Addr(), Member: member,
			Mode: servicegroup.ModeInProcess, HeartbeatInterval: 100 * time.Millisecond, MemberTTL: time.Second,
			WatchInterval: 50 * time.Millisecond, DialTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sg.Close(context.Background()) })
		return sg
	}
	obs, m := open("obs"), open("m")
	if err := m.JoinOrCreate(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	v, err := obs.View(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.Synced(ctx); err != nil {
		t.Fatal(err)
	}
	if up, err := v.IsUp("m"); !up || err != nil {
		t.Fatalf("IsUp before the outage: %v, %v", up, err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the view says it is stale", func() error {
		if _, err := v.IsUp("m"); !errors.Is(err, servicegroup.ErrStale) {
			return fmt.Errorf("IsUp: %v", err)
		}
		return nil
	})
	_, err = v.IsUp("m")
	t.Logf("with redis stopped: %v", err)
	if err := srv.Restart(false); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the view answers again after the restart", func() error {
		up, err := v.IsUp("m")
		if err == nil && !up {
			err = errors.New("m not up")
		}
		return err
	})
}

// The view's ServiceGroup loses its session and opens a new one: the view
// keeps following (its watch waits for the new session) and sees what
// changed meanwhile.
func TestViewSurvivesSessionLoss(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := fmt.Sprintf("memory://view-session-%d", time.Now().UnixNano())
	g := &gates{}
	obs, err := servicegroup.OpenDriver(ctx, servicegroup.Config{URL: url, Member: "obs",
		HeartbeatInterval: 100 * time.Millisecond, MemberTTL: time.Second, WatchInterval: 50 * time.Millisecond,
	}, "memory", g.open)
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close(context.Background())
	other := openMemory(t, ctx, url, "other")
	if err := obs.JoinOrCreate(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	v, err := obs.View(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	sameAsIsUp(t, ctx, obs, v, "obs", "other")
	g.beatFail.Store(true) // the session expires; so do the next ones
	eventually(t, 20*time.Second, "a new session", func() error {
		if g.count() < 2 {
			return errors.New("still the first session")
		}
		return nil
	})
	if err := other.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	g.beatFail.Store(false)
	eventually(t, 20*time.Second, "the view follows the new session", func() error {
		up, err := v.IsUp("other")
		if err == nil && !up {
			err = errors.New("other not up in the view")
		}
		return err
	})
	sameAsIsUp(t, ctx, obs, v, "obs", "other")
	if up, err := v.IsUp("obs"); !up || err != nil {
		t.Fatalf("obs re-joined but the view says %v, %v", up, err)
	}
}
