package postgresql

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// Session defaults, set on every connection unless the URL sets them
// (e.g. ?lock_timeout=5s): no statement and no lock wait inside the
// server outlives a caller for long, even if its cancel request is lost.
var runtimeDefaults = map[string]string{
	"application_name":                    "muster",
	"statement_timeout":                   "10s",
	"lock_timeout":                        "2s",
	"idle_in_transaction_session_timeout": "10s",
}

// defaultMaxConns is the pool size unless ?pool_max_conns= says otherwise:
// sessions of one process on one URL share a pool, so 200 heartbeating
// members need no 200 connections.
const defaultMaxConns = 8

// poolConfig parses a postgresql:// or postgres:// URL (or pgx's
// keyword/value form) into a connection config and a pool size. pgx reads
// the standard options: sslmode, sslrootcert, sslcert, sslkey,
// sslpassword, host= (a unix socket directory), dbname=,
// connect_timeout, ...; muster reads pool_max_conns; any other option is
// sent to the server as a run-time parameter (search_path=...).
func poolConfig(raw string, dial time.Duration) (*pgx.ConnConfig, int, error) {
	maxConns := defaultMaxConns
	raw = socketHost(raw)
	if i := strings.Index(raw, "://"); i >= 0 {
		switch strings.ToLower(raw[:i]) {
		case "postgresql", "postgres":
		default:
			return nil, 0, fmt.Errorf("scheme %q: want postgresql or postgres", raw[:i])
		}
		u, err := url.Parse(raw)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return nil, 0, fmt.Errorf("bad URL: %v", err)
		}
		q := u.Query()
		if v := q.Get("pool_max_conns"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return nil, 0, fmt.Errorf("pool_max_conns=%q: want a positive number", v)
			}
			maxConns = n
			q.Del("pool_max_conns")
			u.RawQuery = q.Encode()
			raw = u.String()
		}
	}
	cc, err := pgx.ParseConfig(raw)
	if err != nil {
		return nil, 0, fmt.Errorf("bad URL: %v", parseErr(err))
	}
	if dial > 0 && (cc.ConnectTimeout == 0 || cc.ConnectTimeout > dial) {
		cc.ConnectTimeout = dial
	}
	for k, v := range runtimeDefaults {
		if _, ok := cc.RuntimeParams[k]; !ok {
			cc.RuntimeParams[k] = v
		}
	}
	// A cancelled context sends the server a cancel request (a waiting
	// statement ends there, not only here), then drops the connection if
	// the server does not answer within a second.
	cc.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: time.Second}
	}
	return cc, maxConns, nil
}

// socketHost rewrites libpq's unix-socket form, the socket directory as
// an escaped host (postgresql://%2Fvar%2Frun%2Fpostgresql:5432/db), which
// Go's URL parser refuses, into the equivalent ?host=/var/run/postgresql.
func socketHost(raw string) string {
	i := strings.Index(raw, "://")
	if i < 0 {
		return raw
	}
	rest := raw[i+3:]
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	auth, tail := rest[:end], rest[end:]
	user := ""
	if at := strings.LastIndex(auth, "@"); at >= 0 {
		user, auth = auth[:at+1], auth[at+1:]
	}
	if !strings.HasPrefix(strings.ToLower(auth), "%2f") {
		return raw
	}
	host, port := auth, ""
	if c := strings.LastIndex(auth, ":"); c >= 0 {
		host, port = auth[:c], auth[c+1:]
	}
	dir, err := url.PathUnescape(host)
	if err != nil {
		return raw
	}
	path, query, _ := strings.Cut(tail, "?")
	q := "host=" + url.QueryEscape(dir)
	if port != "" {
		q += "&port=" + url.QueryEscape(port)
	}
	if query != "" {
		q += "&" + query
	}
	if path == "" {
		path = "/"
	}
	return raw[:i+3] + user + path + "?" + q
}

// parseErr drops pgx's quoting of the whole (secret-bearing) string:
// "cannot parse `...`: why" becomes "why".
func parseErr(err error) error {
	msg := err.Error()
	if i := strings.LastIndex(msg, "`: "); i >= 0 {
		return errors.New(msg[i+3:])
	}
	return errors.New("cannot parse the connection string")
}
