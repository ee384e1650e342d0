package mysql_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/musterhq/muster/internal/testserver"
	"github.com/musterhq/muster/plugins/mysql"
)

// srv is the package's one mariadbd; admin is a pool on it as the test
// account; pluginDir holds the plugin binary.
var (
	srv       *testserver.Server
	startErr  error
	admin     *sql.DB
	pluginDir string
)

func TestMain(m *testing.M) {
	certs, err := os.MkdirTemp("", "muster-mysql-certs-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	certDir = certs
	if startErr = writeCerts(certs); startErr == nil {
		// TLS is on offer; the tests connect without it unless they ask.
		srv, startErr = testserver.StartMariaDB("--ssl-ca="+filepath.Join(certs, "ca.pem"),
			"--ssl-cert="+filepath.Join(certs, "server.pem"), "--ssl-key="+filepath.Join(certs, "server-key.pem"))
	}
	if startErr == nil {
		c := gomysql.NewConfig()
		c.User, c.Passwd, c.Net, c.Addr = testserver.MariaDBUser, testserver.MariaDBPassword, "tcp", srv.Addr()
		c.Logger = &gomysql.NopLogger{}
		conn, err := gomysql.NewConnector(c)
		if err != nil {
			startErr = err
		} else {
			admin = sql.OpenDB(conn)
			admin.SetMaxIdleConns(2)
		}
	}
	code := 2
	dir, err := testserver.BuildPlugin("mysql")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		pluginDir = dir
		code = m.Run()
	}
	if admin != nil {
		admin.Close()
	}
	if srv != nil {
		srv.Close() // before the leak check: its process has goroutines
	}
	code = testserver.CheckLeaks(code)
	os.RemoveAll(dir)
	os.RemoveAll(certs)
	os.Exit(code)
}

// server returns the package's mariadbd, or fails (skips outside CI) when
// it could not start.
func server(t testing.TB) *testserver.Server {
	t.Helper()
	if startErr != nil {
		testserver.Missing(t, startErr)
	}
	srv.LogOnFailure(t)
	return srv
}

// newDB creates a fresh, empty database and returns its name.
func newDB(t testing.TB) string {
	t.Helper()
	server(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "t_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	return name
}

// dbURL is the URL of a fresh database on the package's server, as the
// test account, with muster's tables created: creating them is DDL, slow
// on a loaded machine, and the suite's sessions have sub-second TTLs
// counted from before Open (TestSchemaConcurrentCreate tests creation on
// first use).
func dbURL(t testing.TB) string {
	u := userURL(testserver.MariaDBUser, testserver.MariaDBPassword, server(t).Addr(), newDB(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := mysql.CreateSchema(ctx, u); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	return u
}

func userURL(user, pass, addr, db string) string {
	return (&url.URL{Scheme: "mysql", User: url.UserPassword(user, pass), Host: addr, Path: "/" + db}).String()
}
