package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/musterhq/muster/servicegroup/driver"
)

// live is the condition that a session row s is alive, by the server's
// clock. Every read of members or locks joins on it.
const live = "s.expires_at > CURRENT_TIMESTAMP(6)"

func (s *session) CreateGroup(ctx context.Context, group string) error {
	if err := s.check("create group", group); err != nil {
		return err
	}
	_, err := s.exec(ctx, "INSERT INTO muster_groups (name, created_at) VALUES (?, CURRENT_TIMESTAMP(6))", group)
	if mysqlErrno(err) == erDupEntry {
		err = driver.ErrGroupExists
	}
	return s.fail(ctx, "create group", group, err)
}

func (s *session) DeleteGroup(ctx context.Context, group string) error {
	if err := s.check("delete group", group); err != nil {
		return err
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		// The row lock on the group holds back joins (their foreign-key
		// check reads it) until the group is gone.
		var name string
		err := tx.QueryRowContext(ctx, "SELECT name FROM muster_groups WHERE name = ? FOR UPDATE", group).Scan(&name)
		if err == sql.ErrNoRows {
			return driver.ErrGroupNotFound
		}
		if err != nil {
			return err
		}
		var n int
		err = tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM muster_members m
			JOIN muster_sessions s ON s.id = m.session_id AND `+live+` WHERE m.grp = ?`, group).Scan(&n)
		if err != nil {
			return err
		}
		if n > 0 {
			return driver.ErrGroupNotEmpty
		}
		// Dead members and forced-down marks go with it (cascade).
		_, err = tx.ExecContext(ctx, "DELETE FROM muster_groups WHERE name = ?", group)
		return err
	})
	return s.fail(ctx, "delete group", group, err)
}

func (s *session) Groups(ctx context.Context) ([]string, error) {
	if err := s.check("list groups", ""); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, "SELECT name FROM muster_groups ORDER BY name")
	if err != nil {
		return nil, s.fail(ctx, "list groups", "", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return nil, s.fail(ctx, "list groups", "", err)
		}
		out = append(out, g)
	}
	return out, s.fail(ctx, "list groups", "", rows.Err())
}

// nullCaps stores "no capabilities" as NULL.
func nullCaps(caps []byte) any {
	if len(caps) == 0 {
		return nil
	}
	return caps
}

func (s *session) Join(ctx context.Context, group string, caps []byte) error {
	if err := s.check("join", group); err != nil {
		return err
	}
	// A record left by a dead session is taken over; a live one refuses.
	_, err := s.exec(ctx, `DELETE m FROM muster_members m
		LEFT JOIN muster_sessions s ON s.id = m.session_id
		WHERE m.grp = ? AND m.member = ? AND (s.id IS NULL OR s.expires_at <= CURRENT_TIMESTAMP(6))`, group, s.member)
	if err == nil {
		// Selecting from our own live session row: none means it is gone.
		var res sql.Result
		res, err = s.exec(ctx, `INSERT INTO muster_members (grp, member, session_id, caps, joined_at)
			SELECT ?, ?, s.id, ?, CURRENT_TIMESTAMP(6) FROM muster_sessions s WHERE s.id = ? AND `+live,
			group, s.member, nullCaps(caps), s.id)
		if err == nil {
			if n, _ := res.RowsAffected(); n == 0 {
				err = driver.ErrSessionLost
			}
		}
	}
	switch mysqlErrno(err) {
	case erDupEntry:
		err = fmt.Errorf("%w: %q", driver.ErrMemberExists, s.member)
	case erNoReferencedRow:
		err = s.missing(ctx, group, err)
	}
	return s.fail(ctx, "join", group, err)
}

// missing explains a foreign-key failure: the group is gone, or the
// session is.
func (s *session) missing(ctx context.Context, group string, err error) error {
	if strings.Contains(err.Error(), "muster_members_group") || strings.Contains(err.Error(), "muster_forced_down_group") {
		return driver.ErrGroupNotFound
	}
	return s.diagnose(ctx, group, err)
}

// diagnose says why a write that matched no row did nothing: the session
// is gone, the group is missing, or else fallback.
func (s *session) diagnose(ctx context.Context, group string, fallback error) error {
	var groupOK, sessOK int
	err := s.db.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM muster_groups WHERE name = ?),
		(SELECT COUNT(*) FROM muster_sessions s WHERE s.id = ? AND `+live+`)`, group, s.id).Scan(&groupOK, &sessOK)
	switch {
	case err != nil:
		return err
	case sessOK == 0:
		return driver.ErrSessionLost
	case groupOK == 0:
		return driver.ErrGroupNotFound
	}
	return fallback
}

func (s *session) Leave(ctx context.Context, group string) error {
	if err := s.check("leave", group); err != nil {
		return err
	}
	res, err := s.exec(ctx, "DELETE FROM muster_members WHERE grp = ? AND member = ? AND session_id = ?", group, s.member, s.id)
	if err == nil {
		if n, _ := res.RowsAffected(); n == 0 {
			err = s.diagnose(ctx, group, fmt.Errorf("%w: %q", driver.ErrNotMember, s.member))
		}
	}
	return s.fail(ctx, "leave", group, err)
}

// membersQuery lists a group's live members in one query; a group that
// exists but has none gives one row of NULLs, a missing group no row.
const membersQuery = `SELECT m.member, m.caps, m.renewed_at, f.member IS NOT NULL
	FROM muster_groups g
	LEFT JOIN (SELECT m.grp, m.member, m.caps, s.renewed_at FROM muster_members m
		JOIN muster_sessions s ON s.id = m.session_id AND ` + live + `
		WHERE m.grp = ? %s) m ON m.grp = g.name
	LEFT JOIN muster_forced_down f ON f.grp = m.grp AND f.member = m.member
	WHERE g.name = ?`

func (s *session) Members(ctx context.Context, group string) ([]driver.Member, error) {
	return s.members(ctx, "members", group, fmt.Sprintf(membersQuery, ""), group, group)
}

// Member is one live member of group, as Members would list it, without
// listing the others; ErrNotMember when it is not live there.
func (s *session) Member(ctx context.Context, group, member string) (driver.Member, error) {
	ms, err := s.members(ctx, "member", group, fmt.Sprintf(membersQuery, "AND m.member = ?"), group, member, group)
	if err != nil {
		return driver.Member{}, err
	}
	if len(ms) == 0 {
		return driver.Member{}, driver.Errorf(backend, "member", group, fmt.Errorf("%w: %q", driver.ErrNotMember, member))
	}
	return ms[0], nil
}

func (s *session) members(ctx context.Context, op, group, query string, args ...any) ([]driver.Member, error) {
	if err := s.check(op, group); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.fail(ctx, op, group, err)
	}
	defer rows.Close()
	found := false
	out := []driver.Member{}
	for rows.Next() {
		found = true
		var (
			id   sql.NullString
			caps []byte
			upd  sql.NullTime
			down sql.NullBool
		)
		if err := rows.Scan(&id, &caps, &upd, &down); err != nil {
			return nil, s.fail(ctx, op, group, err)
		}
		if !id.Valid {
			continue
		}
		if len(caps) == 0 {
			caps = nil
		}
		out = append(out, driver.Member{ID: id.String, Capabilities: caps,
			UpdatedAt: upd.Time.In(time.UTC), ForcedDown: down.Bool})
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(ctx, op, group, err)
	}
	if !found {
		return nil, s.fail(ctx, op, group, driver.ErrGroupNotFound)
	}
	// Sorted here, not by the server: no temporary table on the hot path.
	slices.SortFunc(out, func(a, b driver.Member) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// knownQuery is membersQuery without the liveness filter, saying which
// members are live, followed by the forced-down marks of names with no
// member row. A dead session's rows stay until a heartbeat's sweep deletes
// them (a batch every few heartbeats, in every process) or its member, or
// a lock it held, is taken again.
const knownQuery = `SELECT m.member, m.caps, m.renewed_at, m.alive, f.member IS NOT NULL
	FROM muster_groups g
	LEFT JOIN (SELECT m.grp, m.member, m.caps, s.renewed_at, ` + live + ` AS alive FROM muster_members m
		JOIN muster_sessions s ON s.id = m.session_id
		WHERE m.grp = ?) m ON m.grp = g.name
	LEFT JOIN muster_forced_down f ON f.grp = m.grp AND f.member = m.member
	WHERE g.name = ?
	UNION ALL
	SELECT f.member, NULL, NULL, FALSE, TRUE FROM muster_forced_down f
	WHERE f.grp = ? AND NOT EXISTS (SELECT 1 FROM muster_members m WHERE m.grp = f.grp AND m.member = f.member)`

// KnownMembers lists every member row of group, its session live or not,
// and the forced-down marks of names with no row, in one query.
func (s *session) KnownMembers(ctx context.Context, group string) ([]driver.KnownMember, error) {
	const op = "known members"
	if err := s.check(op, group); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, knownQuery, group, group, group)
	if err != nil {
		return nil, s.fail(ctx, op, group, err)
	}
	defer rows.Close()
	found := false
	out := []driver.KnownMember{}
	for rows.Next() {
		found = true
		var (
			id    sql.NullString
			caps  []byte
			upd   sql.NullTime
			alive sql.NullBool
			down  sql.NullBool
		)
		if err := rows.Scan(&id, &caps, &upd, &alive, &down); err != nil {
			return nil, s.fail(ctx, op, group, err)
		}
		if !id.Valid {
			continue
		}
		if len(caps) == 0 {
			caps = nil
		}
		m := driver.KnownMember{Member: driver.Member{ID: id.String, Capabilities: caps, ForcedDown: down.Bool}, Live: alive.Bool}
		if upd.Valid {
			m.UpdatedAt = upd.Time.In(time.UTC)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(ctx, op, group, err)
	}
	if !found {
		return nil, s.fail(ctx, op, group, driver.ErrGroupNotFound)
	}
	return out, nil
}

var _ driver.KnownMemberLister = (*session)(nil)

func (s *session) SetCapabilities(ctx context.Context, group string, caps []byte) error {
	if err := s.check("set capabilities", group); err != nil {
		return err
	}
	res, err := s.exec(ctx, `UPDATE muster_members m JOIN muster_sessions s ON s.id = m.session_id
		SET m.caps = ? WHERE m.grp = ? AND m.member = ? AND m.session_id = ? AND `+live,
		nullCaps(caps), group, s.member, s.id)
	if err == nil {
		if n, _ := res.RowsAffected(); n == 0 {
			err = s.diagnose(ctx, group, fmt.Errorf("%w: %q", driver.ErrNotMember, s.member))
		}
	}
	return s.fail(ctx, "set capabilities", group, err)
}

func (s *session) SetForcedDown(ctx context.Context, group, member string, down bool) error {
	if err := s.check("force down", group); err != nil {
		return err
	}
	if err := driver.ValidateName("member", member); err != nil {
		return driver.Errorf(backend, "force down", group, err)
	}
	var err error
	if down {
		_, err = s.exec(ctx, `INSERT INTO muster_forced_down (grp, member) VALUES (?, ?)
			ON DUPLICATE KEY UPDATE member = member`, group, member)
		if mysqlErrno(err) == erNoReferencedRow {
			err = driver.ErrGroupNotFound
		}
	} else {
		var res sql.Result
		res, err = s.exec(ctx, "DELETE FROM muster_forced_down WHERE grp = ? AND member = ?", group, member)
		if err == nil {
			if n, _ := res.RowsAffected(); n == 0 {
				var one int
				if qerr := s.db.QueryRowContext(ctx, "SELECT 1 FROM muster_groups WHERE name = ?", group).Scan(&one); qerr == sql.ErrNoRows {
					err = driver.ErrGroupNotFound
				} else {
					err = qerr
				}
			}
		}
	}
	return s.fail(ctx, "force down", group, err)
}
