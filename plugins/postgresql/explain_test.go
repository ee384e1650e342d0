package postgresql_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/musterhq/muster/internal/testserver"
	"github.com/musterhq/muster/plugins/postgresql"
)

// TestHotPathPlans EXPLAINs the hot statements on a schema with 20,000
// sessions and members in 500 groups: none of them scans a table that
// grows with the fleet.
func TestHotPathPlans(t *testing.T) {
	s := server(t)
	ctx := context.Background()
	schema := newSchema(t)
	u := testserver.PostgresURL(s, testDB) + "&search_path=" + schema
	if err := postgresql.CreateSchema(ctx, u); err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for _, q := range []string{
		`INSERT INTO muster_sessions (id, member, ttl, renewed_at, expires_at)
		   SELECT 's' || i, 'm' || i, interval '10 s', now(), now() + interval '10 s' FROM generate_series(1, 20000) i`,
		`INSERT INTO muster_groups (name) SELECT 'g' || i FROM generate_series(1, 500) i`,
		`INSERT INTO muster_members (group_name, member, session_id)
		   SELECT 'g' || (i % 500 + 1), 'm' || i, 's' || i FROM generate_series(1, 20000) i`,
		`INSERT INTO muster_forced_down (group_name, member) SELECT 'g' || (i % 500 + 1), 'm' || i FROM generate_series(1, 20000, 97) i`,
		`ANALYZE`,
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, sql string
		args      []any
	}{
		{"members", postgresql.MembersSQL, []any{"s1", "g7", ""}},
		{"member", postgresql.MembersSQL, []any{"s1", "g7", "m6"}},
		{"heartbeat", postgresql.HeartbeatSQL, []any{"s1"}},
		{"cleanup", postgresql.CleanupSQL, []any{100}},
	} {
		rows, err := c.Query(ctx, "EXPLAIN "+tc.sql, tc.args...)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		plan := strings.Join(lines, "\n")
		t.Logf("EXPLAIN %s:\n%s", tc.name, plan)
		// The forced-down marks are a few operator actions: a scan of
		// their page or two is the planner's right choice.
		for _, table := range []string{"muster_sessions", "muster_members", "muster_groups", "muster_locks"} {
			if strings.Contains(plan, "Seq Scan on "+table) {
				t.Errorf("%s scans %s:\n%s", tc.name, table, plan)
			}
		}
	}
}
