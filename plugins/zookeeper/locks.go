package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/go-zookeeper/zk"

	"github.com/musterhq/muster/servicegroup/driver"
)

// Locks use kazoo's Lock recipe, as tooz does: ephemeral sequential nodes
// <ns>/locks/<name>/<prefix>__lock__<seq>, holding the member id; the
// lowest sequence holds the lock, each waiter watches its predecessor. Our
// prefix is the SessionID, so LockHolder can say which session holds it.

const lockMark = "__lock__"

var contender = regexp.MustCompile(`__lock__(-?\d{10})$`)

func (s *session) lockDir(name string) string { return s.ns + "/" + locksGroup + "/" + name }

// contenders sorts dir's children as kazoo does and drops the others.
func contenders(kids []string) []string {
	out := kids[:0:0]
	for _, k := range kids {
		if contender.MatchString(k) {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return contender.FindStringSubmatch(out[i])[1] < contender.FindStringSubmatch(out[j])[1]
	})
	return out
}

// enqueue creates this session's node in name's queue and returns its path
// and fencing token (its creation zxid).
func (s *session) enqueue(ctx context.Context, name string) (string, driver.Token, error) {
	dir := s.lockDir(name)
	if err := s.own(ctx, "lock:"+dir); err != nil {
		return "", 0, err
	}
	var p string
	var err error
	for range 3 {
		p, err = s.createQueued(ctx, dir+"/"+s.id+lockMark)
		if !errors.Is(err, zk.ErrNoNode) {
			break
		}
		if err = s.ensure(ctx, dir); err != nil {
			return "", 0, err
		}
	}
	if err != nil {
		return "", 0, err
	}
	var st *zk.Stat
	err = s.do(ctx, func() error {
		var ok bool
		var err error
		ok, st, err = s.conn.Exists(p)
		if err == nil && !ok {
			return zk.ErrNoNode
		}
		return err
	})
	if err != nil {
		s.dequeue(p)
		return "", 0, err
	}
	return p, driver.Token(st.Czxid), nil
}

// createQueued creates a queue node like createEphemeral. If ctx ends
// before ZooKeeper answers, the create may still succeed: then the node is
// deleted as soon as its name is known, or it would sit in the queue, ahead
// of every later waiter, for as long as this session lives.
func (s *session) createQueued(ctx context.Context, p string) (string, error) {
	type result struct {
		p   string
		err error
	}
	res := make(chan result) // unbuffered: exactly one side handles the outcome
	abandoned := make(chan struct{})
	s.calls.Add(1)
	go func() {
		defer s.calls.Done()
		out, err := s.createEphemeral(context.WithoutCancel(ctx), p, []byte(s.member), zk.FlagEphemeralSequential)
		select {
		case res <- result{out, err}:
		case <-abandoned:
			if err == nil {
				_ = s.conn.Delete(out, -1)
			}
		}
	}()
	select {
	case r := <-res:
		return r.p, r.err
	case <-ctx.Done():
		close(abandoned)
		// The sender may have won the race for res just now.
		select {
		case r := <-res:
			if r.err == nil {
				s.dequeue(r.p)
			}
		default:
		}
		return "", s.unavailable(ctx.Err())
	}
}

// dequeue deletes a node of ours, in the background if need be.
func (s *session) dequeue(p string) {
	s.calls.Add(1)
	go func() {
		defer s.calls.Done()
		_ = s.conn.Delete(p, -1)
	}()
}

// predecessor is the node before ours in the queue ("" when we hold it).
func (s *session) predecessor(ctx context.Context, p string) (string, error) {
	dir, node := p[:strings.LastIndexByte(p, '/')], p[strings.LastIndexByte(p, '/')+1:]
	var kids []string
	err := s.do(ctx, func() error {
		var err error
		kids, _, err = s.conn.Children(dir)
		return err
	})
	if err != nil {
		return "", err
	}
	prev := ""
	for _, k := range contenders(kids) {
		if k == node {
			return prev, nil
		}
		prev = dir + "/" + k
	}
	return "", zk.ErrNoNode // our node is gone
}

func (s *session) held1(name string, tok driver.Token, p string) {
	s.lockMu.Lock()
	s.held[lockKey{name, tok}] = p
	s.lockMu.Unlock()
}

func (s *session) TryLock(ctx context.Context, name string) (driver.Token, error) {
	if err := s.start("lock", "lock", name); err != nil {
		return 0, err
	}
	p, tok, err := s.enqueue(ctx, name)
	if err != nil {
		return 0, s.fail("lock", name, err)
	}
	prev, err := s.predecessor(ctx, p)
	if err != nil || prev != "" {
		s.dequeue(p)
		if err != nil {
			return 0, s.fail("lock", name, err)
		}
		return 0, driver.Errorf(backend, "lock", name, driver.ErrLockHeld)
	}
	s.held1(name, tok, p)
	return tok, nil
}

// Lock waits for name in ZooKeeper's queue: fair, and each waiter watches
// only its predecessor.
func (s *session) Lock(ctx context.Context, name string) (driver.Token, error) {
	if err := s.start("lock", "lock", name); err != nil {
		return 0, err
	}
	p, tok, err := s.enqueue(ctx, name)
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, s.fail("lock", name, err)
	}
	for {
		prev, err := s.predecessor(ctx, p)
		if err == nil && prev == "" {
			s.held1(name, tok, p)
			return tok, nil
		}
		var wake <-chan zk.Event
		if err == nil {
			err = s.do(ctx, func() error {
				ok, _, ch, err := s.conn.ExistsW(prev)
				if err == nil && ok {
					wake = ch
				}
				return err
			})
		}
		if err != nil {
			s.dequeue(p)
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, s.fail("lock", name, err)
		}
		if wake == nil {
			continue // gone already
		}
		select {
		case <-wake:
		case <-ctx.Done():
			s.dequeue(p)
			return 0, ctx.Err()
		case <-s.done:
			return 0, s.live("lock", name)
		}
	}
}

func (s *session) Unlock(ctx context.Context, name string, tok driver.Token) error {
	if err := s.start("unlock", "lock", name); err != nil {
		return err
	}
	k := lockKey{name, tok}
	s.lockMu.Lock()
	p, ok := s.held[k]
	s.lockMu.Unlock()
	if !ok {
		// A grant whose caller gave up (the core releases it by the token
		// LockHolder reported): find our node with that token.
		var err error
		if p, err = s.ourNode(ctx, name, tok); err != nil {
			return s.fail("unlock", name, err)
		}
		if p == "" {
			return driver.Errorf(backend, "unlock", name, driver.ErrNotLocked)
		}
		s.held1(name, tok, p)
	}
	err := s.do(ctx, func() error {
		ok, st, err := s.conn.Exists(p)
		if err != nil {
			return err
		}
		if !ok || driver.Token(st.Czxid) != tok {
			return zk.ErrNoNode
		}
		return s.conn.Delete(p, -1)
	})
	if err == nil || errors.Is(err, zk.ErrNoNode) {
		s.lockMu.Lock()
		delete(s.held, k)
		s.lockMu.Unlock()
	}
	if errors.Is(err, zk.ErrNoNode) {
		if lerr := s.live("unlock", name); lerr != nil {
			return lerr
		}
		return driver.Errorf(backend, "unlock", name, fmt.Errorf("%w (it was broken or expired)", driver.ErrNotLocked))
	}
	return s.fail("unlock", name, err)
}

// ourNode finds this session's node in name's queue created with token
// tok ("" if there is none).
func (s *session) ourNode(ctx context.Context, name string, tok driver.Token) (string, error) {
	dir := s.lockDir(name)
	var kids []string
	err := s.do(ctx, func() error {
		var err error
		kids, _, err = s.conn.Children(dir)
		return err
	})
	if errors.Is(err, zk.ErrNoNode) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	for _, k := range contenders(kids) {
		if !strings.HasPrefix(k, s.id+lockMark) {
			continue
		}
		p := dir + "/" + k
		var st *zk.Stat
		var ok bool
		err := s.do(ctx, func() error {
			var err error
			ok, st, err = s.conn.Exists(p)
			return err
		})
		if err != nil {
			return "", err
		}
		if ok && driver.Token(st.Czxid) == tok {
			return p, nil
		}
	}
	return "", nil
}

// holder returns the path, member and stat of name's holder.
func (s *session) holder(ctx context.Context, name string) (string, string, *zk.Stat, error) {
	dir := s.lockDir(name)
	for {
		var kids []string
		err := s.do(ctx, func() error {
			var err error
			kids, _, err = s.conn.Children(dir)
			return err
		})
		if err != nil {
			return "", "", nil, err
		}
		cs := contenders(kids)
		if len(cs) == 0 {
			return "", "", nil, zk.ErrNoNode
		}
		p := dir + "/" + cs[0]
		var data []byte
		var st *zk.Stat
		err = s.do(ctx, func() error {
			var err error
			data, st, err = s.conn.Get(p)
			return err
		})
		if errors.Is(err, zk.ErrNoNode) {
			continue // released meanwhile
		}
		if err != nil {
			return "", "", nil, err // the call may still be running: touch nothing it writes
		}
		return p, string(data), st, nil
	}
}

func (s *session) LockHolder(ctx context.Context, name string) (driver.LockHolder, error) {
	if err := s.start("lock holder", "lock", name); err != nil {
		return driver.LockHolder{}, err
	}
	p, member, st, err := s.holder(ctx, name)
	if errors.Is(err, zk.ErrNoNode) {
		return driver.LockHolder{}, driver.Errorf(backend, "lock holder", name, driver.ErrNotLocked)
	}
	if err != nil {
		return driver.LockHolder{}, s.fail("lock holder", name, err)
	}
	node := p[strings.LastIndexByte(p, '/')+1:]
	sid, _, _ := strings.Cut(node, lockMark)
	return driver.LockHolder{Member: member, Token: driver.Token(st.Czxid), Session: sid}, nil
}

func (s *session) BreakLock(ctx context.Context, name string) error {
	if err := s.start("break lock", "lock", name); err != nil {
		return err
	}
	for {
		p, _, st, err := s.holder(ctx, name)
		if errors.Is(err, zk.ErrNoNode) {
			return driver.Errorf(backend, "break lock", name, driver.ErrNotLocked)
		}
		if err != nil {
			return s.fail("break lock", name, err)
		}
		err = s.do(ctx, func() error { return s.conn.Delete(p, st.Version) })
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		return s.fail("break lock", name, err)
	}
}
