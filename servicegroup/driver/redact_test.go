package driver

import (
	"net/url"
	"strings"
	"testing"
)

// Every userinfo and every credential-like query value is hidden, with or
// without a scheme, parseable or not; host, port, path and other options
// stay readable so errors still name the address.
func TestRedactSecrets(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		// userinfo, with a scheme
		{"redis://user:secret@host:6379/0", "redis://user:xxxxx@host:6379/0"},
		{"redis://:secret@host:6379", "redis://:xxxxx@host:6379"},
		{"https://ghp_secret@github.com/x", "https://xxxxx@github.com/x"},
		{"redis://u:sec%zz@host", "redis://xxxxx@host"},
		{"redis://u:se/cret@host:1/x", "redis://xxxxx@host:1/x"},
		{"redis://u:se#cret@host:1", "redis://xxxxx@host:1"},
		{"redis://u:pa?ss@host", "redis://xxxxx@host"},
		{"redis://us@r:secret@host", "redis://xxxxx@host"},
		{"zk://u:secret@h1:2181,h2:2181/app", "zk://u:xxxxx@h1:2181,h2:2181/app"},
		// userinfo, without a scheme
		{"u:secret@h", "u:xxxxx@h"},
		{"u:secret@h:1/x", "u:xxxxx@h:1/x"},
		{"//u:p@h", "//u:xxxxx@h"},
		{"//u:p@h:1/x?db=2", "//u:xxxxx@h:1/x?db=2"},
		{":secret@h", "xxxxx@h"},
		{"redis:u:secret@h", "redis:xxxxx@h"},
		// a nested URL in a query value
		{"file:///d?next=http://u:secret@h", "file:///d?next=http://u:xxxxx@h"},
		// query values
		{"postgres://h/db?password=secret&x=1", "postgres://h/db?password=xxxxx&x=1"},
		{"postgres://h/db?sslpassword=secret&sslmode=verify-full", "postgres://h/db?sslpassword=xxxxx&sslmode=verify-full"},
		{"mysql://h/db?passwd=secret", "mysql://h/db?passwd=xxxxx"},
		{"x://h?pwd=secret", "x://h?pwd=xxxxx"},
		{"x://h?PASS=secret", "x://h?PASS=xxxxx"},
		{"x://h?Auth=secret&db=0", "x://h?Auth=xxxxx&db=0"},
		{"x://h?auth_token=secret", "x://h?auth_token=xxxxx"},
		{"x://h?access_key=secret&region=eu", "x://h?access_key=xxxxx&region=eu"},
		{"x://h?api_key=secret", "x://h?api_key=xxxxx"},
		{"x://h?apiKey=secret", "x://h?apiKey=xxxxx"},
		{"x://h?key=secret", "x://h?key=xxxxx"},
		{"x://h?secret_key=secret", "x://h?secret_key=xxxxx"},
		{"x://h?client_secret=secret", "x://h?client_secret=xxxxx"},
		{"x://h?credentials=secret", "x://h?credentials=xxxxx"},
		{"x://h?X-Amz-Signature=secret&X-Amz-Expires=60", "x://h?X-Amz-Signature=xxxxx&X-Amz-Expires=60"},
		{"x://h?sig=secret", "x://h?sig=xxxxx"},
		{"x://h?pass%77ord=secret", "x://h?pass%77ord=xxxxx"},
		{"x://h?password=se;cr#et&db=1", "x://h?password=xxxxx&db=1"},
		{"x://h?a=1;password=secret", "x://h?a=1;password=xxxxx"},
		{"x://h/db;password=secret", "x://h/db;password=xxxxx"},
		{"mongodb://h/?tlsCertificateKeyFilePassword=secret&authSource=admin", "mongodb://h/?tlsCertificateKeyFilePassword=xxxxx&authSource=admin"},
		{"mongodb://h/?authMechanismProperties=AWS_SESSION_TOKEN:secret", "mongodb://h/?authMechanismProperties=xxxxx"},
		{"h:1?token=secret", "h:1?token=xxxxx"},
		{"token=secret", "token=xxxxx"},
		// both, unparseable
		{"redis://u:p%zz@h?password=secret%zz", "redis://xxxxx@h?password=xxxxx"},
		{"x://h:bad port?token=secret", "x://h:bad port?token=xxxxx"},
		// key file paths stay readable; they are not secrets
		{"postgres://h/db?sslkey=/etc/k.pem&sslcert=/etc/c.pem", "postgres://h/db?sslkey=/etc/k.pem&sslcert=/etc/c.pem"},
		{"etcd://h:2379?tls_key=/etc/k.pem", "etcd://h:2379?tls_key=/etc/k.pem"},
		{"mongodb://h/?tlsCertificateKeyFile=/etc/k.pem", "mongodb://h/?tlsCertificateKeyFile=/etc/k.pem"},
		// nothing secret: unchanged
		{"file:///var/lib/muster", "file:///var/lib/muster"},
		{"file:///var/lib/a@b", "file:///var/lib/a@b"},
		{"memory://test", "memory://test"},
		{"postgres://h/db?user=a@b.example&sslmode=disable", "postgres://h/db?user=a@b.example&sslmode=disable"},
		{"etcd://h1:2379,h2:2379/prefix?dial_timeout=5s", "etcd://h1:2379,h2:2379/prefix?dial_timeout=5s"},
		{"", ""},
	} {
		if got := Redact(c.in); got != c.want {
			t.Errorf("Redact(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// credentialKeys are query keys whose values FuzzRedact plants a secret in.
var credentialKeys = []string{
	"password", "sslpassword", "passwd", "pass", "pwd", "secret", "client_secret",
	"token", "auth", "auth_token", "access_key", "api_key", "apikey", "key",
	"secret_key", "credential", "creds", "signature", "sig", "x-amz-security-token",
}

// FuzzRedact plants a secret (a marker plus fuzzed bytes) as a password, a
// bare userinfo or a credential query value among fuzzed other parts, and
// checks that it never survives; any input at all must not panic.
func FuzzRedact(f *testing.F) {
	f.Add("redis", "user", "host:6379", "/0", "x=1", "s3", uint8(0))
	f.Add("postgres", "", "h", "/db", "sslmode=disable", "a b&c=d", uint8(3))
	f.Add("", "u", "h:1", "/x", "", "", uint8(1))
	f.Add("zk", "u@v", "h1:1,h2:2", "/chroot", "next=http://x", "?#/@:", uint8(4))
	f.Add("a?b=c", "x://y", "a@b", "?q=1@z", "token", "%zz", uint8(2))
	const marker = "Q7S3CR3TzQ"
	f.Fuzz(func(t *testing.T, scheme, user, host, rest, other, sec string, mode uint8) {
		// Any input: no panic.
		_ = Redact(scheme + user + host + rest + other + sec)
		parts := strings.ToLower(scheme + user + host + rest + other)
		if strings.Contains(parts, strings.ToLower(marker)) {
			return // the marker must be the planted secret only
		}
		// A raw '?' ends the authority, as in every URL parser; passwords
		// with one must be escaped (and are, by url.UserPassword).
		user = strings.ReplaceAll(user, "?", "")
		secret := marker + sec
		key := credentialKeys[int(mode)%len(credentialKeys)]
		if mode&0x40 != 0 {
			key = strings.ToUpper(key)
		}
		seps := "?&;"
		sep := string(seps[int(mode>>2)%len(seps)])
		var in string
		switch mode % 7 {
		case 0: // scheme://user:secret@host...
			in = scheme + "://" + user + ":" + escUserinfo(secret) + "@" + host + rest
		case 1: // no scheme
			in = user + ":" + escUserinfo(secret) + "@" + host + rest
		case 2: // //user:secret@host
			in = "//" + user + ":" + escUserinfo(secret) + "@" + host + rest
		case 3: // a bare token as userinfo
			in = scheme + "://" + url.User(secret).String() + "@" + host + rest
		case 4: // a credential query value, last
			in = scheme + "://" + host + rest + sep + key + "=" + url.QueryEscape(secret)
		case 5: // a credential query value among others
			in = scheme + "://" + host + rest + sep + key + "=" + url.QueryEscape(secret) + "&" + other
		case 6: // both, the raw (unescaped) secret in the query
			in = scheme + "://" + user + ":" + escUserinfo(secret) + "@" + host + rest + sep + key + "=" + strings.NewReplacer("&", "", "#", "").Replace(secret) + "&" + other
		}
		out := Redact(in)
		if strings.Contains(strings.ToLower(out), strings.ToLower(marker)) {
			t.Fatalf("Redact(%q) = %q: the secret survived", in, out)
		}
	})
}

// escUserinfo escapes a password as url.UserPassword would.
func escUserinfo(p string) string {
	s := url.UserPassword("u", p).String()
	return strings.TrimPrefix(s, "u:")
}
