package etcd

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/musterhq/muster/servicegroup/driver"
)

func init() {
	driver.Register("etcd", Open)
	driver.Register("etcd3", Open)
	driver.Register("etcd3+http", Open)
	driver.Register("etcd3+https", Open)
}

const backend = "etcd"

// defaultDial bounds Open when the caller gives no dial timeout.
const defaultDial = 5 * time.Second

// session is one muster session: one etcd lease, renewed only by Heartbeat.
type session struct {
	cfg      config
	cli      *clientv3.Client
	lease    clientv3.LeaseID
	leaseTTL int64 // seconds, as granted
	member   string
	instance string
	id       string // SessionID
	log      *zap.Logger
	recKey   string // the session record, rewritten by every Heartbeat
	recVal   string

	bg     context.Context // background work; cancelled by Close
	cancel context.CancelFunc

	mu      sync.Mutex // guards closing and calls.Add
	closing bool
	calls   sync.WaitGroup

	done    chan struct{}
	endOnce sync.Once
	closed  atomic.Bool
	lost    atomic.Bool
	lostWhy atomic.Value // string

	writing atomic.Bool // a session record write is under way

	waits atomic.Int64 // numbers this session's lock waits

	acqMu sync.Mutex              // one lock acquisition (or its clean-up) at a time
	held  map[string]driver.Token // lock name -> token this session handed out

	kaMu sync.Mutex // one keep-alive at a time on ka
	ka   *keeper    // the kept keep-alive stream; nil until a heartbeat opens it

	beatMu sync.Mutex
	beats  map[clientv3.LeaseID]beat // UpdatedAt cache, see updatedAt
}

// record is the value of a session record.
type record struct {
	Member   string `json:"member"`
	Instance string `json:"instance,omitempty"`
	Session  string `json:"session"`
}

// Open opens a session (one etcd lease of the member TTL, rounded up to
// whole seconds) on the cluster the URL names.
func Open(ctx context.Context, opts driver.Options) (driver.Driver, error) {
	cfg, err := parseURL(opts.URL)
	if err != nil {
		return nil, driver.Unavailable(backend, driver.Redact(opts.URL), err)
	}
	if opts.TTL <= 0 {
		return nil, driver.Errorf(backend, "open", cfg.where, fmt.Errorf("TTL %v must be positive", opts.TTL))
	}
	if err := driver.ValidateName("member", opts.Member); err != nil {
		return nil, driver.Errorf(backend, "open", cfg.where, err)
	}
	dial := opts.DialTimeout
	if dial <= 0 {
		dial = defaultDial
	}
	// Answer a little before the caller's deadline, so an error that says
	// why reaches it (through a plugin too) instead of its own timeout.
	// Half the dial timeout: through a plugin, starting the process takes
	// part of the caller's budget too.
	began := time.Now()
	deadline := began.Add(dial / 2)
	if d, ok := ctx.Deadline(); ok {
		if d = d.Add(-min(300*time.Millisecond, time.Until(d)/5)); d.Before(deadline) {
			deadline = d
		}
	}
	octx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            cfg.endpoints,
		DialTimeout:          time.Until(deadline),
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		Username:             cfg.user,
		Password:             cfg.pass,
		TLS:                  cfg.tls,
		Logger:               clientLogger(log),
	})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no answer within %v: %v", time.Since(began).Round(time.Millisecond), probe(cfg))
		}
		return nil, driver.Unavailable(backend, cfg.where, explain(cfg, err))
	}
	ttl := int64((opts.TTL + time.Second - 1) / time.Second)
	g, err := cli.Grant(octx, ttl)
	if err != nil {
		cli.Close()
		if octx.Err() != nil {
			err = fmt.Errorf("no answer within %v: %v", time.Since(began).Round(time.Millisecond), probe(cfg))
		}
		return nil, driver.Unavailable(backend, cfg.where, explain(cfg, err))
	}
	bg, bgCancel := context.WithCancel(context.Background())
	s := &session{cfg: cfg, cli: cli, lease: g.ID, leaseTTL: g.TTL, member: opts.Member,
		instance: opts.Instance, id: newSessionID(), log: log, bg: bg, cancel: bgCancel,
		done: make(chan struct{}), held: map[string]driver.Token{}, beats: map[clientv3.LeaseID]beat{}}
	if g.TTL != ttl {
		log.Warn("etcd granted another lease TTL than asked", zap.Int64("asked", ttl), zap.Int64("granted", g.TTL))
	}
	s.recKey = s.key(fmt.Sprintf("muster/sessions/%016x", int64(s.lease)))
	rec, _ := json.Marshal(record{Member: s.member, Instance: s.instance, Session: s.id})
	s.recVal = string(rec)
	if err := s.setup(octx); err != nil {
		rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
		_, _ = cli.Revoke(rctx, s.lease)
		rcancel()
		bgCancel()
		cli.Close()
		return nil, driver.Unavailable(backend, cfg.where, explain(cfg, err))
	}
	return s, nil
}

// setup writes the session record and ends earlier sessions of the same
// instance: the instance record (on the owner's lease) names the owner's
// lease, which is revoked, and everything on it (memberships, locks) goes
// at once. In the common case that is one transaction.
func (s *session) setup(ctx context.Context) error {
	rec := clientv3.OpPut(s.recKey, s.recVal, clientv3.WithLease(s.lease))
	if s.instance == "" {
		if _, err := s.cli.Do(ctx, rec); err != nil {
			return fmt.Errorf("write the session record: %w", err)
		}
		return nil
	}
	sum := sha256.Sum256([]byte(s.instance))
	ik := s.key("muster/instances/" + hex.EncodeToString(sum[:16]))
	ours := strconv.FormatInt(int64(s.lease), 16)
	cmp := missing(ik)
	for range 20 {
		t, err := s.cli.Txn(ctx).If(cmp).Then(rec, clientv3.OpPut(ik, ours, clientv3.WithLease(s.lease))).
			Else(clientv3.OpGet(ik)).Commit()
		if err != nil {
			return fmt.Errorf("write the session and instance records: %w", err)
		}
		if t.Succeeded {
			return nil
		}
		cmp = missing(ik)
		if kvs := t.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			kv := kvs[0]
			if old, err := strconv.ParseInt(string(kv.Value), 16, 64); err == nil && old != int64(s.lease) {
				if _, err := s.cli.Revoke(ctx, clientv3.LeaseID(old)); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
					return fmt.Errorf("end the earlier session of this instance: %w", err)
				}
				continue // the record went with the old lease
			}
			cmp = clientv3.Compare(clientv3.ModRevision(ik), "=", kv.ModRevision)
		}
	}
	return errors.New("the instance record keeps changing")
}

// probe says why no endpoint answers, for an Open that timed out: gRPC
// only says its deadline passed.
func probe(cfg config) string {
	var why []string
	for _, ep := range cfg.endpoints {
		host := ep
		if u, err := url.Parse(ep); err == nil {
			host = u.Host
		}
		c, err := net.DialTimeout("tcp", host, 500*time.Millisecond)
		if err != nil {
			why = append(why, err.Error())
			continue
		}
		c.Close()
		what := "plain"
		if cfg.tls != nil {
			what = "TLS"
		}
		why = append(why, fmt.Sprintf("%s accepts connections but does not answer etcd's gRPC over %s (wrong port, or TLS settings that do not match the server's)", host, what))
	}
	return strings.Join(why, "; ")
}

// explain adds a hint to errors a user can fix.
func explain(cfg config, err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrAuthFailed):
		return fmt.Errorf("%w (wrong user or password in the URL)", err)
	case errors.Is(err, rpctypes.ErrUserEmpty), errors.Is(err, rpctypes.ErrPermissionDenied), errors.Is(err, rpctypes.ErrInvalidAuthToken):
		return fmt.Errorf("%w (the cluster has auth enabled: put user:password in the URL)", err)
	case strings.Contains(err.Error(), "x509") || strings.Contains(err.Error(), "tls:"):
		return fmt.Errorf("TLS: %w (check ca_cert, cert_cert and cert_key)", err)
	}
	return err
}

// clientLogger is log for the etcd client's own messages, warnings and
// worse only (it is chatty at info).
func clientLogger(log *zap.Logger) *zap.Logger {
	if !log.Core().Enabled(zap.WarnLevel) {
		return zap.NewNop()
	}
	return log.Named("etcd-client").WithOptions(zap.IncreaseLevel(zap.WarnLevel))
}

func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// key is k under the URL's prefix. tooz's keys ("tooz/groups/...",
// "/locks/...") are used as they are when there is no prefix.
func (s *session) key(k string) string {
	if s.cfg.prefix == "" {
		return k
	}
	return s.cfg.prefix + "/" + strings.TrimPrefix(k, "/")
}

// background runs f in a goroutine Close waits for, and says whether it
// did: not once Close has begun.
func (s *session) background(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.calls.Add(1)
	go func() {
		defer s.calls.Done()
		f()
	}()
	return true
}

// end ends the session other than by Close (its lease is gone) and
// signals Done.
func (s *session) end(why string) {
	s.endOnce.Do(func() {
		s.lostWhy.Store(why)
		s.lost.Store(true)
		s.log.Warn("etcd session ended", zap.String("reason", why))
		close(s.done)
	})
}

func (s *session) Done() <-chan struct{} { return s.done }

// SessionID is the id lock records carry: 32 random hex digits.
func (s *session) SessionID() string { return s.id }

// Close revokes the lease: every membership and lock of the session goes
// at once.
func (s *session) Close(ctx context.Context) error {
	if s.closed.Swap(true) {
		return nil
	}
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.cancel()
	var err error
	if !s.lost.Load() {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = s.cli.Revoke(rctx, s.lease)
		cancel()
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			err = nil
		}
	}
	s.endOnce.Do(func() { close(s.done) })
	s.calls.Wait()
	s.cli.Close()
	if err != nil {
		return driver.Errorf(backend, "close", s.member, fmt.Errorf("%w: %s: revoke the lease (its keys go when it expires): %v",
			driver.ErrUnavailable, s.cfg.where, err))
	}
	return nil
}

// live checks the session may act.
func (s *session) live(op, name string) error {
	if s.closed.Load() {
		return driver.Errorf(backend, op, name, driver.ErrClosed)
	}
	if s.lost.Load() {
		why, _ := s.lostWhy.Load().(string)
		return driver.Errorf(backend, op, name, fmt.Errorf("%w: %s", driver.ErrSessionLost, why))
	}
	return nil
}

// reqCtx applies the URL's request timeout.
func (s *session) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.cfg.timeout > 0 {
		return context.WithTimeout(ctx, s.cfg.timeout)
	}
	return context.WithCancel(ctx)
}

// fail maps an etcd error of op on name to the SPI's.
func (s *session) fail(op, name string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case s.closed.Load():
		err = driver.ErrClosed
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		s.end("the session's lease is gone (expired, revoked, or taken over by a newer session of the instance)")
		err = fmt.Errorf("%w: the lease is gone", driver.ErrSessionLost)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		err = fmt.Errorf("%w: no answer from %s in time: %w", driver.ErrUnavailable, s.cfg.where, err)
	case errors.Is(err, rpctypes.ErrNoLeader), errors.Is(err, rpctypes.ErrTimeout),
		errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail), errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost),
		status.Code(err) == codes.Unavailable, errors.Is(err, errKeeperGone):
		err = fmt.Errorf("%w: %s: %v", driver.ErrUnavailable, s.cfg.where, err)
	default:
		err = explain(s.cfg, err)
	}
	return driver.Errorf(backend, op, name, err)
}

// Heartbeat renews the lease with one keep-alive (the client's own
// background keep-alive is never started: liveness is the host's) and
// rewrites the session record, whose mod revision tells readers that the
// member renewed (see updatedAt). The keep-alive decides: the record's
// write (a disk sync on the server) is waited for only while the caller's
// deadline leaves room, then finishes in the background.
func (s *session) Heartbeat(ctx context.Context) error {
	if err := s.live("heartbeat", s.member); err != nil {
		return err
	}
	ctx, cancel := s.reqCtx(ctx)
	defer cancel()
	written := s.writeRecord()
	if err := s.keepAliveOnce(ctx); err != nil {
		return s.fail("heartbeat", s.member, err)
	}
	grace := 100 * time.Millisecond
	if d, ok := ctx.Deadline(); ok {
		// An eighth of the time left: the core's heartbeats carry the
		// session's deadline, and the next one must not come late.
		grace = min(time.Until(d)/8, 2*time.Second)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case err := <-written:
		if err != nil && errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return s.fail("heartbeat", s.member, err)
		}
	case <-t.C:
	case <-ctx.Done():
	}
	return s.live("heartbeat", s.member)
}

// keepAliveOnce renews the lease with one LeaseKeepAlive request on the
// session's own keep-alive stream, opened by the first heartbeat and kept:
// opening a stream per renewal cost the server more than the renewal
// (3,000 sessions here: heartbeat p99 2.0 s with 600 errors, against
// 0.53 s with none). The client's KeepAliveOnce opens one per call, and it
// retries at once, without pause, while the cluster answers "unavailable",
// as it does without a quorum: a busy loop until the caller's deadline.
// Here a kept stream that fails is dropped and one fresh stream is tried;
// past that, the next Heartbeat is the retry. A call that gives up drops
// the stream too, so no late answer is taken for the next call's.
func (s *session) keepAliveOnce(ctx context.Context) error {
	s.kaMu.Lock()
	defer s.kaMu.Unlock()
	for {
		fresh := s.ka == nil
		if fresh {
			k, err := s.openKeeper(ctx)
			if err != nil {
				return err
			}
			s.ka = k
		}
		k := s.ka
		err := k.renew(ctx, s.lease)
		if err == nil || errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return err
		}
		k.cancel()
		s.ka = nil
		if fresh || ctx.Err() != nil {
			return clientv3.ContextError(ctx, err)
		}
	}
}

// keeper is a session's kept LeaseKeepAlive stream; a goroutine hands its
// answers to resps.
type keeper struct {
	stream pb.Lease_LeaseKeepAliveClient
	cancel context.CancelFunc
	resps  chan keepAliveAnswer
	gone   chan struct{} // closed when read returns
}

type keepAliveAnswer struct {
	resp *pb.LeaseKeepAliveResponse
	err  error
}

// openKeeper opens the stream, waiting for a connection no longer than ctx
// (the stream itself lives until the session closes or it fails).
func (s *session) openKeeper(ctx context.Context) (*keeper, error) {
	sctx, cancel := context.WithCancel(s.bg)
	stop := context.AfterFunc(ctx, cancel)
	stream, err := pb.NewLeaseClient(s.cli.ActiveConnection()).LeaseKeepAlive(sctx, grpc.WaitForReady(true))
	if !stop() {
		err = ctx.Err()
	}
	if err != nil {
		cancel()
		return nil, clientv3.ContextError(ctx, err)
	}
	k := &keeper{stream: stream, cancel: cancel, resps: make(chan keepAliveAnswer, 1), gone: make(chan struct{})}
	if !s.background(func() { k.read(sctx) }) {
		cancel() // the session is closing
		return nil, context.Canceled
	}
	return k, nil
}

// read hands the stream's answers to resps until the stream fails or ctx
// ends.
func (k *keeper) read(ctx context.Context) {
	defer close(k.gone)
	for {
		r, err := k.stream.Recv()
		select {
		case k.resps <- keepAliveAnswer{r, err}:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

// renew sends one keep-alive and waits for its answer.
func (k *keeper) renew(ctx context.Context, lease clientv3.LeaseID) error {
	if err := k.stream.Send(&pb.LeaseKeepAliveRequest{ID: int64(lease)}); err != nil {
		return err
	}
	select {
	case a := <-k.resps:
		if a.err != nil {
			return a.err
		}
		if a.resp.TTL <= 0 {
			return rpctypes.ErrLeaseNotFound
		}
		return nil
	case <-k.gone:
		// Canceled, and its last answer, if any, taken or dropped.
		return errKeeperGone
	case <-ctx.Done():
		return ctx.Err()
	}
}

var errKeeperGone = errors.New("keep-alive stream closed")

// writeRecord rewrites the session record in the background (one write at
// a time: a heartbeat that finds one under way does not add another) and
// says how it went on the channel.
func (s *session) writeRecord() <-chan error {
	res := make(chan error, 1)
	if !s.writing.CompareAndSwap(false, true) {
		return res // never answers: the caller waits for its grace only
	}
	if !s.background(func() {
		defer s.writing.Store(false)
		ctx, cancel := context.WithTimeout(s.bg, 10*time.Second)
		defer cancel()
		_, err := s.cli.Put(ctx, s.recKey, s.recVal, clientv3.WithLease(s.lease))
		res <- err
	}) {
		s.writing.Store(false)
	}
	return res
}
