package mysql

import (
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url, net, addr, user, pass, db string
		tls, skip                      bool
	}{
		{url: "mysql://u:p@db.example:3307/muster", net: "tcp", addr: "db.example:3307", user: "u", pass: "p", db: "muster"},
		{url: "mysql://u:p%40ss@db.example/muster", net: "tcp", addr: "db.example:3306", user: "u", pass: "p@ss", db: "muster"},
		{url: "mariadb://u@[::1]:3306/m", net: "tcp", addr: "[::1]:3306", user: "u", db: "m"},
		{url: "mysql://u:p@/m?unix_socket=/run/mysqld/mysqld.sock", net: "unix", addr: "/run/mysqld/mysqld.sock", user: "u", pass: "p", db: "m"},
		{url: "mysql://u:p@localhost/m?unix_socket=/s", net: "unix", addr: "/s", user: "u", pass: "p", db: "m"},
		{url: "mysql://u:p@h/m?tls=true", net: "tcp", addr: "h:3306", user: "u", pass: "p", db: "m", tls: true},
		{url: "mysql://u:p@h/m?tls=skip-verify", net: "tcp", addr: "h:3306", user: "u", pass: "p", db: "m", tls: true, skip: true},
		{url: "mysql://u:p@h/m?ssl_verify_mode=none", net: "tcp", addr: "h:3306", user: "u", pass: "p", db: "m", tls: true, skip: true},
		{url: "mysql://u:p@h/m?tls=false", net: "tcp", addr: "h:3306", user: "u", pass: "p", db: "m"},
	} {
		c, err := parseURL(tc.url)
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if c.Net != tc.net || c.Addr != tc.addr || c.User != tc.user || c.Passwd != tc.pass || c.DBName != tc.db {
			t.Errorf("%s: got %s %s %s %s %s", tc.url, c.Net, c.Addr, c.User, c.Passwd, c.DBName)
		}
		if (c.TLS != nil) != tc.tls || (c.TLS != nil && c.TLS.InsecureSkipVerify != tc.skip) {
			t.Errorf("%s: TLS %+v", tc.url, c.TLS)
		}
		if !c.ClientFoundRows || c.Params["time_zone"] != "'+00:00'" {
			t.Errorf("%s: session settings missing: %+v", tc.url, c)
		}
	}
}

func TestParseURLErrors(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"mysql://u:p@h", "no database"},
		{"mysql://u:p@h/", "no database"},
		{"postgres://u:p@h/db", "scheme"},
		{"mysql://u:p@h:99999/db", "port"},
		{"mysql://u:p@/db", "no host"},
		{"mysql://u:p@h/db?tls=maybe", "tls="},
		{"mysql://u:p@h/db?tls=preferred", "plaintext"},
		{"mysql://u:p@h/db?ssl_ca=/nonexistent/ca.pem", "ssl_ca"},
		{"mysql://u:p@h/db?ssl_cert=/nonexistent/c.pem&ssl_key=/nonexistent/k.pem", "ssl_cert"},
		{"mysql://u:p@h/db?bogus=1", "unknown option"},
		{"mysql://u:p@h/db?timeout=-1", "timeout"},
		{"mysql://u:p@h/db?ssl_check_hostname=perhaps", "ssl_check_hostname"},
		{"mysql://u:p@h/a/b", "'/'"},
		{"mysql://u:p@h%zz/db", "bad URL"},
	} {
		_, err := parseURL(tc.url)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v; want one containing %q", tc.url, err, tc.want)
		}
	}
}
