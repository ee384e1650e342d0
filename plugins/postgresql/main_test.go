package postgresql_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/musterhq/muster/internal/testserver"
	"github.com/musterhq/muster/plugins/postgresql"
)

// srv is the package's one PostgreSQL server; every test works in a schema
// of its own in database testDB. pluginDir holds the plugin binary.
var (
	srv       *testserver.Server
	startErr  error
	pluginDir string
)

const testDB = "muster"

func TestMain(m *testing.M) {
	srv, startErr = testserver.StartPostgres()
	if startErr == nil {
		startErr = admin(context.Background(), "postgres", "CREATE DATABASE "+testDB)
	}
	code := 2
	dir, err := testserver.BuildPlugin("postgresql")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		pluginDir = dir
		code = m.Run()
	}
	if srv != nil {
		srv.Close() // before the leak check: its process has goroutines
	}
	os.RemoveAll(dir)
	os.Exit(testserver.CheckLeaks(code))
}

// server returns the package's server, or fails (skips outside CI) when
// it could not start.
func server(t testing.TB) *testserver.Server {
	t.Helper()
	if startErr != nil {
		testserver.Missing(t, startErr)
	}
	srv.LogOnFailure(t)
	return srv
}

// admin runs statements on db as the superuser.
func admin(ctx context.Context, db string, stmts ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, testserver.PostgresURL(srv, db))
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	for _, s := range stmts {
		if _, err := c.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// newSchema creates a fresh schema in testDB and returns its name.
func newSchema(t testing.TB) string {
	t.Helper()
	server(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "t" + hex.EncodeToString(b)
	if err := admin(context.Background(), testDB, "CREATE SCHEMA "+name); err != nil {
		t.Fatal(err)
	}
	return name
}

// bareURL is a URL of a fresh, empty schema on the package's server.
func bareURL(t testing.TB) string {
	return testserver.PostgresURL(server(t), testDB) + "&search_path=" + newSchema(t)
}

// nsURL is a URL of a fresh schema with muster's tables already made, as
// an operator would (SchemaSQL): a test's first session then does no DDL
// inside its TTL while a hundred others start at once. First use is tested
// on bare schemas (TestConcurrentSchemaCreation, TestOpenErrors).
func nsURL(t testing.TB) string {
	t.Helper()
	server(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "t" + hex.EncodeToString(b)
	if err := admin(context.Background(), testDB, "CREATE SCHEMA "+name, "SET search_path = "+name,
		postgresql.SchemaSQL, fmt.Sprintf("INSERT INTO muster_schema (version) VALUES (%d)", postgresql.SchemaVersion)); err != nil {
		t.Fatal(err)
	}
	return testserver.PostgresURL(srv, testDB) + "&search_path=" + name
}
