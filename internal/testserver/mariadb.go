package testserver

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// MariaDBUser and MariaDBPassword are the account a MariaDB test server
// has besides root: it may do anything, from 127.0.0.1 and the socket.
const (
	MariaDBUser     = "muster"
	MariaDBPassword = "muster-test-pw"
)

// MariaDB is the Spec of a mariadbd from Debian's mariadb-server package:
// loopback only, no binary log, its data in <dir>/data and its socket at
// <dir>/sock (MariaDBSocket). Setup runs mariadb-install-db (seconds: start
// one server per test package); each start drops the anonymous accounts
// and (re)creates MariaDBUser, so a restart without data has it too.
// It is tuned for tests (no fsync, no doublewrite buffer, commits flushed
// to the OS once a second): its data survives a kill of the process, as
// the page cache keeps it, not a crash of the machine.
// extra is appended to mariadbd's command line (e.g. "--ssl-cert=...").
func MariaDB(extra ...string) (Spec, error) {
	mariadbd, err := Lookup("mariadb-server", "mariadbd", "/usr/sbin/mariadbd")
	if err != nil {
		return Spec{}, err
	}
	install, err := Lookup("mariadb-server", "mariadb-install-db", "/usr/bin/mariadb-install-db")
	if err != nil {
		return Spec{}, err
	}
	client, err := Lookup("mariadb-client", "mariadb", "/usr/bin/mariadb")
	if err != nil {
		return Spec{}, err
	}
	admin, err := Lookup("mariadb-client", "mariadb-admin", "/usr/bin/mariadb-admin")
	if err != nil {
		return Spec{}, err
	}
	var mu sync.Mutex
	var sock string // of the current start: Ready is given only the address
	return Spec{
		Name: "mariadb",
		Command: func(port int, dir string) []string {
			mu.Lock()
			sock = MariaDBSocket(dir)
			mu.Unlock()
			argv := []string{mariadbd, "--no-defaults", "--datadir=" + filepath.Join(dir, "data"),
				"--port=" + strconv.Itoa(port), "--bind-address=127.0.0.1",
				"--socket=" + MariaDBSocket(dir), "--user=root", "--skip-log-bin",
				"--pid-file=" + filepath.Join(dir, "mariadbd.pid"),
				"--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M",
				"--innodb-flush-log-at-trx-commit=2", "--innodb-flush-method=nosync",
				"--innodb-doublewrite=0", "--sync-frm=0", "--max-connections=1000",
				"--skip-name-resolve"}
			return append(argv, extra...)
		},
		Setup: func(port int, dir string) error {
			cmd := exec.Command(install, "--no-defaults", "--datadir="+filepath.Join(dir, "data"),
				"--user=root", "--auth-root-authentication-method=normal",
				"--skip-test-db")
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("mariadb-install-db: %v\n%s", err, out)
			}
			return nil
		},
		Ready: func(ctx context.Context, addr string) error {
			mu.Lock()
			s := sock
			mu.Unlock()
			if out, err := exec.CommandContext(ctx, admin, "--no-defaults", "-S", s, "-u", "root", "ping").CombinedOutput(); err != nil {
				return fmt.Errorf("mariadb-admin ping: %v: %s", err, bytes.TrimSpace(out))
			}
			return runSQL(ctx, client, s, mariaDBInit)
		},
		ReadyTimeout: 60e9,
	}, nil
}

// mariaDBInit is idempotent: it runs on every start.
var mariaDBInit = strings.Join([]string{
	"DELETE FROM mysql.global_priv WHERE User=''",
	"FLUSH PRIVILEGES",
	"CREATE USER IF NOT EXISTS '" + MariaDBUser + "'@'%' IDENTIFIED BY '" + MariaDBPassword + "'",
	"GRANT ALL PRIVILEGES ON *.* TO '" + MariaDBUser + "'@'%' WITH GRANT OPTION",
}, ";\n") + ";\n"

// MariaDBSocket is the unix socket of a MariaDB test server whose dir is dir.
func MariaDBSocket(dir string) string { return filepath.Join(dir, "sock") }

// StartMariaDB starts one mariadbd on a free port.
func StartMariaDB(extra ...string) (*Server, error) {
	spec, err := MariaDB(extra...)
	if err != nil {
		return nil, err
	}
	return Start(spec)
}

// MariaDBExec runs SQL statements as root on the MariaDB test server s,
// over its socket, and returns what the client printed (tab-separated,
// no column names).
func MariaDBExec(ctx context.Context, s *Server, sql string) (string, error) {
	client, err := Lookup("mariadb-client", "mariadb", "/usr/bin/mariadb")
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, client, "--no-defaults", "-S", MariaDBSocket(s.Dir), "-u", "root", "-N", "-B")
	cmd.Stdin = strings.NewReader(sql)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("testserver: mariadb: %v: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out.String(), nil
}

func runSQL(ctx context.Context, client, sock, sql string) error {
	cmd := exec.CommandContext(ctx, client, "--no-defaults", "-S", sock, "-u", "root")
	cmd.Stdin = strings.NewReader(sql)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mariadb: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}
