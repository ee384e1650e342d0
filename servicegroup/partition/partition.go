package partition

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"

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

// Partitioner is this member's view of how a group's up members split a
// key space: a hash ring of the members, kept in step with the group by
// following a servicegroup.View of it. Every member that builds one over the same group
// computes the same owners, so each can tell on its own which keys are its
// share. All methods are safe for concurrent use.
type Partitioner struct {
	sg     *servicegroup.ServiceGroup
	group  string
	member string
	alg    hashring.Algorithm
	log    *zap.Logger

	view *servicegroup.View

	mu      sync.RWMutex
	weights map[string]int // up members and their weights
	ring    *hashring.Ring

	changed chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
}

// New returns a Partitioner over group for sg's member, and starts following
// the group until ctx ends or Close. It fails if the group cannot be watched
// now (ErrGroupNotFound: join or create it first). It follows the group
// through a servicegroup.View, which re-creates its watch with backoff when
// it ends (the group deleted and re-created, a backend outage); only
// ServiceGroup.Close stops it.
//
// The ring holds the members that are up: live and not forced down. A
// member forced down owns nothing until the mark is cleared, and a change
// of a member's weight capability moves keys at once.
//
// The member need not have joined: until it is listed in the group it owns
// nothing, and it owns its share as soon as the view sees it. While the
// view is stale (no read of the group succeeded within its bound) the
// Partitioner keeps the last member set it saw; while the group does not
// exist it holds no member.
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
	v, err := sg.View(ctx, group)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("partition: %w", err)
	}
	p := &Partitioner{
		sg:      sg,
		group:   group,
		member:  sg.Member(),
		alg:     o.alg,
		log:     o.log.With(zap.String("group", group)),
		view:    v,
		changed: make(chan struct{}, 1),
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	ch := v.Changed()
	if err := p.refresh(); err != nil || p.ring == nil {
		p.mu.Lock()
		p.set(map[string]int{}) // the view is already stale: start empty
		p.mu.Unlock()
	}
	go p.follow(ctx, ch)
	return p, nil
}

// follow rebuilds the ring on every change of the view.
func (p *Partitioner) follow(ctx context.Context, ch <-chan struct{}) {
	defer close(p.done)
	defer p.view.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
		ch = p.view.Changed()
		if err := p.refresh(); errors.Is(err, servicegroup.ErrClosed) {
			p.log.Info("service group closed; partitioner stops following")
			return
		}
	}
}

// refresh installs the view's up members as the ring. A stale view
// changes nothing; a missing group empties the ring.
func (p *Partitioner) refresh() error {
	ms, err := p.view.GetAll()
	switch {
	case errors.Is(err, servicegroup.ErrGroupNotFound):
		ms = nil
	case errors.Is(err, servicegroup.ErrStale):
		p.log.Warn("view is stale; keeping the last member set", zap.Error(err))
		return err
	case err != nil:
		return err
	}
	weights := make(map[string]int, len(ms))
	for _, m := range ms {
		weights[m.ID] = p.weight(m.ID, m.Capabilities)
	}
	p.mu.Lock()
	p.set(weights)
	p.mu.Unlock()
	return nil
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
// maxIncremental is the most joins (a leave counts two) next applies one
// by one rather than building the ring anew.
const maxIncremental = 4

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
		// A few joins and leaves at once (agents starting together, seen
		// in one diff) are applied one by one: With and Without give the
		// ring New would, and cost less than New for up to about four
		// joins or two leaves (CPU, 100 and 1,000 members: a join ~1/4 of
		// a New, a leave ~1/2). A weight change rebuilds in With anyway.
		joined := 0
		for _, id := range changed {
			if _, ok := p.weights[id]; !ok {
				joined++
			}
		}
		cost := joined + 2*len(gone)
		if len(changed)+len(gone) == 1 || (joined == len(changed) && cost <= maxIncremental) {
			r := p.ring
			for _, id := range gone {
				r = r.Without(id)
			}
			for _, id := range changed {
				var err error
				if r, err = r.With(hashring.Node{Name: id, Weight: weights[id]}); err != nil {
					return nil, err
				}
			}
			return r, nil
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

// Members returns the group's members in the ring (live, not forced down)
// as this Partitioner sees them, sorted.
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

// View is the view of the group the Partitioner follows: IsUp and GetAll
// from memory, with the same member set the ring was built from (or a
// newer one).
func (p *Partitioner) View() *servicegroup.View { return p.view }
