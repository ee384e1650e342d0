package postgresql

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/musterhq/muster/servicegroup/driver"
)

// watchBuffer is how many events a watch holds for a slow reader; past it
// the watch ends and the reader watches anew (and diffs).
const watchBuffer = 256

// Watch LISTENs on group's channel on a connection of its own. Every
// statement that changes the group's membership (join, leave, close,
// capabilities, forced-down marks, the cleanup of dead sessions, deleting
// the group) NOTIFYs it in the same transaction, so a notification means
// "committed, look now". The core re-reads the members on each one and on
// its own periodic tick, so an expiry nobody has cleaned up yet, or a
// broken connection, loses nothing: the stream then ends with a reason and
// the core watches anew.
func (s *session) Watch(ctx context.Context, group string) (<-chan driver.Event, <-chan error, error) {
	const op = "watch"
	if err := s.check(op, group); err != nil {
		return nil, nil, err
	}
	// The listener is cancelled by dropping its connection at once: it
	// runs no statement a cancel request could end.
	cfg := s.pool.pool.cfg.Copy()
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, nil, s.fail(ctx, op, group, err)
	}
	ch := channel(s.pool.schema, group)
	// LISTEN first: nothing that commits after the check below is missed.
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, nil, s.fail(ctx, op, group, err)
	}
	var me, found bool
	err = conn.QueryRow(ctx, `SELECT `+live+`, EXISTS (SELECT 1 FROM muster_groups WHERE name = $2)`, s.id, group).Scan(&me, &found)
	switch {
	case err != nil:
		err = s.fail(ctx, op, group, err)
	case !me:
		s.markLost()
		err = driver.Errorf(backend, op, group, driver.ErrSessionLost)
	case !found:
		err = driver.Errorf(backend, op, group, driver.ErrGroupNotFound)
	}
	if err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, nil, driver.Errorf(backend, op, group, driver.ErrClosed)
	}
	s.wg.Add(1)
	s.mu.Unlock()
	events, errc := make(chan driver.Event, watchBuffer), make(chan error, 1)
	wctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-wctx.Done():
		}
	}()
	go func() {
		defer s.wg.Done()
		defer cancel()
		defer close(events)
		defer func() { _ = conn.Close(context.Background()) }()
		end := func(err error) { errc <- err }
		for {
			n, err := conn.WaitForNotification(wctx)
			if err != nil {
				switch {
				case ctx.Err() != nil:
					end(nil)
				case isDone(s.done):
					end(driver.Errorf(backend, op, group, driver.ErrSessionLost))
				default:
					end(driver.Errorf(backend, op, group, fmt.Errorf("%w: %s: change stream broke: %v", driver.ErrUnavailable, s.where, err)))
				}
				return
			}
			var ev driver.Event
			kind, member, _ := strings.Cut(n.Payload, " ")
			switch kind {
			case "j":
				ev = driver.Event{Type: driver.Joined, Group: group, Member: member}
			case "l":
				ev = driver.Event{Type: driver.Left, Group: group, Member: member}
			case "c":
				ev = driver.Event{Type: driver.Updated, Group: group, Member: member}
			case "d":
				end(driver.Errorf(backend, op, group, driver.ErrGroupNotFound))
				return
			default:
				continue // unknown: the core's periodic diff still sees it
			}
			select {
			case events <- ev:
			default:
				end(driver.Errorf(backend, op, group, errors.New("the reader fell behind")))
				return
			}
		}
	}()
	return events, errc, nil
}

func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
