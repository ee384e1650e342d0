package central

import (
	"context"
	"time"
)

// lead campaigns for the central group's leadership until ctx ends, and
// does the leader's duty while it leads: log the split when it changes.
func (a *agent) lead(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		l, err := a.sg.Campaign(ctx, a.o.Group)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.log.Warnw("campaign failed; retrying", "error", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		a.log.Infow("elected leader of the central group", "group", a.o.Group, "term", l.Token())
		last := ""
		report := func() {
			a.mu.Lock()
			s := a.split
			a.mu.Unlock()
			if s != last && s != "" {
				a.log.Infow("split: " + s)
				last = s
			}
		}
		report()
	leading:
		for {
			select {
			case <-ctx.Done():
				rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_ = l.Resign(rctx)
				cancel()
				return
			case <-l.Lost():
				a.log.Warnw("leadership lost", "group", a.o.Group)
				break leading
			case <-a.splitChanged:
				report()
			}
		}
	}
}
