package postgresql_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/musterhq/muster/internal/testserver"
	"github.com/musterhq/muster/plugins/postgresql"
	"github.com/musterhq/muster/servicegroup/driver"
)

func open(ctx context.Context, url, member string) (driver.Driver, error) {
	return postgresql.Open(ctx, driver.Options{URL: url, Member: member, TTL: 10 * time.Second, DialTimeout: 5 * time.Second})
}

// newRole creates a login role with a password and returns its name.
func newRole(t *testing.T, password string, grants ...string) string {
	t.Helper()
	name := "r" + strings.TrimPrefix(newSchema(t), "t")
	stmts := append([]string{fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", name, password)}, grants...)
	for i := range stmts {
		stmts[i] = strings.ReplaceAll(stmts[i], "ROLE_", name)
	}
	if err := admin(context.Background(), testDB, stmts...); err != nil {
		t.Fatal(err)
	}
	return name
}

// TestOpenErrors: bad input gets one clear error naming postgresql and the
// address, with the password hidden.
func TestOpenErrors(t *testing.T) {
	s := server(t)
	ctx := context.Background()
	schema := newSchema(t)
	role := newRole(t, "right-pw", "GRANT USAGE ON SCHEMA "+schema+" TO ROLE_")
	base := func(user, pw, db string) string {
		return fmt.Sprintf("postgresql://%s:%s@%s/%s?sslmode=disable&search_path=%s", user, pw, s.Addr(), db, schema)
	}
	cases := []struct {
		name, url, want string
	}{
		{"bad URL", "postgresql://u:secret-pw@[::1/x", "bad URL"},
		{"wrong scheme", "mysql://u:secret-pw@127.0.0.1/x", "scheme"},
		{"bad option", "postgresql://u:secret-pw@127.0.0.1/x?sslmode=sometimes", "sslmode"},
		{"wrong password", base(role, "secret-pw", testDB), "password authentication failed"},
		{"missing database", base(role, "right-pw", "nosuchdb"), `database "nosuchdb" does not exist`},
		{"insufficient privileges", base(role, "right-pw", testDB), "permission denied"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := open(ctx, tc.url, "m")
			if err == nil {
				d.Close(ctx)
				t.Fatalf("Open(%s) succeeded", driver.Redact(tc.url))
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.HasPrefix(msg, "postgresql: open ") || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q; want postgresql: open ... %q", msg, tc.want)
			}
			if strings.Contains(msg, "secret-pw") || strings.Contains(msg, "right-pw") {
				t.Errorf("error %q shows the password", msg)
			}
			if !strings.Contains(msg, driver.Redact(tc.url)) {
				t.Errorf("error %q does not name the address %s", msg, driver.Redact(tc.url))
			}
		})
	}
}

// TestUnixSocket opens through the server's socket, with host= and with
// the socket directory as the URL's host.
func TestUnixSocket(t *testing.T) {
	s := server(t)
	ctx := context.Background()
	schema := newSchema(t)
	dir := testserver.PostgresSocketDir(s)
	port := fmt.Sprint(s.Port)
	for _, u := range []string{
		"postgresql:///" + testDB + "?host=" + dir + "&port=" + port + "&user=postgres&search_path=" + schema,
		"postgres://" + url.PathEscape(dir) + ":" + port + "/" + testDB + "?user=postgres&search_path=" + schema,
	} {
		d, err := open(ctx, u, "m")
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		if err := d.CreateGroup(ctx, "g"+fmt.Sprint(len(u))); err != nil {
			t.Error(err)
		}
		d.Close(ctx)
	}
}

// TestSchemaAheadOfTime: an operator creates the schema with CreateSchema
// and grants GrantSQL; an account with row privileges only then runs.
func TestSchemaAheadOfTime(t *testing.T) {
	s := server(t)
	ctx := context.Background()
	schema := newSchema(t)
	su := testserver.PostgresURL(s, testDB) + "&search_path=" + schema
	if err := postgresql.CreateSchema(ctx, su); err != nil {
		t.Fatal(err)
	}
	if err := postgresql.CreateSchema(ctx, su); err != nil { // idempotent
		t.Fatal(err)
	}
	grants := []string{"GRANT USAGE ON SCHEMA " + schema + " TO ROLE_", "SET search_path = " + schema}
	for _, g := range strings.Split(strings.TrimSpace(postgresql.GrantSQL), "\n") {
		grants = append(grants, strings.ReplaceAll(g, "muster_app", "ROLE_"))
	}
	role := newRole(t, "pw", grants...)
	u := fmt.Sprintf("postgresql://%s:pw@%s/%s?sslmode=disable&search_path=%s", role, s.Addr(), testDB, schema)
	d, err := open(ctx, u, "m")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(ctx)
	if err := d.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if err := d.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := d.TryLock(ctx, "l"); err != nil {
		t.Fatal(err)
	}
	if err := d.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestNewerSchemaRefused: a database with a newer schema version is
// refused with a clear error.
func TestNewerSchemaRefused(t *testing.T) {
	server(t)
	ctx := context.Background()
	u := nsURL(t)
	d, err := open(ctx, u, "m")
	if err != nil {
		t.Fatal(err)
	}
	d.Close(ctx)
	schema := u[strings.LastIndex(u, "=")+1:]
	if err := admin(ctx, testDB, "UPDATE "+schema+".muster_schema SET version = 99"); err != nil {
		t.Fatal(err)
	}
	_, err = open(ctx, u, "m")
	if err == nil || !strings.Contains(err.Error(), "version 99") || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open on a newer schema: %v; want a clear refusal", err)
	}
	t.Log(err)
}

// TestConcurrentSchemaCreation: many processes' first Open at once on an
// empty schema create it once, without errors.
func TestConcurrentSchemaCreation(t *testing.T) {
	server(t)
	ctx := context.Background()
	u := bareURL(t)
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A distinct application_name: a pool (and a schema check) each.
			d, err := open(ctx, fmt.Sprintf("%s&application_name=p%d", u, i), fmt.Sprintf("m%d", i))
			if err != nil {
				errs <- err
				return
			}
			errs <- d.Close(ctx)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Error(err)
		}
	}
}

// TestCreateSchemaThroughPlugin: `muster create-schema` runs the plugin's
// create-schema (muster links no SQL driver): it creates the tables at the
// URL it reads on stdin, and a failure is one line that names the URL with
// its password hidden.
func TestCreateSchemaThroughPlugin(t *testing.T) {
	s := server(t)
	schema := newSchema(t)
	su := testserver.PostgresURL(s, testDB) + "&search_path=" + schema
	if stderr, err := testserver.PluginCommand(pluginDir, "postgresql", "create-schema", su); err != nil {
		t.Fatalf("create-schema: %v: %s", err, stderr)
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, testserver.PostgresURL(s, testDB))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var version int
	if err := c.QueryRow(ctx, "SELECT version FROM "+schema+".muster_schema").Scan(&version); err != nil || version != postgresql.SchemaVersion {
		t.Fatalf("schema version after create-schema: %d, %v; want %d", version, err, postgresql.SchemaVersion)
	}

	stderr, err := testserver.PluginCommand(pluginDir, "postgresql", "create-schema", "postgresql://admin:hunter2@127.0.0.1:1/db")
	if err == nil || strings.Contains(stderr, "hunter2") || !strings.Contains(stderr, "127.0.0.1:1") ||
		strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Fatalf("create-schema on a closed port: %v, stderr %q: want a failure, one line naming the URL without its password", err, stderr)
	}
}
