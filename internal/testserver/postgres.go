package testserver

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"time"
)

// pgBin is where Debian's postgresql-15 keeps its server binaries.
const pgBin = "/usr/lib/postgresql/15/bin"

// pgHBA lets the superuser "postgres" in without a password (over the
// socket and loopback TCP) and asks every other role for its password, so
// tests can check a wrong password and a role without privileges.
const pgHBA = `local all all trust
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
`

// Postgres is the Spec of a PostgreSQL 15 server from Debian's postgresql
// package. PostgreSQL refuses to run as root, so initdb and postgres run
// as the user "postgres" (runuser), with the data in <dir>/data and the
// socket in <dir>/sock. The superuser is "postgres" (trusted from
// loopback); other roles authenticate with scram-sha-256. extra is
// appended to the postgres command line (e.g. "-c", "max_connections=50").
//
// Stop is `pg_ctl -m fast stop`. Kill (SIGKILL to the whole process
// group) ends the postmaster and its backends together; PostgresCrash is
// the package's own crash-like stop (`pg_ctl -m immediate stop`).
func Postgres(extra ...string) (Spec, error) {
	bin, err := Lookup("postgresql", filepath.Join(pgBin, "postgres"))
	if err != nil {
		return Spec{}, err
	}
	runuser, err := Lookup("util-linux", "runuser", "/usr/sbin/runuser", "/sbin/runuser")
	if err != nil {
		return Spec{}, err
	}
	asPG := func(argv ...string) []string {
		if os.Geteuid() != 0 {
			return argv
		}
		return append([]string{runuser, "-u", "postgres", "--"}, argv...)
	}
	return Spec{
		Name: "postgresql",
		Command: func(port int, dir string) []string {
			argv := asPG(bin, "-D", filepath.Join(dir, "data"), "-p", strconv.Itoa(port),
				"-k", filepath.Join(dir, "sock"), "-c", "listen_addresses=127.0.0.1",
				"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=400",
				"-c", "shared_buffers=32MB", "-c", "log_min_messages=warning")
			return append(argv, extra...)
		},
		Setup: func(port int, dir string) error {
			return pgSetup(dir, asPG)
		},
		Ready: func(ctx context.Context, addr string) error {
			host, port := splitAddr(addr)
			out, err := exec.CommandContext(ctx, filepath.Join(pgBin, "pg_isready"),
				"-q", "-h", host, "-p", port, "-U", "postgres").CombinedOutput()
			if err != nil {
				return fmt.Errorf("pg_isready: %v %s", err, out)
			}
			return nil
		},
		ReadyTimeout: time.Minute,
		Stop: func(s *Server) error {
			return pgCtl(s, "fast")
		},
	}, nil
}

// StartPostgres starts one PostgreSQL server on a free port.
func StartPostgres(extra ...string) (*Server, error) {
	spec, err := Postgres(extra...)
	if err != nil {
		return nil, err
	}
	return Start(spec)
}

// PostgresCrash stops s the way a crash would (`pg_ctl -m immediate
// stop`: no checkpoint, backends end at once, recovery on the next start)
// and waits for it to exit.
func PostgresCrash(s *Server) error {
	if !s.Running() {
		return nil
	}
	if err := pgCtl(s, "immediate"); err != nil {
		_ = s.Kill()
		return err
	}
	return s.signal(0, 15*time.Second)
}

// PostgresURL is a URL of database db on s as the superuser postgres.
func PostgresURL(s *Server, db string) string {
	return "postgresql://postgres@" + s.Addr() + "/" + db + "?sslmode=disable"
}

// PostgresSocketDir is the directory of s's unix socket.
func PostgresSocketDir(s *Server) string { return filepath.Join(s.Dir, "sock") }

// pgCtl runs `pg_ctl -m mode stop` on s's data dir, as user postgres.
func pgCtl(s *Server, mode string) error {
	argv := []string{filepath.Join(pgBin, "pg_ctl"), "-D", filepath.Join(s.Dir, "data"), "-m", mode, "-w", "-t", "15", "stop"}
	if os.Geteuid() == 0 {
		argv = append([]string{"runuser", "-u", "postgres", "--"}, argv...)
	}
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("testserver: pg_ctl -m %s stop: %v: %s", mode, err, out)
	}
	return nil
}

func pgSetup(dir string, asPG func(...string) []string) error {
	sock := filepath.Join(dir, "sock")
	if err := os.MkdirAll(sock, 0o755); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		pg, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("user postgres: %w", err)
		}
		uid, _ := strconv.Atoi(pg.Uid)
		gid, _ := strconv.Atoi(pg.Gid)
		for _, d := range []string{dir, sock} {
			if err := os.Chown(d, uid, gid); err != nil {
				return err
			}
		}
	}
	argv := asPG(filepath.Join(pgBin, "initdb"), "-D", filepath.Join(dir, "data"),
		"-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %v: %s", err, out)
	}
	hba := filepath.Join(dir, "data", "pg_hba.conf")
	if err := os.WriteFile(hba, []byte(pgHBA), 0o600); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		pg, _ := user.Lookup("postgres")
		uid, _ := strconv.Atoi(pg.Uid)
		gid, _ := strconv.Atoi(pg.Gid)
		return os.Chown(hba, uid, gid)
	}
	return nil
}

func splitAddr(addr string) (host, port string) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[:i], addr[i+1:]
		}
	}
	return addr, ""
}
