package redis

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// config is what a backend URL says.
type config struct {
	addr      string // host:port, or a unix socket path
	network   string // "tcp" or "unix"
	user      string
	password  string
	db        int
	namespace string
	toozTTL   time.Duration // membership_timeout: the TTL assumed for tooz's beat keys
	timeout   time.Duration // socket timeout; 0 means go-redis's default
	tls       *tls.Config
	sentinel  string   // master name
	sentinels []string // sentinel addresses, the URL's host first
}

// defaultNamespace is tooz's.
const defaultNamespace = "_tooz"

// parseURL reads redis://[user:pass@]host:port[/db][?options],
// rediss://... (TLS) and redis:///path/to/socket (tooz's unix form).
func parseURL(raw string) (*config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("bad URL: %v", strings.TrimPrefix(err.Error(), "parse "+strconv.Quote(raw)+": "))
	}
	c := &config{namespace: defaultNamespace, toozTTL: 30 * time.Second, network: "tcp"}
	switch u.Scheme {
	case "redis", "rediss":
	default:
		return nil, fmt.Errorf("scheme %q: want redis or rediss", u.Scheme)
	}
	q := u.Query()
	if u.User != nil {
		c.user = u.User.Username()
		c.password, _ = u.User.Password()
	}
	if q.Has("password") { // redis-py's option
		c.password = q.Get("password")
	}
	path := strings.TrimPrefix(u.Path, "/")
	if u.Host == "" {
		if u.Path == "" {
			return nil, fmt.Errorf("no host and no socket path")
		}
		c.network, c.addr = "unix", u.Path
	} else {
		host, port := u.Hostname(), u.Port()
		if port == "" {
			port = "6379"
		}
		c.addr = net.JoinHostPort(host, port)
		if path != "" {
			if c.db, err = strconv.Atoi(path); err != nil || c.db < 0 {
				return nil, fmt.Errorf("database %q: want a number", path)
			}
		}
	}
	if v := q.Get("db"); v != "" {
		if c.db, err = strconv.Atoi(v); err != nil || c.db < 0 {
			return nil, fmt.Errorf("db=%q: want a number", v)
		}
	}
	if v := q.Get("namespace"); v != "" {
		c.namespace = v
	}
	for _, o := range []struct {
		key string
		dst *time.Duration
	}{{"membership_timeout", &c.toozTTL}, {"timeout", &c.timeout}, {"socket_timeout", &c.timeout}} {
		if v := q.Get(o.key); v != "" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f <= 0 {
				return nil, fmt.Errorf("%s=%q: want seconds", o.key, v)
			}
			*o.dst = time.Duration(f * float64(time.Second))
		}
	}
	useTLS := u.Scheme == "rediss"
	if v := q.Get("ssl"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("ssl=%q: want true or false", v)
		}
		useTLS = useTLS || b
	}
	if useTLS {
		if c.tls, err = tlsConfig(q, u.Hostname()); err != nil {
			return nil, err
		}
	}
	if m := q.Get("sentinel"); m != "" {
		c.sentinel = m
		c.sentinels = append([]string{c.addr}, q["sentinel_fallback"]...)
	}
	return c, nil
}

// tlsConfig builds the client's TLS settings from redis-py's option names:
// ssl_ca_certs (a PEM file of CAs; the system's when absent),
// ssl_certfile and ssl_keyfile (a client certificate), ssl_cert_reqs=none
// (no verification: for tests only).
func tlsConfig(q url.Values, host string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if ca := q.Get("ssl_ca_certs"); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("ssl_ca_certs: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ssl_ca_certs %s: no PEM certificate", ca)
		}
		tc.RootCAs = pool
	}
	cert, key := q.Get("ssl_certfile"), q.Get("ssl_keyfile")
	if cert != "" || key != "" {
		if key == "" {
			key = cert
		}
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("ssl_certfile/ssl_keyfile: %v", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	if strings.EqualFold(q.Get("ssl_cert_reqs"), "none") {
		tc.InsecureSkipVerify = true
	}
	return tc, nil
}

// client opens a go-redis client for c.
func (c *config) client(dial time.Duration) goredis.UniversalClient {
	if c.sentinel != "" {
		return goredis.NewFailoverClient(&goredis.FailoverOptions{
			MasterName:    c.sentinel,
			SentinelAddrs: c.sentinels,
			Username:      c.user,
			Password:      c.password,
			DB:            c.db,
			TLSConfig:     c.tls,
			DialTimeout:   dial,
			ReadTimeout:   c.timeout,
			WriteTimeout:  c.timeout,
			MaxRetries:    1,
		})
	}
	return goredis.NewClient(&goredis.Options{
		Network:      c.network,
		Addr:         c.addr,
		Username:     c.user,
		Password:     c.password,
		DB:           c.db,
		TLSConfig:    c.tls,
		DialTimeout:  dial,
		ReadTimeout:  c.timeout,
		WriteTimeout: c.timeout,
		MaxRetries:   1,
	})
}
