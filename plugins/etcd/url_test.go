package etcd

import (
	"strings"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url       string
		endpoints []string
		prefix    string
		user      string
		tls       bool
		timeout   time.Duration
	}{
		{url: "etcd://h1:2379,h2:2380", endpoints: []string{"http://h1:2379", "http://h2:2380"}},
		{url: "etcd://h1,h2/muster/x/", endpoints: []string{"http://h1:2379", "http://h2:2379"}, prefix: "/muster/x"},
		{url: "etcd://alice:s3cret@h1:2379/?timeout=3", endpoints: []string{"http://h1:2379"}, user: "alice", timeout: 3 * time.Second},
		{url: "etcd3+http://h1:4001?api_version=v3&timeout=500ms&lock_timeout=30&membership_timeout=30", endpoints: []string{"http://h1:4001"}, timeout: 500 * time.Millisecond},
		{url: "etcd3+https://h1", endpoints: []string{"https://h1:2379"}, tls: true},
		{url: "etcd3://h1", endpoints: []string{"http://h1:2379"}},
		{url: "etcd://[::1]:2379", endpoints: []string{"http://[::1]:2379"}},
	} {
		c, err := parseURL(tc.url)
		if err != nil {
			t.Errorf("parseURL(%q): %v", tc.url, err)
			continue
		}
		if strings.Join(c.endpoints, " ") != strings.Join(tc.endpoints, " ") || c.prefix != tc.prefix ||
			c.user != tc.user || (c.tls != nil) != tc.tls || c.timeout != tc.timeout {
			t.Errorf("parseURL(%q) = %+v", tc.url, c)
		}
	}
	for url, want := range map[string]string{
		"etcd://h1?bogus=1":                              `unknown option "bogus"`,
		"etcd:///x":                                      "no host",
		"redis://h1":                                     "scheme",
		"etcd://h1?timeout=never":                        "timeout",
		"etcd://alice@h1":                                "user:password",
		"etcd3+http://h1?ca_cert=/x.pem":                 "etcd3+https",
		"etcd://h1?ca_cert=/nonexistent/ca.pem":          "ca_cert",
		"etcd://h1?cert_cert=/nonexistent/c.pem":         "cert_key",
		"etcd3+http://h1?api_version=v2":                 "api_version",
		"etcd://h1?cert_cert=/n/c.pem&cert_key=/n/k.pem": "cert_cert/cert_key",
	} {
		_, err := parseURL(url)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseURL(%q): %v; want an error containing %q", url, err, want)
		}
	}
}
