package testserver

import (
	"bufio"
	"context"
	"fmt"
	"net"
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
