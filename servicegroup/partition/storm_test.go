package partition

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/memory"
	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/driver"
)

// TestMembersEqualGroupAfterStorm: members join and leave at once, over and
// over, while Partitioners are created; once the storm is over every
// Partitioner's member set equals the group's (issue 13, item 9: one that
// read the group on its own kept a member that had joined and left between
// its read and its watch's, and that member's keys were owned by nobody).
func TestMembersEqualGroupAfterStorm(t *testing.T) {
	u := newURL(t)
	a := open(t, u, "a")
	join(t, a, "g", nil)
	stormers := make([]interface {
		JoinOrCreate(context.Context, string, map[string]any) error
		Leave(context.Context, string) error
	}, 3)
	for i := range stormers {
		stormers[i] = open(t, u, fmt.Sprintf("storm-%d", i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range stormers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Bounded: every change rebuilds ten rings under -race.
			for i := 0; i < 15 && ctx.Err() == nil; i++ {
				if s.JoinOrCreate(ctx, "g", nil) == nil {
					_ = s.Leave(context.Background(), "g")
				}
			}
		}()
	}
	var ps []*Partitioner
	for range 6 {
		ps = append(ps, newPartitioner(t, a, "g"))
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	waitMembers(t, []string{"a"}, ps...)
}

// membersHook is the memory backend with a function run after each
// Members call of the session, given the call's number (from 1).
type membersHook struct {
	driver.Driver
	n     *atomic.Int64
	after func(n int64)
}

func (m *membersHook) Members(ctx context.Context, g string) ([]driver.Member, error) {
	ms, err := m.Driver.Members(ctx, g)
	m.after(m.n.Add(1))
	return ms, err
}

// TestMemberBetweenWatchAndRead: j joins right after the watch's first read
// and leaves right after the next read. The Partitioner's set must still end
// equal to the group's (issue 13 item 9: it read the group itself, saw j,
// and no event ever removed j).
func TestMemberBetweenWatchAndRead(t *testing.T) {
	u := newURL(t)
	j := open(t, u, "j")
	join(t, j, "g", nil)
	if err := j.Leave(context.Background(), "g"); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	armed := make(chan struct{})
	after := func(n int64) {
		select {
		case <-armed:
		default:
			return
		}
		switch n {
		case 1:
			join(t, j, "g", nil)
		case 2:
			if err := j.Leave(context.Background(), "g"); err != nil {
				t.Error(err)
			}
		}
	}
	a, err := servicegroup.OpenDriver(context.Background(), servicegroup.Config{
		URL: u, Member: "a", HeartbeatInterval: 100 * time.Millisecond, MemberTTL: 3 * time.Second, // no test here waits for an expiry
		WatchInterval: 10 * time.Millisecond,
	}, "memory", func(ctx context.Context, o driver.Options) (driver.Driver, error) {
		d, err := memory.Open(ctx, o)
		if err != nil {
			return nil, err
		}
		return &membersHook{Driver: d, n: &calls, after: after}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close(context.Background()) })
	join(t, a, "g", nil)
	calls.Store(0)
	close(armed)
	p := newPartitioner(t, a, "g")
	time.Sleep(100 * time.Millisecond) // many diffs
	waitMembers(t, []string{"a"}, p)
}
