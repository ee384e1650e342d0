package mysql_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/mysql"
)

// TestExplainHotPath: no statement of the hot path scans a table. It
// fills a database (200 sessions in 4 groups, locks), then EXPLAINs each
// statement and logs the plan (go test -v shows it).
func TestExplainHotPath(t *testing.T) {
	url := dbURL(t)
	db := url[strings.LastIndexByte(url, '/')+1:]
	ctx := context.Background()
	first := open(t, url, "m-000", time.Minute)
	for g := 0; g < 4; g++ {
		if err := first.CreateGroup(ctx, fmt.Sprintf("g%d", g)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 200; i++ {
		d := open(t, url, fmt.Sprintf("m-%03d", i+1), time.Minute)
		if err := d.Join(ctx, fmt.Sprintf("g%d", i%4), []byte{0x80}); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			if _, err := d.TryLock(ctx, fmt.Sprintf("l%d", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	conn, err := admin.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "USE "+db); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "ANALYZE TABLE muster_sessions, muster_members, muster_groups, muster_locks, muster_forced_down"); err != nil {
		t.Fatal(err)
	}
	var sid string
	var tok uint64
	if err := conn.QueryRowContext(ctx, "SELECT session_id, token FROM muster_locks WHERE name = 'l0'").Scan(&sid, &tok); err != nil {
		t.Fatal(err)
	}
	sidLit, tokLit := "'"+sid+"'", fmt.Sprint(tok)
	args := map[string][]string{
		"heartbeat":     {sidLit},
		"session alive": {sidLit},
		"lock row":      {"'l0'"},
		"lock holder":   {"'l0'"},
		"unlock":        {"'l0'", sidLit, tokLit},
		"insert lock":   {"'lx'", sidLit, "'lx'"},
		"holder alive":  {"'l0'"},
		"members":       {"'g1'", "'g1'"},
		"member":        {"'g1'", "'m-002'", "'g1'"},
		"end instance":  {"'i'"},
	}
	names := make([]string, 0, len(mysql.HotQueries))
	for n := range mysql.HotQueries {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		q := mysql.HotQueries[name]
		for _, a := range args[name] {
			q = strings.Replace(q, "?", a, 1)
		}
		q = strings.Replace(q, " FOR UPDATE", "", 1)
		rows, err := conn.QueryContext(ctx, "EXPLAIN "+q)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		plan, scans := explainRows(t, rows)
		t.Logf("EXPLAIN %s:\n%s", name, plan)
		for _, s := range scans {
			t.Errorf("%s scans %s:\n%s", name, s, plan)
		}
	}
}

// explainRows formats an EXPLAIN result and lists the tables it reads
// in full.
func explainRows(t *testing.T, rows *sql.Rows) (string, []string) {
	t.Helper()
	defer rows.Close()
	cols, _ := rows.Columns()
	var b strings.Builder
	b.WriteString(strings.Join(cols, " | ") + "\n")
	var scans []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(cols))
		var table, typ string
		for i, v := range vals {
			row[i] = v.String
			switch cols[i] {
			case "table":
				table = v.String
			case "type":
				typ = v.String
			}
		}
		b.WriteString(strings.Join(row, " | ") + "\n")
		if typ == "ALL" || typ == "index" {
			scans = append(scans, table)
		}
	}
	return b.String(), scans
}
