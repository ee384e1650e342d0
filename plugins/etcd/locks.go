package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/musterhq/muster/servicegroup/driver"
)

// A lock is tooz's: one key that whoever creates it holds, on the holder's
// lease. tooz's two etcd drivers disagree on the key (etcd3://, through
// python-etcd3: /locks/<name>; etcd3+http://, etcd3gw: /tooz/locks<name>),
// so muster creates both in one transaction, and only when both are free:
// a muster lock excludes either tooz driver, and either excludes muster.
// The fencing token is the keys' create revision, which etcd's revision
// counter makes strictly increasing across holders (and restarts, with
// the data dir). The value names the holder: {"member", "session"}.

func (s *session) lockKeys(name string) (string, string) {
	return s.key("/locks/" + name), s.key("/tooz/locks" + name)
}

type holderValue struct {
	Member  string `json:"member"`
	Session string `json:"session"`
}

// acquire tries once to take name; it returns the token, or ErrLockHeld
// with the revision at which it was held. also runs with the grant (a
// waiter leaving the queue).
func (s *session) acquire(ctx context.Context, name string, also ...clientv3.Op) (driver.Token, int64, error) {
	k1, k2 := s.lockKeys(name)
	v, _ := json.Marshal(holderValue{Member: s.member, Session: s.id})
	s.acqMu.Lock()
	defer s.acqMu.Unlock()
	t, err := s.cli.Txn(ctx).If(missing(k1), missing(k2)).
		Then(append([]clientv3.Op{clientv3.OpPut(k1, string(v), clientv3.WithLease(s.lease)),
			clientv3.OpPut(k2, string(v), clientv3.WithLease(s.lease))}, also...)...).
		Commit()
	if err != nil {
		// It may have happened: undo a holding nobody was told of.
		s.background(func() { s.undo(name) })
		return 0, 0, err
	}
	if !t.Succeeded {
		return 0, t.Header.Revision, driver.ErrLockHeld
	}
	tok := driver.Token(t.Header.Revision)
	s.held[name] = tok
	return tok, 0, nil
}

// undo releases name if this session holds it with a token it never
// handed out (a grant whose answer was lost).
func (s *session) undo(name string) {
	ctx, cancel := context.WithTimeout(s.bg, 5*time.Second)
	defer cancel()
	k1, k2 := s.lockKeys(name)
	s.acqMu.Lock()
	defer s.acqMu.Unlock()
	r, err := s.cli.Get(ctx, k1)
	if err != nil || len(r.Kvs) == 0 {
		return
	}
	kv := r.Kvs[0]
	if clientv3.LeaseID(kv.Lease) != s.lease || s.held[name] == driver.Token(kv.CreateRevision) {
		return
	}
	_, _ = s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k1), "=", kv.CreateRevision)).
		Then(clientv3.OpDelete(k1), clientv3.OpDelete(k2)).Commit()
}

func (s *session) TryLock(ctx context.Context, name string) (driver.Token, error) {
	ctx, cancel, err := s.begin(ctx, "lock", name)
	if err != nil {
		return 0, err
	}
	defer cancel()
	tok, _, err := s.acquire(ctx, name)
	if errors.Is(err, driver.ErrLockHeld) {
		return 0, driver.Errorf(backend, "lock", name, err)
	}
	if err != nil {
		return 0, s.fail("lock", name, err)
	}
	return tok, nil
}

// Lock waits for name in a queue, in etcd revision order: each waiter puts
// a key muster/lockq/<name>/<session>.<n> on its lease and watches only
// its predecessor in the queue (the key created just before its own) for
// deletion; the first in the queue tries the lock and, while someone holds
// it, watches the lock keys for deletion from the revision at which they
// were held. So nothing is missed, nothing is polled, and a release wakes
// one waiter, not all. The grant deletes the waiter's queue key. TryLock
// does not queue (it may take a free lock ahead of waiters), and neither
// does tooz.
func (s *session) Lock(ctx context.Context, name string) (driver.Token, error) {
	if err := s.live("lock", name); err != nil {
		return 0, err
	}
	k1, k2 := s.lockKeys(name)
	qp := s.key("muster/lockq/" + name + "/")
	qk := fmt.Sprintf("%s%s.%d", qp, s.id, s.waits.Add(1))
	granted := false
	defer func() {
		if !granted {
			s.background(func() {
				ctx, cancel := context.WithTimeout(s.bg, 5*time.Second)
				defer cancel()
				_, _ = s.cli.Delete(ctx, qk)
			})
		}
	}()
	var mine int64
	for {
		var err error
		if mine == 0 {
			var r *clientv3.PutResponse
			actx, cancel := s.reqCtx(ctx)
			r, err = s.cli.Put(actx, qk, "", clientv3.WithLease(s.lease), clientv3.WithPrevKV())
			cancel()
			if err == nil {
				mine = r.Header.Revision
				if r.PrevKv != nil { // an earlier try that timed out did land
					mine = r.PrevKv.CreateRevision
				}
			}
		}
		var pred *clientv3.GetResponse
		if err == nil {
			actx, cancel := s.reqCtx(ctx)
			pred, err = s.cli.Get(actx, qp, append(clientv3.WithLastCreate(),
				clientv3.WithKeysOnly(), clientv3.WithMaxCreateRev(mine-1))...)
			cancel()
		}
		if err == nil && len(pred.Kvs) > 0 {
			// Someone queued before us: wait for it to go.
			err = s.awaitDelete(ctx, pred.Header.Revision, string(pred.Kvs[0].Key))
			if err == nil {
				continue
			}
		}
		var tok driver.Token
		var rev int64
		if err == nil {
			actx, cancel := s.reqCtx(ctx)
			tok, rev, err = s.acquire(actx, name, clientv3.OpDelete(qk))
			cancel()
			if err == nil {
				granted = true
				return tok, nil
			}
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if errors.Is(err, driver.ErrLockHeld) {
			err = s.awaitDelete(ctx, rev, k1, k2)
		}
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if err = s.fail("lock", name, err); !errors.Is(err, driver.ErrUnavailable) {
			return 0, err
		}
		// A leader election or a lost node: the wait goes on.
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-s.done:
			return 0, s.live("lock", name)
		}
	}
}

// awaitDelete returns once one of keys is deleted after rev, the watch
// breaks (the caller tries again), ctx ends or the session does.
func (s *session) awaitDelete(ctx context.Context, rev int64, keys ...string) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	stop := context.AfterFunc(s.bg, cancel)
	defer stop()
	merged := make(chan clientv3.WatchResponse, len(keys))
	for _, k := range keys {
		wc := s.cli.Watch(wctx, k, clientv3.WithRev(rev+1), clientv3.WithFilterPut())
		go func() {
			for r := range wc {
				select {
				case merged <- r:
				default:
				}
			}
		}()
	}
	select {
	case r := <-merged:
		if r.Err() != nil || r.Canceled {
			// A broken watch (no leader, compaction): wait a little before
			// the next try, so a failing cluster is not hammered.
			select {
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
			}
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return s.live("lock", "")
	case <-s.bg.Done():
		return s.live("lock", "")
	}
}

func (s *session) Unlock(ctx context.Context, name string, tok driver.Token) error {
	ctx, cancel, err := s.begin(ctx, "unlock", name)
	if err != nil {
		return err
	}
	defer cancel()
	k1, k2 := s.lockKeys(name)
	t, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k1), "=", int64(tok)), s.mine(k1)).
		Then(clientv3.OpDelete(k1), clientv3.OpDelete(k2)).Commit()
	if err != nil {
		return s.fail("unlock", name, err)
	}
	s.acqMu.Lock()
	if s.held[name] == tok {
		delete(s.held, name)
	}
	s.acqMu.Unlock()
	if !t.Succeeded {
		if err := s.live("unlock", name); err != nil {
			return err
		}
		return driver.Errorf(backend, "unlock", name, fmt.Errorf("%w (not held by this session with token %d)", driver.ErrNotLocked, tok))
	}
	return nil
}

// holder reads name's lock key: muster's and python-etcd3's first, then
// etcd3gw's.
func (s *session) holder(ctx context.Context, name string) (key string, lh driver.LockHolder, found bool, err error) {
	k1, k2 := s.lockKeys(name)
	t, err := s.cli.Txn(ctx).Then(clientv3.OpGet(k1), clientv3.OpGet(k2)).Commit()
	if err != nil {
		return "", lh, false, err
	}
	for i, k := range []string{k1, k2} {
		kvs := t.Responses[i].GetResponseRange().Kvs
		if len(kvs) == 0 {
			continue
		}
		var v holderValue
		// tooz's value is a uuid: a holder with no member id.
		_ = json.Unmarshal(kvs[0].Value, &v)
		return k, driver.LockHolder{Member: v.Member, Token: driver.Token(kvs[0].CreateRevision), Session: v.Session}, true, nil
	}
	return "", lh, false, nil
}

func (s *session) LockHolder(ctx context.Context, name string) (driver.LockHolder, error) {
	ctx, cancel, err := s.begin(ctx, "lock holder", name)
	if err != nil {
		return driver.LockHolder{}, err
	}
	defer cancel()
	_, h, found, err := s.holder(ctx, name)
	if err != nil {
		return driver.LockHolder{}, s.fail("lock holder", name, err)
	}
	if !found {
		return driver.LockHolder{}, driver.Errorf(backend, "lock holder", name, driver.ErrNotLocked)
	}
	return h, nil
}

// BreakLock deletes the lock's keys, whoever holds them.
func (s *session) BreakLock(ctx context.Context, name string) error {
	ctx, cancel, err := s.begin(ctx, "break lock", name)
	if err != nil {
		return err
	}
	defer cancel()
	k1, k2 := s.lockKeys(name)
	for range 10 {
		k, h, found, err := s.holder(ctx, name)
		if err != nil {
			return s.fail("break lock", name, err)
		}
		if !found {
			return driver.Errorf(backend, "break lock", name, driver.ErrNotLocked)
		}
		t, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", int64(h.Token))).
			Then(clientv3.OpDelete(k1), clientv3.OpDelete(k2)).Commit()
		if err != nil {
			return s.fail("break lock", name, err)
		}
		if t.Succeeded {
			return nil
		}
	}
	return driver.Errorf(backend, "break lock", name, errors.New("the lock keeps changing hands"))
}
