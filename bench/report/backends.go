package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/musterhq/muster/internal/testserver"
	"github.com/musterhq/muster/plugins/etcd"
	"github.com/musterhq/muster/plugins/file"
	"github.com/musterhq/muster/plugins/memcached"
	"github.com/musterhq/muster/plugins/mysql"
	"github.com/musterhq/muster/plugins/postgresql"
	"github.com/musterhq/muster/plugins/redis"
	"github.com/musterhq/muster/plugins/zookeeper"
	"github.com/musterhq/muster/servicegroup/driver"
)

// allBackends is every backend, in report order.
var allBackends = []string{"file", "redis", "memcached", "etcd", "zookeeper", "postgresql", "mysql"}

// backend is one backend under test: its server, how to get a fresh
// namespace on it, its in-process driver and its raw client.
type backend struct {
	name    string
	srv     *testserver.Server // nil for file
	tmp     string             // scratch dir of this run
	open    driver.Factory     // in-process
	native  bool               // native watch
	version string
}

func rnd() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// url returns a URL of a fresh, empty namespace.
func (b *backend) url(ctx context.Context) (string, error) {
	id := rnd()
	switch b.name {
	case "file":
		dir := filepath.Join(b.tmp, "file-"+id)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
		return "file://" + dir, nil
	case "redis":
		return "redis://" + b.srv.Addr() + "?namespace=b" + id, nil
	case "memcached":
		return "memcached://" + b.srv.Addr() + "?prefix=b" + id + ".", nil
	case "etcd":
		return "etcd://" + b.srv.Addr() + "/b-" + id, nil
	case "zookeeper":
		return "zookeeper://" + b.srv.Addr() + "/b-" + id, nil
	case "postgresql":
		if err := pgExec(ctx, b.srv, "CREATE SCHEMA b"+id); err != nil {
			return "", err
		}
		return testserver.PostgresURL(b.srv, "postgres") + "&search_path=b" + id, nil
	case "mysql":
		if err := myExec(ctx, b.srv, "", "CREATE DATABASE b"+id); err != nil {
			return "", err
		}
		return myURL(b.srv, "b"+id), nil
	}
	return "", fmt.Errorf("no backend %q", b.name)
}

// toozURL is the URL tooz uses for this backend with namespace ns (its
// data in the same place muster's toozCompatURL puts it).
func (b *backend) toozURL(ns string) string {
	switch b.name {
	case "file":
		return "file://" + filepath.Join(b.tmp, "tooz-"+ns)
	case "redis":
		return "redis://" + b.srv.Addr() + "?namespace=" + ns
	case "memcached":
		return "memcached://" + b.srv.Addr()
	case "etcd":
		return "etcd3://" + b.srv.Addr()
	case "zookeeper":
		return "zookeeper://" + b.srv.Addr()
	case "postgresql":
		return testserver.PostgresURL(b.srv, "postgres")
	case "mysql":
		return "mysql://" + testserver.MariaDBUser + ":" + testserver.MariaDBPassword + "@" + b.srv.Addr() + "/bench"
	}
	return ""
}

// toozCompatURL is a muster URL whose records tooz at toozURL(ns) reads
// (tooz's layout, no muster prefix), for backends that share tooz's
// layout; else a fresh URL.
func (b *backend) toozCompatURL(ctx context.Context, ns string) (string, error) {
	switch b.name {
	case "redis":
		return "redis://" + b.srv.Addr() + "?namespace=" + ns, nil
	case "memcached":
		return "memcached://" + b.srv.Addr(), nil
	case "etcd":
		return "etcd://" + b.srv.Addr(), nil
	case "zookeeper":
		return "zookeeper://" + b.srv.Addr(), nil
	}
	return b.url(ctx)
}

// toozMembership says whether tooz's driver for b has group membership
// (its SQL drivers have locks only).
func (b *backend) toozMembership() bool { return b.name != "postgresql" && b.name != "mysql" }

func myURL(s *testserver.Server, db string) string {
	return "mysql://" + testserver.MariaDBUser + ":" + testserver.MariaDBPassword + "@" + s.Addr() + "/" + db
}

func pgExec(ctx context.Context, s *testserver.Server, stmts ...string) error {
	c, err := pgx.Connect(ctx, testserver.PostgresURL(s, "postgres"))
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	for _, q := range stmts {
		if _, err := c.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

func myDB(s *testserver.Server, db string) (*sql.DB, error) {
	c := gomysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = testserver.MariaDBUser, testserver.MariaDBPassword, "tcp", s.Addr(), db
	c.Logger = &gomysql.NopLogger{}
	c.InterpolateParams = true // one round trip a statement, as the driver does
	conn, err := gomysql.NewConnector(c)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(conn), nil
}

func myExec(ctx context.Context, s *testserver.Server, db string, stmts ...string) error {
	d, err := myDB(s, db)
	if err != nil {
		return err
	}
	defer d.Close()
	for _, q := range stmts {
		if _, err := d.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// startBackends starts the servers of names at once and returns the
// backends; a server that fails to start is an error.
func startBackends(ctx context.Context, names []string, tmp string) ([]*backend, error) {
	out := make([]*backend, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		b := &backend{name: n, tmp: tmp}
		out[i] = b
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.start(ctx)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			stopBackends(out)
			return nil, fmt.Errorf("start %s: %w", names[i], err)
		}
	}
	return out, nil
}

func (b *backend) start(ctx context.Context) error {
	var err error
	switch b.name {
	case "file":
		b.open, b.version = file.Open, "-"
		return nil
	case "redis":
		b.open, b.native = redis.Open, true
		b.srv, err = testserver.StartRedis("--maxclients", "30000")
	case "memcached":
		b.open = memcached.Open
		b.srv, err = testserver.StartMemcached()
	case "etcd":
		b.open, b.native = etcd.Open, true
		b.srv, err = testserver.StartEtcd()
	case "zookeeper":
		b.open, b.native = zookeeper.Open, true
		b.srv, err = testserver.StartZooKeeper()
	case "postgresql":
		b.open, b.native = postgresql.Open, true
		b.srv, err = testserver.StartPostgres("-c", "max_connections=1200")
	case "mysql":
		b.open = mysql.Open
		b.srv, err = testserver.StartMariaDB("--max-connections=2000")
		if err == nil {
			err = myExec(ctx, b.srv, "", "CREATE DATABASE bench")
		}
	default:
		return fmt.Errorf("unknown backend %q (known: %s)", b.name, strings.Join(allBackends, ", "))
	}
	if err == nil {
		b.version = serverVersion(ctx, b)
	}
	return err
}

func stopBackends(bs []*backend) {
	for _, b := range bs {
		if b != nil && b.srv != nil {
			b.srv.Close()
		}
	}
}
