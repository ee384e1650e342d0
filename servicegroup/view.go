package servicegroup

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/musterhq/muster/servicegroup/driver"
)

// View is a group's membership held in memory: a list of the group
// followed by its Watch, the way a Kubernetes informer keeps a
// list-and-watch cache. IsUp, GetAll, Members and Member answer from memory
// with no round trip to the backend.
//
// A View never answers silently from a state it has stopped following:
// while no read of the group has succeeded for longer than its staleness
// bound (see StaleAfter; default the member TTL), every read returns an
// error matching ErrStale that says since when. It re-watches by itself,
// with backoff, and answers again once it is back in step. A lost and
// re-opened session does not end it: its watch waits for the new session
// (and the view goes stale if that takes longer than the bound).
//
// Its answers are as fresh as the watch: with a backend's native watch a
// change arrives when it happens, otherwise at the next poll
// (Config.WatchInterval). What a View reports is the state of a read of the
// backend at most the bound ago, never a guess. All methods are safe for
// concurrent use.
type View struct {
	sg     *ServiceGroup
	group  string
	bound  time.Duration
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.RWMutex
	members map[string]Member
	sorted  []Member      // members by id; nil when it must be rebuilt
	synced  time.Duration // monotonic start of the last read applied
	lastErr error         // why the last read or re-watch failed
	gone    error         // the group does not exist (ErrGroupNotFound)
	ended   error         // the view stopped for good (ErrClosed)
	changed chan struct{} // closed (and replaced) on every change
	reads   chan struct{} // closed (and replaced) on every read applied
	kick    chan struct{} // the current watch's: asks it to read now
}

// ViewOption changes how a View is built.
type ViewOption func(*viewOptions)

type viewOptions struct {
	staleAfter time.Duration
}

// StaleAfter sets a View's staleness bound: how long after the last
// successful read of the group its reads fail with ErrStale. Default: the
// member TTL. It is never less than twice the watch interval (a polled
// watch reads once per interval).
func StaleAfter(d time.Duration) ViewOption {
	return func(o *viewOptions) { o.staleAfter = d }
}

// View returns a View of group and starts following it until ctx ends or
// Close. It fails if the group cannot be watched now (ErrGroupNotFound:
// create it first). Once following, a watch that ends (a deleted and
// re-created group, a backend outage) is re-created with backoff; only
// Close, ctx or ServiceGroup.Close stop it.
func (s *ServiceGroup) View(ctx context.Context, group string, opts ...ViewOption) (*View, error) {
	o := viewOptions{staleAfter: s.cfg.MemberTTL}
	for _, opt := range opts {
		opt(&o)
	}
	if o.staleAfter <= 0 {
		o.staleAfter = s.cfg.MemberTTL
	}
	o.staleAfter = max(o.staleAfter, 2*s.cfg.WatchInterval)
	ctx, cancel := context.WithCancel(ctx)
	v := &View{
		sg:      s,
		group:   group,
		bound:   o.staleAfter,
		cancel:  cancel,
		done:    make(chan struct{}),
		changed: make(chan struct{}),
		reads:   make(chan struct{}),
	}
	w, err := v.start(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	go v.follow(ctx, w)
	return v, nil
}

// start opens a watch and resets the view to the state it started from.
func (v *View) start(ctx context.Context) (*Watch, error) {
	began := monoNow() // no later than the watch's first read
	w, err := v.sg.watch(ctx, v.group, true)
	if err != nil {
		return nil, err
	}
	ms := make(map[string]Member, len(w.initial))
	for _, m := range w.initial {
		ms[m.ID] = m
	}
	v.mu.Lock()
	v.members, v.sorted, v.kick = ms, nil, w.kick
	v.synced = max(v.synced, began)
	v.gone, v.lastErr = nil, nil
	v.notify()
	v.mu.Unlock()
	return w, nil
}

// notify wakes Changed's waiters; v.mu held.
func (v *View) notify() {
	close(v.changed)
	v.changed = make(chan struct{})
}

// follow applies the watch's events, and re-creates the watch when it ends.
func (v *View) follow(ctx context.Context, w *Watch) {
	defer close(v.done)
	const minBackoff = 50 * time.Millisecond
	maxBackoff := max(minBackoff, min(v.bound/2, 5*time.Second))
	backoff := minBackoff
	stale := time.NewTimer(v.bound)
	defer stale.Stop()
	for {
		if w != nil {
			v.apply(ctx, w, stale)
			err := w.Err()
			switch {
			case ctx.Err() != nil || errors.Is(err, driver.ErrClosed):
				v.end(ctx, err)
				return
			case errors.Is(err, driver.ErrGroupNotFound):
				v.setGone(err)
			default:
				v.failed(err)
			}
			w = nil
		}
		select {
		case <-ctx.Done():
			v.end(ctx, nil)
			return
		case <-stale.C:
			v.wake()
			stale.Reset(v.bound)
			continue
		case <-time.After(backoff):
		}
		var err error
		w, err = v.start(ctx)
		switch {
		case err == nil:
			backoff = minBackoff
			stale.Reset(v.bound)
		case ctx.Err() != nil || errors.Is(err, driver.ErrClosed):
			v.end(ctx, err)
			return
		case errors.Is(err, driver.ErrGroupNotFound):
			v.setGone(err)
			backoff = min(backoff*2, maxBackoff)
		default:
			v.failed(err)
			v.sg.log.Debug("view: re-watching failed; retrying", zap.String("group", v.group), zap.Error(err), zap.Duration("retry_in", backoff))
			backoff = min(backoff*2, maxBackoff)
		}
	}
}

// apply takes w's events until it ends. stale fires once the view would
// go stale without a read, so Changed tells waiters.
func (v *View) apply(ctx context.Context, w *Watch, stale *time.Timer) {
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				return
			}
			if v.event(ev) {
				stale.Reset(v.bound)
			}
		case <-stale.C:
			v.wake()
			stale.Reset(v.bound)
		}
	}
}

// event applies one event; it reports whether it was a successful read.
func (v *View) event(ev Event) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch ev.Type {
	case syncMark:
		if ev.err != nil {
			v.lastErr = ev.err
			return false
		}
		wasStale := v.staleLocked(monoNow()) != nil
		v.synced = max(v.synced, ev.at)
		v.lastErr = nil
		close(v.reads)
		v.reads = make(chan struct{})
		if wasStale {
			v.notify() // fresh again
		}
		return true
	case MemberJoined, MemberUpdated:
		old, ok := v.members[ev.Member]
		if ok && old.ForcedDown == ev.ForcedDown && reflect.DeepEqual(old.Capabilities, ev.Capabilities) {
			return false // the watch's opening list, already held
		}
		caps := ev.Capabilities
		if caps == nil {
			caps = Capabilities{}
		}
		m := Member{ID: ev.Member, Capabilities: caps, ForcedDown: ev.ForcedDown, UpdatedAt: old.UpdatedAt}
		v.members[ev.Member] = m
	case MemberLeft:
		if _, ok := v.members[ev.Member]; !ok {
			return false
		}
		delete(v.members, ev.Member)
	default:
		return false
	}
	v.sorted = nil
	v.notify()
	return false
}

func (v *View) wake() {
	v.mu.Lock()
	v.notify()
	v.mu.Unlock()
}

func (v *View) failed(err error) {
	if err == nil {
		return
	}
	v.mu.Lock()
	v.lastErr = err
	v.mu.Unlock()
}

func (v *View) setGone(err error) {
	v.mu.Lock()
	v.gone = err
	v.members, v.sorted = map[string]Member{}, nil
	v.notify()
	v.mu.Unlock()
}

func (v *View) end(ctx context.Context, err error) {
	if err == nil || ctx.Err() != nil {
		err = fmt.Errorf("servicegroup: view of %q closed: %w", v.group, driver.ErrClosed)
	}
	v.mu.Lock()
	v.ended = err
	v.notify()
	v.mu.Unlock()
}

// staleLocked says why the view cannot answer at now, or nil; v.mu held.
func (v *View) staleLocked(now time.Duration) error {
	switch {
	case v.ended != nil:
		return v.ended
	case v.gone != nil:
		return fmt.Errorf("servicegroup: view of %q: %w", v.group, v.gone)
	}
	age := now - v.synced
	if age <= v.bound {
		return nil
	}
	var why string
	if v.lastErr != nil {
		why = "; last error: " + v.lastErr.Error()
	}
	since := time.Now().Add(-age)
	return fmt.Errorf("servicegroup: view of %q: %w: not in step with the backend since %s (%v ago, bound %v)%s",
		v.group, ErrStale, since.Format(time.RFC3339Nano), age.Round(time.Millisecond), v.bound, why)
}

// Group is the group viewed.
func (v *View) Group() string { return v.group }

// IsUp answers ServiceGroup.IsUp from memory: whether member is live and
// not forced down (false, not an error, for a member not in the group).
// ErrStale while the view is stale; ErrGroupNotFound while the group does
// not exist; ErrClosed once the view ended.
func (v *View) IsUp(member string) (bool, error) {
	if err := driver.ValidateName("member", member); err != nil {
		return false, fmt.Errorf("servicegroup: %w", err)
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	if err := v.staleLocked(monoNow()); err != nil {
		return false, err
	}
	m, ok := v.members[member]
	return ok && m.Up(), nil
}

// Member returns member as the view holds it; ErrNotMember if it is not
// live in the group. Its UpdatedAt is as of the view's first read of the
// group (zero for a member that joined since): a View does not follow
// heartbeats (ServiceGroup.UpdatedAt reads them). Treat its Capabilities
// as read-only: they are shared with the view.
func (v *View) Member(member string) (Member, error) {
	if err := driver.ValidateName("member", member); err != nil {
		return Member{}, fmt.Errorf("servicegroup: %w", err)
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	if err := v.staleLocked(monoNow()); err != nil {
		return Member{}, err
	}
	m, ok := v.members[member]
	if !ok {
		return Member{}, fmt.Errorf("servicegroup: %q in group %q: %w", member, v.group, driver.ErrNotMember)
	}
	return m, nil
}

// Members lists the group's live members, sorted by id, forced-down ones
// included, as ServiceGroup.Members does (see Member for UpdatedAt and
// Capabilities).
func (v *View) Members() ([]Member, error) {
	v.mu.RLock()
	if err := v.staleLocked(monoNow()); err != nil {
		v.mu.RUnlock()
		return nil, err
	}
	if v.sorted != nil {
		out := slices.Clone(v.sorted)
		v.mu.RUnlock()
		return out, nil
	}
	v.mu.RUnlock()
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.staleLocked(monoNow()); err != nil {
		return nil, err
	}
	if v.sorted == nil {
		v.sorted = slices.SortedFunc(maps.Values(v.members), func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
		if v.sorted == nil {
			v.sorted = []Member{}
		}
	}
	return slices.Clone(v.sorted), nil
}

// GetAll lists the members that are up (live, not forced down), sorted by
// id: ServiceGroup.GetAll from memory.
func (v *View) GetAll() ([]Member, error) {
	ms, err := v.Members()
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(ms, func(m Member) bool { return !m.Up() }), nil
}

// Len is how many live members the view holds (forced-down ones included),
// or an error as for Members.
func (v *View) Len() (int, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if err := v.staleLocked(monoNow()); err != nil {
		return 0, err
	}
	return len(v.members), nil
}

// Changed is closed at the view's next change: a member joined, left or
// updated, the view went stale or fresh again, the group went or came
// back, the view ended. Take it before reading the state, then wait:
//
//	for {
//		ch := v.Changed()
//		up, err := v.GetAll()
//		... use up, err ...
//		<-ch
//	}
func (v *View) Changed() <-chan struct{} {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.changed
}

// Synced waits until the view has applied a read of the group that began
// after Synced was called, so it reflects every change that completed
// before the call; then it returns the view's read error, if any (nil when
// fresh). It asks the watch to read at once rather than at its next poll.
// ctx bounds the wait.
func (v *View) Synced(ctx context.Context) error {
	since := monoNow()
	for {
		v.mu.RLock()
		ch, reads, kick, synced, ended := v.changed, v.reads, v.kick, v.synced, v.ended
		var err error
		if synced > since || ended != nil || v.gone != nil {
			err = v.staleLocked(monoNow())
		}
		v.mu.RUnlock()
		if synced > since || ended != nil {
			return err
		}
		if err != nil {
			return err // the group is gone
		}
		select {
		case kick <- struct{}{}:
		default:
		}
		select {
		case <-ch:
		case <-reads:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops following the group; later reads return ErrClosed. It is
// idempotent.
func (v *View) Close() {
	v.cancel()
	<-v.done
}
