package postgresql

import (
	"context"
	"sync"
	"time"
)

// cleanupBatch bounds how many dead sessions one cleanup deletes.
const cleanupBatch = 100

// cleanupSQL deletes a bounded batch of dead sessions (their members and
// locks go by cascade) and wakes the watchers of their groups. SKIP LOCKED
// lets many processes clean at once without waiting on each other.
const cleanupSQL = `
WITH dead AS (
  SELECT id FROM muster_sessions WHERE expires_at <= now()
  ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED
), gone AS (
  DELETE FROM muster_sessions d USING dead WHERE d.id = dead.id RETURNING d.id
), n AS MATERIALIZED (
  SELECT pg_notify(` + "'muster_' || left(md5(current_schema() || '/' || group_name), 24)" + `, 'l ' || member)
  FROM muster_members WHERE session_id IN (SELECT id FROM gone)
)
SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM n)`

// janitor deletes dead sessions for one pool, so no external job is
// needed: every process running muster cleans up after the dead ones.
// Readers never depend on it (every read filters on expires_at > now());
// it bounds the tables' size and wakes watchers of an expiry promptly.
type janitor struct {
	p      *connPool
	mu     sync.Mutex
	period time.Duration
	quit   chan struct{}
	done   chan struct{}
}

func startJanitor(p *connPool, ttl time.Duration) *janitor {
	j := &janitor{p: p, quit: make(chan struct{}), done: make(chan struct{})}
	j.every(ttl)
	go j.run()
	return j
}

// every makes the janitor run at least every half ttl (bounded to
// [50ms, 5s]).
func (j *janitor) every(ttl time.Duration) {
	d := min(max(ttl/2, 50*time.Millisecond), 5*time.Second)
	j.mu.Lock()
	if j.period == 0 || d < j.period {
		j.period = d
	}
	j.mu.Unlock()
}

func (j *janitor) run() {
	defer close(j.done)
	for {
		j.mu.Lock()
		d := j.period
		j.mu.Unlock()
		select {
		case <-j.quit:
			return
		case <-time.After(d):
		}
		ctx, cancel := context.WithTimeout(context.Background(), d)
		var gone, notified int64
		_ = j.p.queryRow(ctx, []any{&gone, &notified}, cleanupSQL, cleanupBatch)
		cancel()
	}
}

func (j *janitor) stop() {
	close(j.quit)
	<-j.done
}
