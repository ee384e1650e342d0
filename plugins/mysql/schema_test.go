package mysql_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/testserver"
	"github.com/musterhq/muster/plugins/mysql"
	"github.com/musterhq/muster/servicegroup/driver"
)

func open(t testing.TB, url, member string, ttl time.Duration) driver.Driver {
	t.Helper()
	d, err := mysql.Open(context.Background(), driver.Options{URL: url, Member: member, TTL: ttl})
	if err != nil {
		t.Fatalf("Open %s: %v", member, err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	return d
}

// TestSchemaConcurrentCreate: many sessions opening an empty database at
// once all succeed; one of them created the schema.
func TestSchemaConcurrentCreate(t *testing.T) {
	url := userURL(testserver.MariaDBUser, testserver.MariaDBPassword, server(t).Addr(), newDB(t))
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for i := 0; i < cap(errs); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := mysql.Open(context.Background(), driver.Options{URL: url, Member: "m", TTL: time.Minute})
			if err == nil {
				err = d.Close(context.Background())
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// TestSchemaNewerRefused: a database whose schema is newer than this
// muster's is refused with a clear error, not taken for an outage.
func TestSchemaNewerRefused(t *testing.T) {
	db := newDB(t)
	url := userURL(testserver.MariaDBUser, testserver.MariaDBPassword, server(t).Addr(), db)
	ctx := context.Background()
	if err := mysql.CreateSchema(ctx, url); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ExecContext(ctx, "UPDATE "+db+".muster_schema SET version = version + 1"); err != nil {
		t.Fatal(err)
	}
	_, err := mysql.Open(ctx, driver.Options{URL: url, Member: "m", TTL: time.Minute})
	if err == nil || !strings.Contains(err.Error(), "newer muster schema") || errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("Open on a newer schema: %v", err)
	}
	t.Log(err)
	if err := mysql.CreateSchema(ctx, url); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("CreateSchema on a newer schema: %v", err)
	}
}

// TestSchemaAheadOfTime: CreateSchema with a privileged account, then a
// runtime account with row privileges only does everything; without the
// schema, that account gets a clear error.
func TestSchemaAheadOfTime(t *testing.T) {
	db := newDB(t)
	addr := server(t).Addr()
	ctx := context.Background()
	user := "rt_" + db[2:]
	for _, q := range []string{
		"CREATE USER '" + user + "'@'%' IDENTIFIED BY 'rt-pw'",
		"GRANT SELECT, INSERT, UPDATE, DELETE ON " + db + ".* TO '" + user + "'@'%'",
	} {
		if _, err := admin.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	rt := userURL(user, "rt-pw", addr, db)
	_, err := mysql.Open(ctx, driver.Options{URL: rt, Member: "m", TTL: time.Minute})
	if err == nil || !strings.Contains(err.Error(), "CREATE command denied") || strings.Contains(err.Error(), "rt-pw") {
		t.Fatalf("Open without schema and CREATE privilege: %v", err)
	}
	t.Log(err)
	if err := mysql.CreateSchema(ctx, userURL(testserver.MariaDBUser, testserver.MariaDBPassword, addr, db)); err != nil {
		t.Fatal(err)
	}
	if err := mysql.CreateSchema(ctx, userURL(testserver.MariaDBUser, testserver.MariaDBPassword, addr, db)); err != nil {
		t.Fatalf("CreateSchema again: %v", err)
	}
	a, b := open(t, rt, "a", time.Minute), open(t, rt, "b", time.Minute)
	if err := a.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if err := a.Join(ctx, "g", []byte{0x80}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetForcedDown(ctx, "g", "a", true); err != nil {
		t.Fatal(err)
	}
	ms, err := b.Members(ctx, "g")
	if err != nil || len(ms) != 1 || !ms[0].ForcedDown {
		t.Fatalf("Members = %v, %v", ms, err)
	}
	tok, err := a.TryLock(ctx, "l")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.TryLock(ctx, "l"); !errors.Is(err, driver.ErrLockHeld) {
		t.Fatalf("second TryLock: %v", err)
	}
	if err := a.Unlock(ctx, "l", tok); err != nil {
		t.Fatal(err)
	}
	if err := a.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestCreateSchemaThroughPlugin: `muster create-schema` runs the plugin's
// create-schema (muster links no SQL driver): it creates the tables at the
// URL it reads on stdin, and a failure is one line that names the URL with
// its password hidden.
func TestCreateSchemaThroughPlugin(t *testing.T) {
	db := newDB(t)
	url := userURL(testserver.MariaDBUser, testserver.MariaDBPassword, server(t).Addr(), db)
	if stderr, err := testserver.PluginCommand(pluginDir, "mysql", "create-schema", url); err != nil {
		t.Fatalf("create-schema: %v: %s", err, stderr)
	}
	var version int
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := admin.QueryRowContext(ctx, "SELECT version FROM "+db+".muster_schema WHERE id = 1").Scan(&version); err != nil || version != mysql.SchemaVersion {
		t.Fatalf("schema version after create-schema: %d, %v; want %d", version, err, mysql.SchemaVersion)
	}

	stderr, err := testserver.PluginCommand(pluginDir, "mysql", "create-schema", "mysql://admin:hunter2@127.0.0.1:1/db")
	if err == nil || strings.Contains(stderr, "hunter2") || !strings.Contains(stderr, "127.0.0.1:1") ||
		strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Fatalf("create-schema on a closed port: %v, stderr %q: want a failure, one line naming the URL without its password", err, stderr)
	}
}
