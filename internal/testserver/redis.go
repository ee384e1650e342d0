package testserver

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Redis is the Spec of a plain redis-server from Debian's redis-server
// package: loopback only, no persistence (so every Restart loses the data,
// whatever keepData says). extra is appended to its command line (e.g.
// "--requirepass", "secret").
func Redis(extra ...string) (Spec, error) {
	bin, err := Lookup("redis-server", "redis-server", "/usr/bin/redis-server")
	if err != nil {
		return Spec{}, err
	}
	return Spec{
		Name: "redis",
		Command: func(port int, dir string) []string {
			argv := []string{bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
				"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no"}
			return append(argv, extra...)
		},
		Ready: redisReady,
	}, nil
}

// StartRedis starts one plain redis-server on a free port.
func StartRedis(extra ...string) (*Server, error) {
	spec, err := Redis(extra...)
	if err != nil {
		return nil, err
	}
	return Start(spec)
}

// redisReady sends PING and wants +PONG, or an authentication error: a
// server that asks for a password is up all the same.
func redisReady(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.HasPrefix(line, "+PONG") || strings.HasPrefix(line, "-NOAUTH") {
		return nil
	}
	return fmt.Errorf("redis answered %q to PING", strings.TrimSpace(line))
}

// RedisTLS is the Spec of a redis-server that speaks only TLS on its port,
// with the server certificate and key in certFile and keyFile; clients
// must present a certificate signed by the CAs in caFile.
func RedisTLS(certFile, keyFile, caFile string, extra ...string) (Spec, error) {
	spec, err := Redis()
	if err != nil {
		return Spec{}, err
	}
	plain := spec.Command
	spec.Name = "redis-tls"
	spec.Command = func(port int, dir string) []string {
		argv := plain(port, dir)
		// --port 0 turns the plain port off; the TLS one takes its place.
		argv = append(argv, "--port", "0", "--tls-port", strconv.Itoa(port),
			"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", caFile,
			"--tls-auth-clients", "yes")
		return append(argv, extra...)
	}
	spec.Ready = DialReady // a TLS handshake needs the client's certificate
	return spec, nil
}

// RedisSentinel is the Spec of a redis-sentinel watching the master named
// master at masterAddr, with a quorum of one and short timeouts, so a
// killed master is failed over within a few seconds.
func RedisSentinel(master, masterAddr string) (Spec, error) {
	// redis-server --sentinel is redis-sentinel (Debian's redis-sentinel
	// package only adds the service).
	bin, err := Lookup("redis-server", "redis-server", "/usr/bin/redis-server")
	if err != nil {
		return Spec{}, err
	}
	host, mport, err := net.SplitHostPort(masterAddr)
	if err != nil {
		return Spec{}, err
	}
	conf := func(dir string) string { return filepath.Join(dir, "sentinel.conf") }
	return Spec{
		Name: "redis-sentinel",
		// Sentinel rewrites its config file: one of its own, in its dir.
		Setup: func(port int, dir string) error {
			return os.WriteFile(conf(dir), []byte(fmt.Sprintf("bind 127.0.0.1\nport %d\ndir %s\n"+
				"sentinel monitor %s %s %s 1\n"+
				"sentinel down-after-milliseconds %s 1000\n"+
				"sentinel failover-timeout %s 3000\n",
				port, dir, master, host, mport, master, master)), 0o644)
		},
		Command: func(port int, dir string) []string { return []string{bin, conf(dir), "--sentinel"} },
		Ready:   redisReady,
	}, nil
}
