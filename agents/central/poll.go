package central

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// poll polls every owned task once, a few at a time, and writes a record
// for each.
func (a *agent) poll(ctx context.Context) {
	a.mu.Lock()
	mine := slices.Clone(a.assigned)
	a.mu.Unlock()
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, t := range mine {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rec := a.pollTask(ctx, t)
			if ctx.Err() != nil {
				return // stopping: not a failed poll
			}
			a.write(rec)
		}()
	}
	wg.Wait()
	a.mu.Lock()
	a.polls++
	a.lastPoll = time.Now()
	a.mu.Unlock()
}

func (a *agent) pollTask(ctx context.Context, t task) Record {
	start := time.Now()
	rec := Record{Time: start.UTC(), Agent: a.sg.Member(), Task: t.id}
	done := func() Record {
		rec.DurationMS = float64(time.Since(start).Microseconds()) / 1000
		return rec
	}
	switch {
	case t.static:
		rec.OK, rec.Status = true, json.RawMessage(`"static"`)
		return done()
	case t.url == "":
		rec.Error = "the member has no status_url capability"
		return done()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		rec.Error = err.Error()
		return done()
	}
	resp, err := a.client.Do(req)
	if err != nil {
		rec.Error = err.Error()
		return done()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case err != nil:
		rec.Error = err.Error()
	case resp.StatusCode != http.StatusOK:
		rec.Error = fmt.Sprintf("GET %s: %s", t.url, resp.Status)
	case !json.Valid(body):
		rec.Error = fmt.Sprintf("GET %s: the answer is not JSON", t.url)
	default:
		var compact bytes.Buffer
		_ = json.Compact(&compact, body)
		rec.OK, rec.Status = true, json.RawMessage(compact.Bytes())
	}
	return done()
}

func (a *agent) write(rec Record) {
	a.outMu.Lock()
	defer a.outMu.Unlock()
	if err := a.out.Encode(rec); err != nil {
		a.log.Warnw("cannot write a poll record", "error", err)
	}
}
