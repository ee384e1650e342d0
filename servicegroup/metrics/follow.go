package metrics

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/musterhq/muster/servicegroup"
)

// Roster is a followed group as one process saw it.
type Roster struct {
	Group string
	// Members are the live members, sorted by id.
	Members []servicegroup.Member
	// Gone are members seen live by this follower and gone since (left, or
	// their session expired), most recently seen first.
	Gone []Gone
	// Leader leads the group, "" when nobody does (or not yet known).
	Leader string
}

// Gone is a member that was live and is no longer.
type Gone struct {
	ID string
	// LastSeen is its last heartbeat by the backend's clock, as last read.
	LastSeen     time.Time
	Capabilities servicegroup.Capabilities
}

// Counts are the numbers behind the muster_members gauge.
func (r Roster) Counts() (up, down, forcedDown int) {
	for _, m := range r.Members {
		if m.ForcedDown {
			forcedDown++
		} else {
			up++
		}
	}
	return up, len(r.Gone), forcedDown
}

// FollowOptions tune Follow. The zero value is fine.
type FollowOptions struct {
	// Refresh re-reads the members this often even without a change, so
	// their UpdatedAt (last seen) stays fresh. Default: only on changes.
	Refresh time.Duration
	// ForgetAfter drops a gone member this long after it was last seen.
	// Default 15 minutes.
	ForgetAfter time.Duration
	// MaxGone bounds the gone members kept. Default 256.
	MaxGone int
}

// Follow watches group through sg and calls fn with the group's roster
// at the start and after every change the watch reports (it re-reads the
// membership on each event, so it sees what the events imply, whatever
// kinds they are). It returns nil when ctx ends, or the watch's error
// (ErrGroupNotFound at once if the group does not exist, or once it is
// deleted). fn runs on Follow's goroutine.
func Follow(ctx context.Context, sg *servicegroup.ServiceGroup, group string, o FollowOptions, fn func(Roster)) error {
	if o.ForgetAfter <= 0 {
		o.ForgetAfter = 15 * time.Minute
	}
	if o.MaxGone <= 0 {
		o.MaxGone = 256
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := sg.Watch(ctx, group)
	if err != nil {
		return err
	}
	f := &follower{o: o, r: Roster{Group: group}}
	f.update(w.Initial())
	fn(f.snapshot())
	var tick <-chan time.Time
	if o.Refresh > 0 {
		t := time.NewTicker(o.Refresh)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return w.Err()
			}
			f.event(ev)
			// Take every event already queued before one read.
			for more := true; more; {
				select {
				case ev, ok := <-w.Events():
					if ok {
						f.event(ev)
					}
					more = ok
				default:
					more = false
				}
			}
		case <-tick:
		case <-ctx.Done():
			return nil
		}
		ms, err := sg.Members(ctx, group)
		switch {
		case err == nil:
			f.update(ms)
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, servicegroup.ErrGroupNotFound):
			f.update(nil)
		default:
			continue // a blip: the next event or tick reads again
		}
		fn(f.snapshot())
	}
}

type follower struct {
	o    FollowOptions
	r    Roster
	seen map[string]servicegroup.Member // live at the last read
}

func (f *follower) event(ev servicegroup.Event) {
	if ev.Type == servicegroup.LeaderChanged {
		f.r.Leader = ev.Member
	}
}

func (f *follower) update(ms []servicegroup.Member) {
	now := map[string]servicegroup.Member{}
	for _, m := range ms {
		now[m.ID] = m
	}
	for id, m := range f.seen {
		if _, ok := now[id]; !ok {
			f.r.Gone = append(f.r.Gone, Gone{ID: id, LastSeen: m.UpdatedAt, Capabilities: m.Capabilities})
		}
	}
	f.seen = now
	f.r.Members = slices.Clone(ms)
	slices.SortFunc(f.r.Members, func(a, b servicegroup.Member) int { return strings.Compare(a.ID, b.ID) })
	// Back (or still) live: not gone. Too old: forgotten.
	f.r.Gone = slices.DeleteFunc(f.r.Gone, func(g Gone) bool {
		_, live := now[g.ID]
		return live || time.Since(g.LastSeen) > f.o.ForgetAfter
	})
	slices.SortStableFunc(f.r.Gone, func(a, b Gone) int { return b.LastSeen.Compare(a.LastSeen) })
	// One entry per id, the newest.
	seen := map[string]bool{}
	f.r.Gone = slices.DeleteFunc(f.r.Gone, func(g Gone) bool {
		dup := seen[g.ID]
		seen[g.ID] = true
		return dup
	})
	if len(f.r.Gone) > f.o.MaxGone {
		f.r.Gone = f.r.Gone[:f.o.MaxGone]
	}
}

func (f *follower) snapshot() Roster {
	r := f.r
	r.Members = slices.Clone(r.Members)
	r.Gone = slices.Clone(r.Gone)
	return r
}

// Follow keeps the muster_members gauges of group current from sg until
// ctx ends, following it again (after a pause) when the group does not
// exist yet or is deleted. It returns when ctx ends.
func (m *Metrics) Follow(ctx context.Context, sg *servicegroup.ServiceGroup, group string) {
	for {
		err := Follow(ctx, sg, group, FollowOptions{Refresh: 10 * time.Second}, func(r Roster) {
			up, down, forced := r.Counts()
			m.SetMembers(group, up, down, forced)
		})
		if ctx.Err() != nil || errors.Is(err, servicegroup.ErrClosed) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}
