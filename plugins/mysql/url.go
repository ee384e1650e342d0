package mysql

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
)

// defaultPort is MySQL's.
const defaultPort = "3306"

// lockWaitTimeout bounds every row-lock wait inside the server
// (innodb_lock_wait_timeout, whole seconds) and statementTimeout every
// statement (MariaDB's max_statement_time): no wait in the database
// outlives a caller by more than that, even one whose context was lost
// with its connection.
const (
	lockWaitTimeout  = 5
	statementTimeout = 10
)

// knownOptions are the query options a URL may carry (tooz's names
// included); any other is an error, so a typo is not silently ignored.
var knownOptions = map[string]bool{
	"tls": true, "tls_ca": true, "tls_cert": true, "tls_key": true, "tls_server_name": true,
	"ssl_ca": true, "ssl_capath": true, "ssl_cert": true, "ssl_key": true,
	"ssl_cipher": true, "ssl_verify_mode": true, "ssl_check_hostname": true,
	"unix_socket": true, "timeout": true,
}

// parseURL reads mysql://user:pass@host:port/db?options (tooz's form) into
// a driver configuration. The session settings every connection needs
// (UTC, bounded lock waits, found-rows counts) are set here.
func parseURL(raw string) (*gomysql.Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("bad URL: %v", err)
	}
	if u.Scheme != "mysql" && u.Scheme != "mariadb" {
		return nil, fmt.Errorf("scheme %q: want mysql or mariadb", u.Scheme)
	}
	if u.Opaque != "" {
		return nil, errors.New("bad URL: want mysql://user:pass@host:port/db")
	}
	q := u.Query()
	for k := range q {
		if !knownOptions[k] {
			return nil, fmt.Errorf("unknown option %q", k)
		}
	}
	c := gomysql.NewConfig()
	if u.User != nil {
		c.User = u.User.Username()
		c.Passwd, _ = u.User.Password()
	}
	c.DBName = strings.TrimPrefix(u.Path, "/")
	if c.DBName == "" {
		return nil, errors.New("no database in the URL path (mysql://user:pass@host:port/db)")
	}
	if strings.Contains(c.DBName, "/") {
		return nil, fmt.Errorf("database %q: a name without '/'", c.DBName)
	}
	if sock := q.Get("unix_socket"); sock != "" {
		c.Net, c.Addr = "unix", sock
	} else {
		if u.Hostname() == "" {
			return nil, errors.New("no host and no ?unix_socket=")
		}
		port := u.Port()
		if port == "" {
			port = defaultPort
		}
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return nil, fmt.Errorf("port %q: want 1-65535", port)
		}
		c.Net, c.Addr = "tcp", net.JoinHostPort(u.Hostname(), port)
	}
	if v := q.Get("timeout"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return nil, fmt.Errorf("timeout=%q: want seconds", v)
		}
		c.Timeout = time.Duration(f * float64(time.Second))
	}
	if c.TLS, err = tlsConfig(q, u.Hostname()); err != nil {
		return nil, err
	}
	c.ParseTime = true
	c.Loc = time.UTC
	c.ClientFoundRows = true // affected rows = matched rows: a renewal of an unchanged row counts
	c.CheckConnLiveness = true
	// Arguments are quoted by the client into one text query: without
	// this, each statement with arguments is a prepare, an execute and a
	// close, two round trips where one does. The driver refuses it (and
	// prepares) for the multi-byte charsets where quoting is unsafe; the
	// connection's charset here is the default utf8mb4.
	c.InterpolateParams = true
	c.Params = map[string]string{
		"time_zone":                "'+00:00'",
		"innodb_lock_wait_timeout": strconv.Itoa(lockWaitTimeout),
		"tx_isolation":             "'READ-COMMITTED'",
		"max_statement_time":       strconv.Itoa(statementTimeout),
	}
	return c, nil
}

// flavourParams are the session settings only one server flavour knows:
// MySQL has transaction_isolation and max_execution_time (ms, SELECTs
// only), MariaDB tx_isolation and max_statement_time (s).
func mysqlParams(c *gomysql.Config) {
	delete(c.Params, "tx_isolation")
	delete(c.Params, "max_statement_time")
	c.Params["transaction_isolation"] = "'READ-COMMITTED'"
	c.Params["max_execution_time"] = strconv.Itoa(statementTimeout * 1000)
}

// tlsConfig reads the TLS options: tls=true|false|skip-verify|preferred
// (go-sql-driver's values), tls_ca/ssl_ca (a PEM file of CAs, which turns
// TLS on), ssl_capath (a directory of them), tls_cert/ssl_cert and
// tls_key/ssl_key (a client certificate), ssl_check_hostname=false and
// ssl_verify_mode=none (tooz/PyMySQL's), tls_server_name. It returns nil
// for a plain connection.
func tlsConfig(q url.Values, host string) (*tls.Config, error) {
	pick := func(a, b string) string {
		if v := q.Get(a); v != "" {
			return v
		}
		return q.Get(b)
	}
	ca, capath := pick("tls_ca", "ssl_ca"), q.Get("ssl_capath")
	cert, key := pick("tls_cert", "ssl_cert"), pick("tls_key", "ssl_key")
	mode := strings.ToLower(q.Get("tls"))
	on := ca != "" || capath != "" || cert != ""
	verify, checkHost := true, true
	switch mode {
	case "":
	case "true", "1", "required":
		on = true
	case "false", "0", "disabled":
		if on {
			return nil, errors.New("tls=false with TLS files given")
		}
		return nil, nil
	case "skip-verify":
		on, verify = true, false
	case "preferred":
		return nil, errors.New("tls=preferred falls back to plaintext: use tls=true or tls=skip-verify")
	default:
		return nil, fmt.Errorf("tls=%q: want true, false or skip-verify", mode)
	}
	if v := strings.ToLower(q.Get("ssl_verify_mode")); v == "none" || v == "cert_none" {
		on, verify = true, false
	}
	if v := strings.ToLower(q.Get("ssl_check_hostname")); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("ssl_check_hostname=%q: want true or false", v)
		}
		checkHost = b
	}
	if !on {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if n := q.Get("tls_server_name"); n != "" {
		tc.ServerName = n
	}
	if ca != "" || capath != "" {
		pool := x509.NewCertPool()
		files := []string{}
		if ca != "" {
			files = append(files, ca)
		}
		if capath != "" {
			m, _ := filepath.Glob(filepath.Join(capath, "*"))
			files = append(files, m...)
		}
		n := 0
		for _, f := range files {
			pem, err := os.ReadFile(f)
			if err != nil {
				if f == ca {
					return nil, fmt.Errorf("ssl_ca: %v", err)
				}
				continue
			}
			if pool.AppendCertsFromPEM(pem) {
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("ssl_ca/ssl_capath %s: no PEM certificate", strings.Join(files, ", "))
		}
		tc.RootCAs = pool
	}
	if cert != "" || key != "" {
		if key == "" {
			key = cert
		}
		if cert == "" {
			return nil, errors.New("ssl_key without ssl_cert")
		}
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("ssl_cert/ssl_key: %v", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	switch {
	case !verify:
		tc.InsecureSkipVerify = true
	case !checkHost:
		// Verify the chain but not the name: Go has no switch for that,
		// so skip its check and redo the chain part by hand.
		roots := tc.RootCAs
		tc.InsecureSkipVerify = true
		tc.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			return verifyChain(raw, roots)
		}
	}
	return tc, nil
}

func verifyChain(raw [][]byte, roots *x509.CertPool) error {
	if len(raw) == 0 {
		return errors.New("server sent no certificate")
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return err
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
	return err
}
