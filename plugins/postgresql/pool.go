package postgresql

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// connPool is a small pool of pgx connections: at most max in use, idle
// ones kept for reuse. A connection that broke, was left inside a
// transaction or saw its context cancelled is closed, not reused; a broken
// one also drops every idle connection, since after a server restart they
// are all dead, so the next statement dials afresh.
//
// (pgxpool would do, but needs a module muster's go.mod does not list.)
type connPool struct {
	cfg *pgx.ConnConfig
	sem chan struct{} // one token per connection in use

	mu     sync.Mutex
	idle   []*pgx.Conn
	closed bool
}

func newConnPool(cfg *pgx.ConnConfig, max int) *connPool {
	return &connPool{cfg: cfg, sem: make(chan struct{}, max)}
}

var errPoolClosed = errors.New("connection pool closed")

func (p *connPool) acquire(ctx context.Context) (*pgx.Conn, error) {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.sem
		return nil, errPoolClosed
	}
	for len(p.idle) > 0 {
		c := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if !c.IsClosed() {
			p.mu.Unlock()
			return c, nil
		}
	}
	p.mu.Unlock()
	c, err := pgx.ConnectConfig(ctx, p.cfg)
	if err != nil {
		<-p.sem
		return nil, err
	}
	return c, nil
}

func (p *connPool) release(ctx context.Context, c *pgx.Conn, err error) {
	defer func() { <-p.sem }()
	broken := err != nil && connBroken(err)
	reuse := !broken && ctx.Err() == nil && !c.IsClosed() && c.PgConn().TxStatus() == 'I'
	var drop []*pgx.Conn
	p.mu.Lock()
	if reuse && !p.closed {
		p.idle = append(p.idle, c)
	} else {
		drop = append(drop, c)
	}
	if broken {
		drop = append(drop, p.idle...)
		p.idle = nil
	}
	p.mu.Unlock()
	closeAll(drop)
}

// connBroken says whether err means the connection, not the statement,
// failed.
func connBroken(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// admin_shutdown, crash_shutdown, cannot_connect_now
		return pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	return !errors.Is(err, pgx.ErrNoRows) && !errors.Is(err, errPoolClosed)
}

func closeAll(cs []*pgx.Conn) {
	for _, c := range cs {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = c.Close(ctx)
		cancel()
	}
}

// with runs fn on a connection of the pool.
func (p *connPool) with(ctx context.Context, fn func(*pgx.Conn) error) error {
	c, err := p.acquire(ctx)
	if err != nil {
		return err
	}
	err = fn(c)
	p.release(ctx, c, err)
	return err
}

func (p *connPool) queryRow(ctx context.Context, dst []any, sql string, args ...any) error {
	return p.with(ctx, func(c *pgx.Conn) error { return c.QueryRow(ctx, sql, args...).Scan(dst...) })
}

func (p *connPool) exec(ctx context.Context, sql string, args ...any) error {
	return p.with(ctx, func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, sql, args...)
		return err
	})
}

func (p *connPool) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return p.with(ctx, func(c *pgx.Conn) error { return pgx.BeginFunc(ctx, c, fn) })
}

// close closes the idle connections; those in use close on release.
func (p *connPool) close() {
	p.mu.Lock()
	p.closed = true
	drop := p.idle
	p.idle = nil
	p.mu.Unlock()
	closeAll(drop)
}
