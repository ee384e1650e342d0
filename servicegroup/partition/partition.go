package partition

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/hashring"
)

// WeightCapability is the capability a member sets to take a larger share:
// an integer of at least 1, as tooz's partitioner reads it. Missing means 1.
const WeightCapability = "weight"

// Option changes how New builds a Partitioner.
type Option func(*options)

type options struct {
	alg hashring.Algorithm
	log *zap.Logger
}

// WithAlgorithm picks the ring: hashring.Default (muster's, the default) or
// hashring.Tooz, which splits keys exactly as tooz's Partitioner does.
// Every member of a group must use the same one.
func WithAlgorithm(alg hashring.Algorithm) Option { return func(o *options) { o.alg = alg } }

// WithLogger sends diagnostics (a bad weight, a watch that ended and is
// being re-created) to log. Default: none.
func WithLogger(log *zap.Logger) Option { return func(o *options) { o.log = log } }

// Partitioner is this member's view of how a group's live members split a
// key space: a hash ring of the members, kept in step with the group by
// following its Watch. Every member that builds one over the same group
// computes the same owners, so each can tell on its own which keys are its
// share. All methods are safe for concurrent use.
type Partitioner struct {
	sg     *servicegroup.ServiceGroup
	group  string
	member string
	alg    hashring.Algorithm
	log    *zap.Logger

	mu      sync.RWMutex
	weights map[string]int // live members and their weights
	ring    *hashring.Ring

	changed chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
}

// New returns a Partitioner over group for sg's member, and starts following
// the group until ctx ends or Close. It fails if the group cannot be watched
// now (ErrGroupNotFound: join or create it first). Once following, a watch
// that ends with an error (the group deleted and re-created, a backend
// outage) is re-created with backoff; only ServiceGroup.Close stops it.
//
// The member need not have joined: until it is listed in the group it owns
// nothing, and it owns its share as soon as the watch sees it.
func New(ctx context.Context, sg *servicegroup.ServiceGroup, group string, opts ...Option) (*Partitioner, error) {
	o := options{alg: hashring.Default, log: zap.NewNop()}
	for _, opt := range opts {
		opt(&o)
	}
	if o.alg == "" {
		o.alg = hashring.Default
	}
	if _, err := hashring.New(o.alg, nil); err != nil {
		return nil, fmt.Errorf("partition: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &Partitioner{
		sg:      sg,
		group:   group,
		member:  sg.Member(),
		alg:     o.alg,
		log:     o.log.With(zap.String("group", group)),
		changed: make(chan struct{}, 1),
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	w, stop, err := p.start(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("partition: %w", err)
	}
	go p.follow(ctx, w, stop)
	return p, nil
}

// start opens a watch and resets the member set to the state the watch
// started from, so the set and the watch's later events never disagree: a
// separate read could list a member that joins and leaves again before the
// watch's next look, and then no event would ever remove it.
func (p *Partitioner) start(ctx context.Context) (*servicegroup.Watch, context.CancelFunc, error) {
	wctx, stop := context.WithCancel(ctx)
	w, err := p.sg.Watch(wctx, p.group)
	if err != nil {
		stop()
		return nil, nil, err
	}
	ms := w.Initial()
	weights := make(map[string]int, len(ms))
	for _, m := range ms {
		weights[m.ID] = p.weight(m.ID, m.Capabilities)
	}
	p.mu.Lock()
	p.set(weights)
	p.mu.Unlock()
	return w, stop, nil
}

func drain(w *servicegroup.Watch) {
	for range w.Events() {
	}
}

// follow applies the watch's events, and re-creates the watch when it ends
// for any reason but ctx.
func (p *Partitioner) follow(ctx context.Context, w *servicegroup.Watch, stop context.CancelFunc) {
	defer close(p.done)
	const minBackoff, maxBackoff = 100 * time.Millisecond, 5 * time.Second
	backoff := minBackoff
	for {
		if w != nil {
			for ev := range w.Events() {
				p.apply(ev)
			}
			stop()
			if ctx.Err() != nil {
				return
			}
			err := w.Err()
			if errors.Is(err, servicegroup.ErrClosed) {
				p.log.Info("service group closed; partitioner stops following")
				return
			}
			p.log.Warn("watch ended; re-creating it", zap.Error(err))
			w = nil
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		var err error
		w, stop, err = p.start(ctx)
		switch {
		case err == nil:
			backoff = minBackoff
		case ctx.Err() != nil:
			return
		case errors.Is(err, servicegroup.ErrClosed):
			p.log.Info("service group closed; partitioner stops following")
			return
		default:
			p.log.Warn("re-creating watch failed; retrying", zap.Error(err), zap.Duration("retry_in", backoff))
			backoff = min(backoff*2, maxBackoff)
		}
	}
}

func (p *Partitioner) apply(ev servicegroup.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev.Type {
	case servicegroup.MemberJoined:
		w := p.weight(ev.Member, ev.Capabilities)
		if old, ok := p.weights[ev.Member]; ok && old == w {
			return
		}
		next := maps(p.weights)
		next[ev.Member] = w
		p.set(next)
	case servicegroup.MemberLeft:
		// A Left for a member never seen (it joined and left between two
		// reads) is not an error: tooz raised UnknownNode here.
		if _, ok := p.weights[ev.Member]; !ok {
			return
		}
		next := maps(p.weights)
		delete(next, ev.Member)
		p.set(next)
	}
}

func maps(m map[string]int) map[string]int {
	out := make(map[string]int, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// set installs a new member set (p.mu held) and signals Changed if it
// differs from the current one.
func (p *Partitioner) set(weights map[string]int) {
	if p.ring != nil && equal(p.weights, weights) {
		return
	}
	r, err := p.next(weights)
	if err != nil {
		// Cannot happen: names are valid member ids, weights are clamped.
		p.log.Error("cannot build the ring; keeping the previous one", zap.Error(err))
		return
	}
	first := p.ring == nil
	p.weights, p.ring = weights, r
	if !first {
		select {
		case p.changed <- struct{}{}:
		default:
		}
	}
}

// next builds the ring for weights: by one With or Without when a single
// member joined, left or changed weight (the same ring New would build, at
// a fraction of the cost on a large group), else anew.
func (p *Partitioner) next(weights map[string]int) (*hashring.Ring, error) {
	if p.ring != nil {
		var changed, gone []string
		for id, w := range weights {
			if old, ok := p.weights[id]; !ok || old != w {
				changed = append(changed, id)
			}
		}
		for id := range p.weights {
			if _, ok := weights[id]; !ok {
				gone = append(gone, id)
			}
		}
		switch {
		case len(changed) == 1 && len(gone) == 0:
			return p.ring.With(hashring.Node{Name: changed[0], Weight: weights[changed[0]]})
		case len(changed) == 0 && len(gone) == 1:
			return p.ring.Without(gone[0]), nil
		}
	}
	nodes := make([]hashring.Node, 0, len(weights))
	for id, w := range weights {
		nodes = append(nodes, hashring.Node{Name: id, Weight: w})
	}
	return hashring.New(p.alg, nodes)
}

func equal(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func (p *Partitioner) weight(member string, caps servicegroup.Capabilities) int {
	w, err := Weight(caps)
	if err != nil {
		p.log.Warn("ignoring bad weight capability", zap.String("member", member), zap.Error(err), zap.Int("weight", w))
	}
	return w
}

// Weight reads a member's weight from its capabilities: the "weight"
// capability, an integer of at least 1 (a float with no fraction counts),
// 1 when missing. A bad value gives 1 and an error saying why; a value above
// hashring.MaxWeight gives hashring.MaxWeight and an error.
func Weight(caps servicegroup.Capabilities) (int, error) {
	v, ok := caps[WeightCapability]
	if !ok || v == nil {
		return 1, nil
	}
	var n float64
	switch x := v.(type) {
	case int64:
		n = float64(x)
	case uint64:
		n = float64(x)
	case int:
		n = float64(x)
	case float64:
		if x != math.Trunc(x) {
			return 1, fmt.Errorf("weight %v is not an integer", x)
		}
		n = x
	default:
		return 1, fmt.Errorf("weight %v is a %T, not an integer", v, v)
	}
	switch {
	case n < 1:
		return 1, fmt.Errorf("weight %v is below 1", v)
	case n > hashring.MaxWeight:
		return hashring.MaxWeight, fmt.Errorf("weight %v is above %d", v, hashring.MaxWeight)
	}
	return int(n), nil
}

// Group is the group partitioned.
func (p *Partitioner) Group() string { return p.group }

// Member is the member whose share Owns and Subset answer for.
func (p *Partitioner) Member() string { return p.member }

// Ring is the current ring: a snapshot that later changes do not alter.
func (p *Partitioner) Ring() *hashring.Ring {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.ring
}

// Owns reports whether this member owns key now. A member not (yet) in the
// group owns nothing.
func (p *Partitioner) Owns(key []byte) bool {
	owner, ok := p.Ring().Owner(key)
	return ok && owner == p.member
}

// Subset returns the keys this member owns now, in their order: Ceilometer's
// extract_my_subset. The subsets of all members are disjoint and together
// hold every key, as long as they see the same member set.
func (p *Partitioner) Subset(keys []string) []string {
	r := p.Ring()
	var out []string
	for _, k := range keys {
		if owner, ok := r.Owner([]byte(k)); ok && owner == p.member {
			out = append(out, k)
		}
	}
	return out
}

// Owners returns up to replicas members for key, in preference order.
func (p *Partitioner) Owners(key []byte, replicas int) []string {
	return p.Ring().Owners(key, replicas)
}

// Members returns the group's live members as this Partitioner sees them,
// sorted.
func (p *Partitioner) Members() []string {
	p.mu.RLock()
	out := make([]string, 0, len(p.weights))
	for id := range p.weights {
		out = append(out, id)
	}
	p.mu.RUnlock()
	sort.Strings(out)
	return out
}

// Weights returns the members and their weights as this Partitioner sees
// them.
func (p *Partitioner) Weights() map[string]int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return maps(p.weights)
}

// Changed receives a value after the member set (and so this member's
// share) changes. Changes that happen before the value is received are
// coalesced into it: read the new state after receiving.
func (p *Partitioner) Changed() <-chan struct{} { return p.changed }

// Close stops following the group. The Partitioner keeps answering from the
// last member set it saw. Close is idempotent.
func (p *Partitioner) Close() {
	p.cancel()
	<-p.done
}
