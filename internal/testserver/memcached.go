package testserver

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/user"
	"strconv"
	"strings"
)

// Memcached is the Spec of a memcached from Debian's memcached package:
// TCP only, 64 MiB of memory, run as user memcache (nobody when that user
// does not exist), since memcached refuses to run as root. It keeps nothing
// on disk, so every Restart is a restart without data, whatever keepData
// says.
func Memcached() (Spec, error) {
	bin, err := Lookup("memcached", "memcached", "/usr/bin/memcached")
	if err != nil {
		return Spec{}, err
	}
	runAs := "memcache"
	if _, err := user.Lookup(runAs); err != nil {
		runAs = "nobody"
	}
	return Spec{
		Name: "memcached",
		Command: func(port int, dir string) []string {
			return []string{bin, "-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-m", "64", "-u", runAs}
		},
		Ready: memcachedReady,
	}, nil
}

// StartMemcached starts one memcached on a free port.
func StartMemcached() (*Server, error) {
	spec, err := Memcached()
	if err != nil {
		return nil, err
	}
	return Start(spec)
}

// memcachedReady sends "version" and wants "VERSION ..." back.
func memcachedReady(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Write([]byte("version\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "VERSION") {
		return fmt.Errorf("memcached answered %q to version", strings.TrimSpace(line))
	}
	return nil
}
