package etcd

import (
	"context"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// A member's UpdatedAt is when its lease was last renewed, by the server's
// clock: etcd reports a lease's granted and remaining TTL (TimeToLive,
// measured by the leader), so the renewal was granted-remaining ago. etcd
// has no wall clock to read, so that age is laid back from the reader's
// "now" — an age measured by the server, never a time written by another
// client. TimeToLive says whole seconds only, so the time is exact to a
// second.
//
// To keep the time steady between renewals (the suite wants the same time
// until the next heartbeat), a reader asks again only when the member's
// session record changed: every Heartbeat rewrites it, so its mod revision
// counts renewals. A member written by tooz has no session record: its
// time is kept until the lease's age says it was renewed.

// beat is a reader's cached renewal time of one lease.
type beat struct {
	rev int64 // mod revision of the session record; 0 for none
	at  time.Time
}

// maxBeats bounds the cache; past it the cache starts over.
const maxBeats = 8192

// fanout bounds concurrent TimeToLive calls of one listing.
const fanout = 16

// batch is how many reads go in one transaction (etcd allows 128 ops).
const batch = 100

// updatedAt returns the renewal time of each lease that is still alive.
func (s *session) updatedAt(ctx context.Context, leases []clientv3.LeaseID) (map[clientv3.LeaseID]time.Time, error) {
	uniq := make([]clientv3.LeaseID, 0, len(leases))
	seen := make(map[clientv3.LeaseID]bool, len(leases))
	for _, l := range leases {
		if !seen[l] {
			seen[l] = true
			uniq = append(uniq, l)
		}
	}
	revs := make(map[clientv3.LeaseID]int64, len(uniq))
	for i := 0; i < len(uniq); i += batch {
		part := uniq[i:min(i+batch, len(uniq))]
		ops := make([]clientv3.Op, len(part))
		for j, l := range part {
			ops[j] = clientv3.OpGet(s.sessionKey(l), clientv3.WithKeysOnly())
		}
		t, err := s.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return nil, err
		}
		for j, r := range t.Responses {
			if kvs := r.GetResponseRange().Kvs; len(kvs) > 0 {
				revs[part[j]] = kvs[0].ModRevision
			}
		}
	}
	out := make(map[clientv3.LeaseID]time.Time, len(uniq))
	var need []clientv3.LeaseID
	s.beatMu.Lock()
	for _, l := range uniq {
		if b, ok := s.beats[l]; ok && revs[l] != 0 && b.rev == revs[l] {
			out[l] = b.at
		} else {
			need = append(need, l)
		}
	}
	s.beatMu.Unlock()
	if len(need) == 0 {
		return out, nil
	}

	type age struct {
		l     clientv3.LeaseID
		alive bool
		at    time.Time
		err   error
	}
	ages := make([]age, len(need))
	sem := make(chan struct{}, fanout)
	var wg sync.WaitGroup
	for i, l := range need {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			r, err := s.cli.TimeToLive(ctx, l)
			ages[i] = age{l: l, err: err}
			if err == nil && r.TTL >= 0 && r.GrantedTTL > 0 {
				ages[i].alive = true
				ages[i].at = time.Now().Add(-time.Duration(r.GrantedTTL-r.TTL) * time.Second)
			}
		}()
	}
	wg.Wait()
	s.beatMu.Lock()
	defer s.beatMu.Unlock()
	if len(s.beats) > maxBeats {
		s.beats = map[clientv3.LeaseID]beat{}
	}
	for _, a := range ages {
		if a.err != nil {
			return nil, a.err
		}
		if !a.alive {
			delete(s.beats, a.l)
			continue
		}
		rev, at := revs[a.l], a.at
		if b, ok := s.beats[a.l]; ok {
			switch {
			case rev != 0 && rev > b.rev && !at.After(b.at):
				// Renewed since, within the second TimeToLive can tell.
				at = b.at.Add(time.Microsecond)
			case rev == 0 && at.Before(b.at.Add(time.Second)):
				at = b.at // not renewed, as far as whole seconds tell
			}
		}
		s.beats[a.l] = beat{rev: rev, at: at}
		out[a.l] = at
	}
	return out, nil
}
