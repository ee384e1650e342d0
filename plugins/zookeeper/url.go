package zookeeper

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/musterhq/muster/servicegroup/driver"
)

// config is what a zookeeper:// (or kazoo://) URL says.
type config struct {
	hosts     []string // host:port
	chroot    string   // "" or "/a/b"
	namespace string   // tooz's namespace: "tooz"
	user      string
	pass      string
	hasAuth   bool
	timeout   time.Duration // 0: not given
	where     string        // hosts + chroot, for messages
}

// defaultTimeout is tooz's (kazoo's) default timeout.
const defaultTimeout = 10 * time.Second

// toozOptions are options tooz passes to kazoo that mean nothing here.
var toozOptions = map[string]bool{"connection_retry": true, "command_retry": true, "randomize_hosts": true, "handler": true}

func parseURL(raw string) (config, error) {
	var c config
	u, err := url.Parse(raw)
	if err != nil {
		return c, fmt.Errorf("bad URL %q", driver.Redact(raw))
	}
	if u.Scheme != "zookeeper" && u.Scheme != "kazoo" {
		return c, fmt.Errorf("URL %q: want zookeeper://host:port[,host:port]/[chroot]", driver.Redact(raw))
	}
	if u.User != nil {
		c.user = u.User.Username()
		c.pass, c.hasAuth = u.User.Password()
		if !c.hasAuth || c.user == "" {
			return c, fmt.Errorf("URL %q: credentials must be user:password", driver.Redact(raw))
		}
	}
	q := u.Query()
	hosts := strings.Split(u.Host, ",")
	for _, h := range q["hosts"] {
		hosts = append(hosts, strings.Split(h, ",")...)
	}
	for _, h := range hosts {
		if h = strings.TrimSpace(h); h == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(h, "2181")
		}
		c.hosts = append(c.hosts, h)
	}
	if len(c.hosts) == 0 {
		return c, fmt.Errorf("URL %q names no host", driver.Redact(raw))
	}
	if p := strings.TrimRight(u.Path, "/"); p != "" {
		c.chroot = path.Clean(p)
	}
	c.namespace = "tooz"
	for k, vs := range q {
		v := vs[len(vs)-1]
		switch {
		case k == "hosts":
		case k == "namespace":
			if v == "" || strings.Contains(v, "/") {
				return c, fmt.Errorf("URL %q: bad namespace %q", driver.Redact(raw), v)
			}
			c.namespace = v
		case k == "timeout":
			d, err := time.ParseDuration(v)
			if err != nil {
				f, ferr := strconv.ParseFloat(v, 64) // tooz: seconds
				if ferr != nil {
					return c, fmt.Errorf("URL %q: bad timeout %q (seconds, or a duration like 500ms)", driver.Redact(raw), v)
				}
				d = time.Duration(f * float64(time.Second))
			}
			if d <= 0 {
				return c, fmt.Errorf("URL %q: timeout %q must be positive", driver.Redact(raw), v)
			}
			c.timeout = d
		case toozOptions[k]:
		default:
			return c, fmt.Errorf("URL %q: unknown option %q (known: hosts, namespace, timeout)", driver.Redact(raw), k)
		}
	}
	c.where = strings.Join(c.hosts, ",") + c.chroot
	return c, nil
}
