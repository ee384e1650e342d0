package servicegroup

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/musterhq/muster/servicegroup/driver"
)

// An epoch is one backend session as the core tracks it. Everything held
// through a session (locks, leadership) is filed in its epoch, so when the
// epoch dies exactly what it held is reported lost, whatever happens to be
// in flight. An epoch dies once, for good: a late success on a dead epoch
// (a TryLock that finished on the old session during recovery) is never
// filed as held.
type epoch struct {
	drv driver.Driver
	id  string // drv's SessionID, "" when the backend has none

	// deadline is when this process stops trusting the session: the last
	// successful heartbeat's send time + TTL − margin, as a monotonic offset
	// from clockBase. Read without the lock by Lock.Held.
	deadline atomic.Int64

	// Guarded by ServiceGroup.mu.
	dead  bool
	locks map[*Lock]Token
	timer *time.Timer
}

// clockBase anchors the monotonic clock epochs use: deadlines never move
// with wall-clock steps.
var clockBase = time.Now()

func monoNow() time.Duration { return time.Since(clockBase) }

// lossMargin is how long before the backend could expire a session this
// process declares it lost. The backend renewed the session no earlier
// than the heartbeat was sent (that send time is what the deadline counts
// from, so the heartbeat's own latency only adds safety), so it expires no
// earlier than send + TTL by the backend's clock. The margin covers the
// rest: a backend clock running up to 2% fast against ours (far beyond
// NTP's 500 ppm slew limit), and the delay between the deadline and the
// moment Lost() is closed on a loaded machine (the other 8%), never less
// than 5 ms.
func lossMargin(ttl time.Duration) time.Duration {
	return max(ttl/10, 5*time.Millisecond)
}

// began is when d's backend session began its TTL, as a monotonic offset:
// the driver's own account (driver.Began) if it has one and it is later
// than opened, when this process asked for the session.
func began(d driver.Driver, opened time.Duration) time.Duration {
	if b, ok := d.(driver.Began); ok {
		if at := b.Began().Sub(clockBase); at > opened && at <= monoNow() {
			return at
		}
	}
	return opened
}

func newEpoch(d driver.Driver, renewedAt time.Duration, ttl time.Duration) *epoch {
	e := &epoch{drv: d, locks: map[*Lock]Token{}}
	if sid, ok := d.(driver.SessionID); ok {
		e.id = sid.SessionID()
	}
	e.deadline.Store(int64(renewedAt + ttl - lossMargin(ttl)))
	return e
}

// expired reports whether the epoch's local deadline has passed.
func (e *epoch) expired() bool { return monoNow() >= time.Duration(e.deadline.Load()) }

// keyedSem serializes operations per key (a group name): an operation whose
// outcome is still being resolved in the background holds its key until it
// is, so the next one sees the truth.
type keyedSem struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

// acquire takes key, waiting within ctx.
func (k *keyedSem) acquire(ctx context.Context, key string) (release func(), err error) {
	for {
		k.mu.Lock()
		if k.m == nil {
			k.m = map[string]chan struct{}{}
		}
		ch, busy := k.m[key]
		if !busy {
			ch = make(chan struct{})
			k.m[key] = ch
			k.mu.Unlock()
			return func() {
				k.mu.Lock()
				delete(k.m, key)
				k.mu.Unlock()
				close(ch)
			}, nil
		}
		k.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
