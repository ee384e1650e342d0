package postgresql_test

import (
	"context"
	"fmt"
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
	// pgx prepares every statement, and after five runs the server may
	// switch a prepared statement to its generic plan (parameters left
	// unknown): both plans must keep to the indexes.
	if _, err := c.Exec(ctx, `SET plan_cache_mode = force_generic_plan`); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		name, sql string
		args      []any
		// want is in the generic plan (a parameter's index condition).
		want string
	}{
		{"members", postgresql.MembersSQL, []any{"s1", "g7"}, ""},
		{"member", postgresql.MemberSQL, []any{"s1", "g7", "m6"}, "Index Cond: ((group_name = $2) AND (member = $3))"},
		{"heartbeat", postgresql.HeartbeatSQL, []any{"s1"}, ""},
		{"cleanup", postgresql.CleanupSQL, []any{100}, ""},
	} {
		if _, err := c.Exec(ctx, fmt.Sprintf("PREPARE p%d AS %s", i, tc.sql)); err != nil {
			t.Fatal(err)
		}
		lits := make([]string, len(tc.args))
		for j, a := range tc.args {
			switch a := a.(type) {
			case string:
				lits[j] = "'" + a + "'"
			default:
				lits[j] = fmt.Sprint(a)
			}
		}
		for _, mode := range []string{"custom", "generic"} {
			var rows pgx.Rows
			if mode == "custom" {
				rows, err = c.Query(ctx, "EXPLAIN "+tc.sql, tc.args...)
			} else {
				rows, err = c.Query(ctx, fmt.Sprintf("EXPLAIN EXECUTE p%d(%s)", i, strings.Join(lits, ", ")))
			}
			if err != nil {
				t.Fatal(err)
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			plan := strings.Join(lines, "\n")
			t.Logf("EXPLAIN %s (%s plan):\n%s", tc.name, mode, plan)
			// The forced-down marks are a few operator actions: a scan of
			// their page or two is the planner's right choice.
			for _, table := range []string{"muster_sessions", "muster_members", "muster_groups", "muster_locks"} {
				if strings.Contains(plan, "Seq Scan on "+table) {
					t.Errorf("%s scans %s in its %s plan:\n%s", tc.name, table, mode, plan)
				}
			}
			if mode == "generic" && !strings.Contains(plan, tc.want) {
				t.Errorf("%s's generic plan has no %q:\n%s", tc.name, tc.want, plan)
			}
		}
	}
}
