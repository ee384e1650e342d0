package mysql_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/mysql"
	"github.com/musterhq/muster/servicegroup/driver"
)

// certDir holds the test server's TLS files (ca.pem, server.pem,
// server-key.pem) and a CA that signed nothing (other-ca.pem).
var certDir string

// writeCerts writes a CA and a server certificate for 127.0.0.1 into dir.
func writeCerts(dir string) error {
	ca, caKey, err := newCert(nil, nil, true)
	if err != nil {
		return err
	}
	srvCert, srvKey, err := newCert(ca, caKey, false)
	if err != nil {
		return err
	}
	other, _, err := newCert(nil, nil, true)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		return err
	}
	for name, block := range map[string]*pem.Block{
		"ca.pem":         {Type: "CERTIFICATE", Bytes: ca.Raw},
		"other-ca.pem":   {Type: "CERTIFICATE", Bytes: other.Raw},
		"server.pem":     {Type: "CERTIFICATE", Bytes: srvCert.Raw},
		"server-key.pem": {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func newCert(parent *x509.Certificate, parentKey *ecdsa.PrivateKey, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "muster test server"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	if isCA {
		tmpl.Subject.CommonName = "muster test CA"
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
		tmpl.IPAddresses, tmpl.DNSNames, tmpl.ExtKeyUsage = nil, nil, nil
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	return c, key, err
}

// TestTLS: an account that requires TLS gets in with each of the TLS
// option forms, not without TLS, and not with a CA that did not sign the
// server's certificate.
func TestTLS(t *testing.T) {
	db := newDB(t)
	addr := server(t).Addr()
	ctx := context.Background()
	user := "tls_" + db[2:]
	for _, q := range []string{
		"CREATE USER '" + user + "'@'%' IDENTIFIED BY 'tls-pw' REQUIRE SSL",
		"GRANT ALL ON " + db + ".* TO '" + user + "'@'%'",
	} {
		if _, err := admin.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	base := userURL(user, "tls-pw", addr, db)
	ca := url.QueryEscape(filepath.Join(certDir, "ca.pem"))
	other := url.QueryEscape(filepath.Join(certDir, "other-ca.pem"))
	for _, tc := range []struct {
		query, fail string // fail: a part of the expected error, "" for success
	}{
		{"ssl_ca=" + ca, ""},
		{"tls=true&tls_ca=" + ca, ""},
		{"tls=skip-verify", ""},
		{"ssl_verify_mode=none", ""},
		{"ssl_ca=" + ca + "&tls_server_name=wrong.example&ssl_check_hostname=false", ""},
		{"ssl_ca=" + ca + "&tls_server_name=wrong.example", "certificate"},
		{"ssl_ca=" + other, "certificate"},
		{"tls=false", "Access denied"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			d, err := mysql.Open(ctx, driver.Options{URL: base + "?" + tc.query, Member: "m", TTL: time.Minute})
			if tc.fail == "" {
				if err != nil {
					t.Fatal(err)
				}
				if err := d.Heartbeat(ctx); err != nil {
					t.Fatal(err)
				}
				_ = d.Close(ctx)
				return
			}
			if err == nil {
				d.Close(ctx)
				t.Fatalf("Open succeeded; want an error with %q", tc.fail)
			}
			if !strings.Contains(err.Error(), tc.fail) || strings.Contains(err.Error(), "tls-pw") {
				t.Fatalf("error %v; want one with %q and no password", err, tc.fail)
			}
			t.Log(err)
		})
	}
}
