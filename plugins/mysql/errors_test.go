package mysql_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/testserver"
	"github.com/musterhq/muster/plugins/mysql"
	"github.com/musterhq/muster/servicegroup/driver"
)

// TestOpenErrors: bad input gets one clear error naming the backend and
// the address, with the password hidden.
func TestOpenErrors(t *testing.T) {
	srv := server(t)
	db := newDB(t)
	ctx := context.Background()
	if _, err := admin.ExecContext(ctx, "CREATE USER IF NOT EXISTS 'nopriv'@'%' IDENTIFIED BY 'nopriv-pw'"); err != nil {
		t.Fatal(err)
	}
	const secret = "s3cr3t-pw"
	for _, tc := range []struct{ name, url, want string }{
		{"bad URL", "mysql://muster:" + secret + "@127.0.0.1:" + portOf(srv) + "/", "no database"},
		{"wrong password", userURL(testserver.MariaDBUser, secret, srv.Addr(), db), "Access denied"},
		{"missing database", userURL(testserver.MariaDBUser, testserver.MariaDBPassword, srv.Addr(), "nosuchdb_"+db), "Unknown database"},
		{"insufficient privileges", userURL("nopriv", "nopriv-pw", srv.Addr(), db), "denied"},
		{"unreachable", "mysql://u:" + secret + "@127.0.0.1:1/x", "refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := mysql.Open(ctx, driver.Options{URL: tc.url, Member: "m", TTL: time.Second, DialTimeout: 5 * time.Second})
			if err == nil {
				d.Close(ctx)
				t.Fatal("Open succeeded")
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.HasPrefix(msg, "mysql: open ") || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q; want mysql: open ... %s", msg, tc.want)
			}
			if strings.Contains(msg, secret) || strings.Contains(msg, testserver.MariaDBPassword) {
				t.Errorf("error shows the password: %q", msg)
			}
			if !strings.Contains(msg, "127.0.0.1") {
				t.Errorf("error does not name the address: %q", msg)
			}
			var oe *driver.OpError
			if !errors.As(err, &oe) || oe.Backend != "mysql" {
				t.Errorf("not a mysql OpError: %#v", err)
			}
		})
	}
}

func portOf(s *testserver.Server) string { return s.Addr()[strings.LastIndexByte(s.Addr(), ':')+1:] }

// TestUnixSocket: tooz's ?unix_socket= form reaches the server over its
// socket.
func TestUnixSocket(t *testing.T) {
	srv := server(t)
	u := dbURL(t)
	db := u[strings.LastIndexByte(u, '/')+1:]
	sock := userURL(testserver.MariaDBUser, testserver.MariaDBPassword, "", db) + "?unix_socket=" + testserver.MariaDBSocket(srv.Dir)
	d := open(t, sock, "m", time.Minute)
	if err := d.CreateGroup(context.Background(), "g"); err != nil {
		t.Fatal(err)
	}
	if err := d.Heartbeat(context.Background()); err != nil {
		t.Fatal(err)
	}
}
