package postgresql

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/musterhq/muster/servicegroup/driver"
)

// channelSQL is the NOTIFY channel of the group named by the SQL
// expression g: one per group and schema (several namespaces may share a
// database), short enough for an identifier. channel computes the same.
func channelSQL(g string) string {
	return "'muster_' || left(md5(current_schema() || '/' || " + g + "), 24)"
}

func channel(schema, group string) string {
	sum := md5.Sum([]byte(schema + "/" + group))
	return "muster_" + hex.EncodeToString(sum[:])[:24]
}

// live is the guard every write carries: this session is live by the
// server's clock.
const live = `EXISTS (SELECT 1 FROM muster_sessions WHERE id = $1 AND expires_at > now())`

func (s *session) CreateGroup(ctx context.Context, group string) error {
	const op = "create group"
	if err := s.check(op, group); err != nil {
		return err
	}
	var n int64
	err := s.pool.pool.queryRow(ctx, []any{&n}, `
WITH c AS (
  INSERT INTO muster_groups (name) SELECT $2 WHERE `+live+`
  ON CONFLICT (name) DO NOTHING RETURNING 1
) SELECT count(*) FROM c`, s.id, group)
	if err != nil {
		return s.fail(ctx, op, group, err)
	}
	if n == 0 {
		return s.lostOr(ctx, op, group, driver.ErrGroupExists)
	}
	return nil
}

func (s *session) DeleteGroup(ctx context.Context, group string) error {
	const op = "delete group"
	if err := s.check(op, group); err != nil {
		return err
	}
	// The group's row is locked first: a concurrent Join (whose foreign key
	// check shares that lock) either committed before, and is seen as a
	// live member, or waits and then finds the group gone.
	var result error
	err := s.pool.pool.tx(ctx, func(tx pgx.Tx) error {
		var me, found, busy bool
		err := tx.QueryRow(ctx, `SELECT `+live+`,
  EXISTS (SELECT 1 FROM (SELECT 1 FROM muster_groups WHERE name = $2 FOR UPDATE) g)`, s.id, group).Scan(&me, &found)
		switch {
		case err != nil:
			return err
		case !me:
			s.markLost()
			result = driver.ErrSessionLost
			return nil
		case !found:
			result = driver.ErrGroupNotFound
			return nil
		}
		err = tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM muster_members m JOIN muster_sessions s ON s.id = m.session_id
  WHERE m.group_name = $1 AND s.expires_at > now())`, group).Scan(&busy)
		if err != nil {
			return err
		}
		if busy {
			result = driver.ErrGroupNotEmpty
			return nil
		}
		_, err = tx.Exec(ctx, `DELETE FROM muster_groups WHERE name = $1`, group)
		if err == nil {
			_, err = tx.Exec(ctx, `SELECT pg_notify($1, 'd')`, channel(s.pool.schema, group))
		}
		return err
	})
	if err != nil {
		return s.fail(ctx, op, group, err)
	}
	return driver.Errorf(backend, op, group, result)
}

func (s *session) Groups(ctx context.Context) ([]string, error) {
	const op = "list groups"
	if err := s.check(op, ""); err != nil {
		return nil, err
	}
	var out []string
	var err error
	for try := 0; try < 3; try++ {
		out, err = s.groups(ctx)
		if !retryable(ctx, err) {
			break
		}
	}
	if err != nil {
		return nil, s.fail(ctx, op, "", err)
	}
	return out, nil
}

func (s *session) groups(ctx context.Context) ([]string, error) {
	var out []string
	err := s.pool.pool.with(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, `SELECT name FROM muster_groups WHERE `+live+` ORDER BY name`, s.id)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		if ok, err := s.alive(ctx); err != nil {
			return nil, err
		} else if !ok {
			return nil, driver.ErrSessionLost
		}
	}
	return append([]string{}, out...), nil
}

func (s *session) Join(ctx context.Context, group string, caps []byte) error {
	const op = "join"
	if err := s.check(op, group); err != nil {
		return err
	}
	if len(caps) == 0 {
		caps = nil
	}
	// A member row whose session is dead is taken over; a live one is not
	// touched (ErrMemberExists). A missing group fails the foreign key.
	var n int64
	err := s.pool.pool.queryRow(ctx, []any{&n}, `
WITH j AS MATERIALIZED (
  INSERT INTO muster_members (group_name, member, session_id, capabilities)
  SELECT $2, s.member, s.id, $3 FROM muster_sessions s WHERE s.id = $1 AND s.expires_at > now()
  ON CONFLICT (group_name, member) DO UPDATE
    SET session_id = EXCLUDED.session_id, capabilities = EXCLUDED.capabilities, joined_at = now()
    WHERE NOT EXISTS (SELECT 1 FROM muster_sessions o WHERE o.id = muster_members.session_id AND o.expires_at > now())
  RETURNING member
) SELECT count(*) FROM (SELECT pg_notify($4, 'j ' || member) FROM j) n`,
		s.id, group, caps, channel(s.pool.schema, group))
	if err != nil {
		return s.fail(ctx, op, group, err)
	}
	if n == 0 {
		return s.lostOr(ctx, op, group, fmt.Errorf("%w: %q", driver.ErrMemberExists, s.member))
	}
	return nil
}

// notMine says why this session could not change its membership of
// group: the session ended, the group is missing, or it is not joined.
func (s *session) notMine(ctx context.Context, op, group string) error {
	var me, found bool
	err := s.queryRow(ctx, []any{&me, &found}, `SELECT `+live+`, EXISTS (SELECT 1 FROM muster_groups WHERE name = $2)`, s.id, group)
	switch {
	case err != nil:
		return s.fail(ctx, op, group, err)
	case !me:
		s.markLost()
		return driver.Errorf(backend, op, group, driver.ErrSessionLost)
	case !found:
		return driver.Errorf(backend, op, group, driver.ErrGroupNotFound)
	}
	return driver.Errorf(backend, op, group, driver.ErrNotMember)
}

func (s *session) Leave(ctx context.Context, group string) error {
	const op = "leave"
	if err := s.check(op, group); err != nil {
		return err
	}
	var n int64
	err := s.pool.pool.queryRow(ctx, []any{&n}, `
WITH l AS MATERIALIZED (
  DELETE FROM muster_members WHERE group_name = $2 AND member = $3 AND session_id = $1 AND `+live+`
  RETURNING member
) SELECT count(*) FROM (SELECT pg_notify($4, 'l ' || member) FROM l) n`,
		s.id, group, s.member, channel(s.pool.schema, group))
	if err != nil {
		return s.fail(ctx, op, group, err)
	}
	if n == 0 {
		return s.notMine(ctx, op, group)
	}
	return nil
}

func (s *session) SetCapabilities(ctx context.Context, group string, caps []byte) error {
	const op = "set capabilities"
	if err := s.check(op, group); err != nil {
		return err
	}
	if len(caps) == 0 {
		caps = nil
	}
	var n int64
	err := s.pool.pool.queryRow(ctx, []any{&n}, `
WITH u AS MATERIALIZED (
  UPDATE muster_members SET capabilities = $4
  WHERE group_name = $2 AND member = $3 AND session_id = $1 AND `+live+`
  RETURNING member
) SELECT count(*) FROM (SELECT pg_notify($5, 'c ' || member) FROM u) n`,
		s.id, group, s.member, caps, channel(s.pool.schema, group))
	if err != nil {
		return s.fail(ctx, op, group, err)
	}
	if n == 0 {
		return s.notMine(ctx, op, group)
	}
	return nil
}

func (s *session) SetForcedDown(ctx context.Context, group, member string, down bool) error {
	const op = "force down"
	if err := s.check(op, group); err != nil {
		return err
	}
	var n int64
	err := s.pool.pool.queryRow(ctx, []any{&n}, `
WITH g AS MATERIALIZED (
  SELECT name FROM muster_groups WHERE name = $2 AND `+live+`
), ins AS (
  INSERT INTO muster_forced_down (group_name, member) SELECT name, $3 FROM g WHERE $4
  ON CONFLICT DO NOTHING
), del AS (
  DELETE FROM muster_forced_down WHERE NOT $4 AND group_name = $2 AND member = $3 AND EXISTS (SELECT 1 FROM g)
) SELECT count(*) FROM (SELECT pg_notify($5, 'c ' || $3) FROM g) n`,
		s.id, group, member, down, channel(s.pool.schema, group))
	if err != nil {
		return s.fail(ctx, op, group, err)
	}
	if n == 0 {
		return s.lostOr(ctx, op, group, driver.ErrGroupNotFound)
	}
	return nil
}

// membersSQL lists a group's live members in one statement whatever its
// size: the group row (absent: not found) left-joined with its members
// whose sessions are live and their forced-down marks. Every read goes
// through an index (see the package doc). memberSQL is the same read of
// one member ($3). They are two statements, not one with "$3 = ” OR":
// pgx prepares each, and the server's generic plan for such an OR reads
// every member of the group to return one of them.
const (
	membersSQL = membersSelect + `
  ON m.group_name = g.name
` + membersMarks
	memberSQL = membersSelect + `
  ON m.group_name = g.name AND m.member = $3
` + membersMarks

	membersSelect = `
SELECT ` + live + `, m.member, m.capabilities, s.renewed_at, f.member IS NOT NULL
FROM muster_groups g
LEFT JOIN (muster_members m JOIN muster_sessions s ON s.id = m.session_id AND s.expires_at > now())`
	membersMarks = `LEFT JOIN muster_forced_down f ON f.group_name = m.group_name AND f.member = m.member
WHERE g.name = $2`
)

func (s *session) Members(ctx context.Context, group string) ([]driver.Member, error) {
	return s.members(ctx, "members", group, membersSQL, s.id, group)
}

// Member is one live member of group, as Members would list it, without
// listing the others; ErrNotMember when it is not live there.
func (s *session) Member(ctx context.Context, group, member string) (driver.Member, error) {
	ms, err := s.members(ctx, "member", group, memberSQL, s.id, group, member)
	if err != nil {
		return driver.Member{}, err
	}
	if len(ms) == 0 {
		return driver.Member{}, driver.Errorf(backend, "member", group, fmt.Errorf("%w: %q", driver.ErrNotMember, member))
	}
	return ms[0], nil
}

// members runs membersSQL or memberSQL (with args) through readGroup.
func (s *session) members(ctx context.Context, op, group, sql string, args ...any) ([]driver.Member, error) {
	var out []driver.Member
	err := s.readGroup(ctx, op, group, func(c *pgx.Conn) (found, me bool, err error) {
		out, found, me, err = scanMembers(ctx, c, sql, args...)
		return found, me, err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// readGroup runs read, a read of group that also says whether the group
// exists and this session is live, retrying it on another connection when
// the server ended one, and maps its outcome to the SPI's errors.
func (s *session) readGroup(ctx context.Context, op, group string, read func(*pgx.Conn) (found, me bool, err error)) error {
	if err := s.check(op, group); err != nil {
		return err
	}
	var found, me bool
	var err error
	for try := 0; try < 3; try++ {
		err = s.pool.pool.with(ctx, func(c *pgx.Conn) error {
			var err error
			found, me, err = read(c)
			return err
		})
		if !retryable(ctx, err) {
			break
		}
	}
	switch {
	case err != nil:
		return s.fail(ctx, op, group, err)
	case !found:
		return s.lostOr(ctx, op, group, driver.ErrGroupNotFound)
	case !me:
		s.markLost()
		return driver.Errorf(backend, op, group, driver.ErrSessionLost)
	}
	return nil
}

// knownSQL is membersSQL without the liveness filter, saying which members
// are live, followed by the forced-down marks of names with no member row.
// A dead session's rows stay until a janitor deletes them (a bounded batch
// every half TTL, in every process) or its member joins again.
const knownSQL = `
SELECT ` + live + `, m.member, m.capabilities, s.renewed_at, s.expires_at > now(), f.member IS NOT NULL
FROM muster_groups g
LEFT JOIN (muster_members m JOIN muster_sessions s ON s.id = m.session_id)
  ON m.group_name = g.name
LEFT JOIN muster_forced_down f ON f.group_name = m.group_name AND f.member = m.member
WHERE g.name = $2
UNION ALL
SELECT ` + live + `, f.member, NULL::bytea, NULL::timestamptz, false, true
FROM muster_forced_down f
WHERE f.group_name = $2 AND NOT EXISTS (
  SELECT 1 FROM muster_members m WHERE m.group_name = f.group_name AND m.member = f.member)`

// KnownMembers lists every member row of group, its session live or not,
// and the forced-down marks of names with no row, in one statement.
func (s *session) KnownMembers(ctx context.Context, group string) ([]driver.KnownMember, error) {
	var out []driver.KnownMember
	err := s.readGroup(ctx, "known members", group, func(c *pgx.Conn) (found, me bool, err error) {
		out = []driver.KnownMember{}
		rows, err := c.Query(ctx, knownSQL, s.id, group)
		if err != nil {
			return false, false, err
		}
		defer rows.Close()
		for rows.Next() {
			var id *string
			var caps []byte
			var upd *time.Time
			var alive *bool
			var down bool
			if err := rows.Scan(&me, &id, &caps, &upd, &alive, &down); err != nil {
				return false, false, err
			}
			found = true
			if id == nil {
				continue // a group without members
			}
			m := driver.KnownMember{Member: driver.Member{ID: *id, ForcedDown: down}, Live: alive != nil && *alive}
			if len(caps) > 0 {
				m.Capabilities = caps
			}
			if upd != nil {
				m.UpdatedAt = *upd
			}
			out = append(out, m)
		}
		if err := rows.Err(); err != nil {
			return false, false, err
		}
		if !found {
			me = true // unknown; lostOr asks
		}
		return found, me, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

var _ driver.KnownMemberLister = (*session)(nil)

// scanMembers runs membersSQL or memberSQL with args.
func scanMembers(ctx context.Context, c *pgx.Conn, sql string, args ...any) (out []driver.Member, found, me bool, err error) {
	rows, err := c.Query(ctx, sql, args...)
	if err != nil {
		return nil, false, false, err
	}
	defer rows.Close()
	out = []driver.Member{}
	for rows.Next() {
		var id *string
		var caps []byte
		var upd *time.Time
		var down bool
		if err := rows.Scan(&me, &id, &caps, &upd, &down); err != nil {
			return nil, false, false, err
		}
		found = true
		if id == nil {
			continue // a group without (live) members
		}
		m := driver.Member{ID: *id, ForcedDown: down}
		if len(caps) > 0 {
			m.Capabilities = caps
		}
		if upd != nil {
			m.UpdatedAt = *upd
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, false, false, err
	}
	if !found {
		me = true // unknown; lostOr asks
	}
	return out, found, me, nil
}

var errNoSchema = errors.New("no schema in the search_path")
