package redis_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/musterhq/muster/internal/testserver"
	"github.com/musterhq/muster/plugins/host"
	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/driver"
)

// Fault tests: each starts servers of its own, since it kills or
// reconfigures them; the package's shared server is left alone.

const (
	faultBeat = 100 * time.Millisecond
	faultTTL  = time.Second
)

// openMode opens member on url in-process ("inprocess") or through the
// plugin ("plugin"), closed when t ends.
func openMode(t *testing.T, mode, url, member string) *servicegroup.ServiceGroup {
	t.Helper()
	cfg := servicegroup.Config{URL: url, Member: member, HeartbeatInterval: faultBeat, MemberTTL: faultTTL,
		WatchInterval: 50 * time.Millisecond, DialTimeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var sg *servicegroup.ServiceGroup
	var err error
	if mode == "plugin" {
		scheme, _, _ := strings.Cut(url, "://")
		sg, err = servicegroup.OpenDriver(ctx, cfg, scheme, host.Config{Dir: pluginDir}.Factory(scheme))
	} else {
		cfg.Mode = servicegroup.ModeInProcess
		sg, err = servicegroup.Open(ctx, cfg)
	}
	if err != nil {
		t.Fatalf("open %s (%s): %v", driver.Redact(url), mode, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = sg.Close(ctx)
	})
	return sg
}

func members(sg *servicegroup.ServiceGroup, group string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ms, err := sg.Members(ctx, group)
	if err != nil {
		return nil
	}
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	return ids
}

// waitFor polls cond every 10 ms until it holds, and returns how long that
// took; it fails t after within.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func startServer(t *testing.T, spec testserver.Spec, err error) *testserver.Server {
	t.Helper()
	if err != nil {
		testserver.Missing(t, err)
	}
	s, err := testserver.Start(spec)
	if err != nil {
		testserver.Missing(t, err)
	}
	s.LogOnFailure(t)
	t.Cleanup(s.Close)
	return s
}

// An empty restart of Redis under three joined members, each in its own
// plugin process, and a held lock: all three are listed again without any
// process being restarted, the lock is reported lost, and the next token
// is larger than every token before.
func TestEmptyRestart(t *testing.T) {
	spec, err := testserver.Redis()
	s := startServer(t, spec, err)
	url := "redis://" + s.Addr()
	ctx := context.Background()
	names := []string{"h1", "h2", "h3"}
	var sgs []*servicegroup.ServiceGroup
	for _, n := range names {
		sg := openMode(t, "plugin", url, n)
		if err := sg.JoinOrCreate(ctx, "compute", servicegroup.Capabilities{"host": n}); err != nil {
			t.Fatalf("join %s: %v", n, err)
		}
		sgs = append(sgs, sg)
	}
	l := sgs[0].Lock("l")
	tok, err := l.Acquire(ctx)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	waitFor(t, 5*time.Second, "all three listed", func() bool { return slices.Equal(members(sgs[1], "compute"), names) })

	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(false); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, 20*time.Second, "all three listed again after the empty restart", func() bool {
		return slices.Equal(members(sgs[1], "compute"), names)
	})
	t.Logf("all three listed again %v after the server was back (heartbeat %v)", took.Round(time.Millisecond), faultBeat)
	select {
	case <-l.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("the lock held across the empty restart was not reported lost")
	}
	tok2, err := sgs[2].Lock("l").Acquire(ctx)
	if err != nil {
		t.Fatalf("acquire after the restart: %v", err)
	}
	if tok2 <= tok {
		t.Fatalf("token after the empty restart %d; want > %d", tok2, tok)
	}
}

// Sentinel: the master is killed; after the failover every member is
// listed again and locks taken after it work, in-process and through the
// plugin.
func TestSentinelFailover(t *testing.T) {
	spec, err := testserver.Redis()
	master := startServer(t, spec, err)
	spec, err = testserver.Redis("--replicaof", "127.0.0.1", portOf(master.Addr()))
	replica := startServer(t, spec, err)
	spec, err = testserver.RedisSentinel("mymaster", master.Addr())
	sentinel := startServer(t, spec, err)
	url := "redis://" + sentinel.Addr() + "?sentinel=mymaster"
	ctx := context.Background()

	modes := map[string]string{"a": "inprocess", "b": "plugin", "c": "inprocess"}
	names := []string{"a", "b", "c"}
	sgs := map[string]*servicegroup.ServiceGroup{}
	for _, n := range names {
		sgs[n] = openMode(t, modes[n], url, n)
		if err := sgs[n].JoinOrCreate(ctx, "g", nil); err != nil {
			t.Fatalf("join %s: %v", n, err)
		}
	}
	waitFor(t, 5*time.Second, "all three listed", func() bool { return slices.Equal(members(sgs["c"], "g"), names) })
	before, err := sgs["a"].Lock("before").Acquire(ctx)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	// The sentinel must know the replica before the master dies.
	waitFor(t, 20*time.Second, "the sentinel knows the replica", func() bool {
		out, err := redisCLI(sentinel.Addr(), "SENTINEL", "REPLICAS", "mymaster")
		return err == nil && strings.Contains(out, portOf(replica.Addr()))
	})

	if err := master.Kill(); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, 30*time.Second, "the sentinel promotes the replica", func() bool {
		out, err := redisCLI(sentinel.Addr(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")
		return err == nil && strings.Contains(out, portOf(replica.Addr()))
	})
	t.Logf("failed over %v after the master was killed", took.Round(time.Millisecond))
	took = waitFor(t, 20*time.Second, "all three listed after the failover", func() bool {
		return slices.Equal(members(sgs["c"], "g"), names)
	})
	t.Logf("all three listed %v after the failover", took.Round(time.Millisecond))
	for _, n := range names {
		tok, err := sgs[n].Lock("after-" + n).Acquire(ctx)
		if err != nil {
			t.Fatalf("%s: acquire after the failover: %v", n, err)
		}
		if tok == 0 {
			t.Fatalf("%s: token 0", n)
		}
	}
	// The lock held across the failover: either still held (its key was
	// replicated) or reported lost, never both held and free.
	l := sgs["b"].Lock("before")
	if tok, err := l.TryAcquire(ctx); err == nil && tok <= before {
		t.Fatalf("a lock taken over after the failover got token %d; want > %d", tok, before)
	} else if err != nil && !errors.Is(err, servicegroup.ErrLockHeld) {
		t.Fatalf("TryAcquire after the failover: %v", err)
	}
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// TestTLS: rediss:// with a client certificate works in both modes, and a
// server the CA does not vouch for is one clear error naming the address.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca := writeCerts(t, dir, "ca", "server", "client")
	other := writeCerts(t, filepath.Join(dir, "other"), "ca", "client")
	spec, err := testserver.RedisTLS(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key"), ca)
	s := startServer(t, spec, err)
	q := "?ssl_ca_certs=" + ca + "&ssl_certfile=" + filepath.Join(dir, "client.pem") + "&ssl_keyfile=" + filepath.Join(dir, "client.key")
	url := "rediss://" + s.Addr() + q
	ctx := context.Background()
	for _, mode := range []string{"inprocess", "plugin"} {
		sg := openMode(t, mode, url, "m-"+mode)
		if err := sg.JoinOrCreate(ctx, "g", servicegroup.Capabilities{"tls": true}); err != nil {
			t.Fatalf("%s: join over TLS: %v", mode, err)
		}
		waitFor(t, 5*time.Second, mode+": listed over TLS", func() bool { return slices.Contains(members(sg, "g"), "m-"+mode) })
	}
	bad := "rediss://" + s.Addr() + "?ssl_ca_certs=" + other + "&ssl_certfile=" + filepath.Join(dir, "client.pem") +
		"&ssl_keyfile=" + filepath.Join(dir, "client.key")
	_, err = servicegroup.Open(ctx, servicegroup.Config{URL: bad, Member: "x", DialTimeout: 2 * time.Second, Mode: servicegroup.ModeInProcess})
	if err == nil || !strings.Contains(err.Error(), s.Addr()) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a server certificate from another CA: %v; want an error naming %s and the certificate", err, s.Addr())
	}
	t.Logf("a server certificate from another CA: %v", err)
}

// TestACL: a password/ACL user logs in; a wrong password is one error that
// names the address and never the password.
func TestACL(t *testing.T) {
	spec, err := testserver.Redis("--user", "default", "off", "--user", "nova", "on", ">s3cret", "~*", "&*", "+@all")
	s := startServer(t, spec, err)
	ctx := context.Background()
	for _, mode := range []string{"inprocess", "plugin"} {
		sg := openMode(t, mode, "redis://nova:s3cret@"+s.Addr(), "m-"+mode)
		if err := sg.JoinOrCreate(ctx, "g", nil); err != nil {
			t.Fatalf("%s: join as an ACL user: %v", mode, err)
		}
	}
	_, err = servicegroup.Open(ctx, servicegroup.Config{URL: "redis://nova:wrong-pw@" + s.Addr(), Member: "x", DialTimeout: 2 * time.Second,
		Mode: servicegroup.ModeInProcess})
	if err == nil || !strings.Contains(err.Error(), s.Addr()) || strings.Contains(err.Error(), "wrong-pw") ||
		!strings.Contains(strings.ToLower(err.Error()), "password") {
		t.Fatalf("a wrong password: %v; want an error naming %s and the password problem, without the password", err, s.Addr())
	}
	t.Logf("a wrong password: %v", err)
}

// writeCerts writes a CA (ca.pem) and, for each further name, a key pair
// it signed for 127.0.0.1 (name.pem, name.key) into dir. It returns the
// CA's path.
func writeCerts(t *testing.T, dir string, names ...string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "muster test CA " + dir},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", "CERTIFICATE", caDER)
	for i, n := range names[1:] {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: n},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		write(n+".pem", "CERTIFICATE", der)
		write(n+".key", "EC PRIVATE KEY", kder)
	}
	return filepath.Join(dir, "ca.pem")
}

// redisCLI runs one command on addr and returns its reply as text.
func redisCLI(addr string, args ...any) (string, error) {
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v, err := c.Do(ctx, args...).Result()
	return fmt.Sprint(v), err
}
