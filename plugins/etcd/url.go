package etcd

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// config is what an etcd://, etcd3+http:// or etcd3+https:// URL says.
type config struct {
	endpoints []string // http(s)://host:port
	prefix    string   // "" or "/a/b": prepended to every key
	user      string
	pass      string
	timeout   time.Duration // per-request timeout; 0: the caller's context only
	tls       *tls.Config
	where     string // hosts + prefix, for messages (no secrets)
}

// defaultPort is etcd's client port.
const defaultPort = "2379"

// known lists the options a URL may carry. tooz's options that mean
// nothing here (lock_timeout, membership_timeout: our locks and members
// live on the session's lease, whose TTL is the member TTL) are accepted
// so a tooz URL works unchanged.
var known = map[string]string{
	"timeout":            "request timeout (seconds or a Go duration)",
	"ca_cert":            "PEM file of the CAs that sign the servers' certificates",
	"cert_cert":          "PEM file of the client certificate",
	"cert_key":           "PEM file of the client certificate's key",
	"api_version":        "tooz's etcd3gw API path (v3, v3beta, v3alpha): ignored, gRPC has none",
	"lock_timeout":       "tooz's lock lease TTL: ignored, locks live on the session's lease",
	"membership_timeout": "tooz's member lease TTL: ignored, the member TTL is the session's",
}

func knownList() string {
	ks := make([]string, 0, len(known))
	for k := range known {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

// parseURL reads etcd://host1:2379,host2:2379[/prefix][?options] and tooz's
// etcd3+http://host:port[?options] and etcd3+https://host:port[?options].
func parseURL(raw string) (config, error) {
	var c config
	u, err := url.Parse(raw)
	if err != nil {
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err
		}
		return c, fmt.Errorf("bad URL: %v", err)
	}
	scheme := strings.ToLower(u.Scheme)
	useTLS := false
	switch scheme {
	case "etcd", "etcd3", "etcd3+http": // etcd3: tooz's gRPC driver's scheme
	case "etcd3+https":
		useTLS = true
	default:
		return c, fmt.Errorf("scheme %q: want etcd://, etcd3://, etcd3+http:// or etcd3+https://", u.Scheme)
	}
	if u.User != nil {
		c.user = u.User.Username()
		var ok bool
		c.pass, ok = u.User.Password()
		if !ok || c.user == "" || c.pass == "" {
			return c, fmt.Errorf("credentials must be user:password")
		}
	}
	var hosts []string
	for _, h := range strings.Split(u.Host, ",") {
		if h = strings.TrimSpace(h); h == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(strings.Trim(h, "[]"), defaultPort)
		}
		hosts = append(hosts, h)
	}
	if len(hosts) == 0 {
		return c, fmt.Errorf("no host (want %s://host:2379[,host:2379]...)", scheme)
	}
	if p := strings.TrimRight(u.Path, "/"); p != "" {
		c.prefix = path.Clean("/" + p)
		if c.prefix == "/" {
			c.prefix = ""
		}
	}
	q := u.Query()
	for k, vs := range q {
		if _, ok := known[k]; !ok {
			return c, fmt.Errorf("unknown option %q (known: %s)", k, knownList())
		}
		v := vs[len(vs)-1]
		switch k {
		case "timeout":
			d, err := time.ParseDuration(v)
			if err != nil {
				f, ferr := strconv.ParseFloat(v, 64) // tooz: seconds
				if ferr != nil {
					return c, fmt.Errorf("timeout=%q: want seconds or a duration like 5s", v)
				}
				d = time.Duration(f * float64(time.Second))
			}
			if d <= 0 {
				return c, fmt.Errorf("timeout=%q must be positive", v)
			}
			c.timeout = d
		case "api_version":
			switch v {
			case "v3", "v3beta", "v3alpha":
			default:
				return c, fmt.Errorf("api_version=%q: want v3, v3beta or v3alpha", v)
			}
		}
	}
	ca, cert, key := q.Get("ca_cert"), q.Get("cert_cert"), q.Get("cert_key")
	if ca != "" || cert != "" || key != "" {
		if scheme == "etcd3+http" {
			return c, fmt.Errorf("TLS options with etcd3+http://: use etcd3+https://")
		}
		useTLS = true
	}
	if useTLS {
		if c.tls, err = tlsConfig(ca, cert, key); err != nil {
			return c, err
		}
	}
	proto := "http://"
	if useTLS {
		proto = "https://"
	}
	for _, h := range hosts {
		c.endpoints = append(c.endpoints, proto+h)
	}
	c.where = strings.Join(hosts, ",") + c.prefix
	return c, nil
}

// tlsConfig builds the client's TLS settings from tooz's option names:
// ca_cert (the system's CAs when absent), cert_cert and cert_key (a client
// certificate; both or neither).
func tlsConfig(ca, cert, key string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("ca_cert: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_cert %s: no PEM certificate", ca)
		}
		tc.RootCAs = pool
	}
	if (cert == "") != (key == "") {
		return nil, fmt.Errorf("cert_cert and cert_key go together (got only one)")
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("cert_cert/cert_key: %v", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}
