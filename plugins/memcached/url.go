package memcached

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// config is what a memcached:// URL says.
type config struct {
	servers []string // host:port or a unix socket path
	addr    string   // for messages: the servers as the URL gave them
	prefix  string   // prepended to every key (muster's, not tooz's)
	timeout time.Duration
	pool    int
}

// maxPrefix bounds the prefix option, so names of MaxNameLen still fit in
// memcached's 250-byte keys.
const maxPrefix = 16

// parseURL reads memcached://[host[:port]][,host2[:port]...][?options], as
// tooz does, and memcached:///path/to/socket. tooz's options are accepted:
// timeout (seconds, the socket timeout), max_pool_size, and
// membership_timeout, lock_timeout, leader_timeout, which muster ignores
// (the session's TTL rules every record). prefix=<p> is muster's own.
func parseURL(raw string) (config, error) {
	var c config
	rest, ok := strings.CutPrefix(raw, "memcached://")
	if !ok {
		return c, fmt.Errorf("not a memcached:// URL")
	}
	rest, query, _ := strings.Cut(rest, "?")
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		return c, fmt.Errorf("a memcached URL takes no fragment")
	}
	if strings.Contains(rest, "@") {
		return c, fmt.Errorf("memcached has no users or passwords (SASL is not supported)")
	}
	c.addr = rest
	switch {
	case strings.HasPrefix(rest, "/"):
		c.servers = []string{rest}
	case rest == "":
		c.servers = []string{"localhost:11211"}
		c.addr = "localhost:11211"
	default:
		for _, h := range strings.Split(rest, ",") {
			if h == "" {
				return c, fmt.Errorf("empty server in %q", rest)
			}
			host, port, err := net.SplitHostPort(h)
			if err != nil {
				// No port: tooz's default.
				host, port = strings.Trim(h, "[]"), "11211"
			}
			if host == "" {
				host = "localhost"
			}
			if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
				return c, fmt.Errorf("bad port %q in %q", port, h)
			}
			c.servers = append(c.servers, net.JoinHostPort(host, port))
		}
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return c, fmt.Errorf("bad options %q: %v", query, err)
	}
	for k, vs := range q {
		v := vs[len(vs)-1]
		switch k {
		case "timeout":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f <= 0 {
				return c, fmt.Errorf("option timeout=%q: want a positive number of seconds", v)
			}
			c.timeout = time.Duration(f * float64(time.Second))
		case "max_pool_size":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return c, fmt.Errorf("option max_pool_size=%q: want a positive integer", v)
			}
			c.pool = n
		case "membership_timeout", "lock_timeout", "leader_timeout":
			if _, err := strconv.ParseFloat(v, 64); err != nil {
				return c, fmt.Errorf("option %s=%q: want a number of seconds", k, v)
			}
		case "prefix":
			if len(v) > maxPrefix || strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
				return c, fmt.Errorf("option prefix=%q: want at most %d printable ASCII bytes", v, maxPrefix)
			}
			c.prefix = v
		default:
			return c, fmt.Errorf("unknown option %q (known: timeout, max_pool_size, membership_timeout, lock_timeout, leader_timeout, prefix)", k)
		}
	}
	return c, nil
}
