package driver

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
)

var (
	registryMu sync.RWMutex
	registry   = map[string]Factory{}
)

// Register makes a backend available in-process under a URL scheme, as
// database/sql drivers do. Backend packages call it from init. Registering a
// scheme twice panics: that is a programming error, not input.
func Register(scheme string, f Factory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[scheme]; dup {
		panic("driver: Register called twice for scheme " + scheme)
	}
	registry[scheme] = f
}

// Lookup returns the in-process factory registered for scheme.
func Lookup(scheme string) (Factory, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	f, ok := registry[scheme]
	return f, ok
}

// Schemes lists the registered schemes, sorted.
func Schemes() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]string, 0, len(registry))
	for s := range registry {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Scheme returns the scheme of a backend URL ("file" for
// "file:///var/lib/muster"), or an error naming the URL (redacted).
func Scheme(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("backend URL %q: %v", Redact(rawURL), redactErr(err))
	}
	if u.Scheme == "" {
		return "", fmt.Errorf("backend URL %q has no scheme (e.g. file:///var/lib/muster)", Redact(rawURL))
	}
	return strings.ToLower(u.Scheme), nil
}

// Redact hides the secrets of a backend URL, for logs and messages, and
// keeps the rest (scheme, host, port, path, other options) readable so an
// error still names the address. It works on the text, so it needs no
// well-formed URL:
//
//   - Every userinfo is hidden: the one after "scheme://", after a leading
//     "//", at the start of a URL without a scheme ("u:secret@h:1/x"), and
//     in a URL nested in the query. Its end is the last '@' before the
//     query; a raw '?' in a password extends it when an '@' follows before
//     any '=' or '&'. The username stays when the URL parses and the
//     username is plain ("redis://user:xxxxx@h"); otherwise, and for a
//     userinfo with no ':' (a bare token), the whole userinfo is "xxxxx". A
//     text before '@' with a '/' but no ':' is a path, not a userinfo.
//   - Every query (or ';'-separated) value whose key looks like a
//     credential is hidden, up to the next '&': keys that contain, in any
//     case, "pass" (password, passwd, sslpassword), "pwd", "secret",
//     "token", "auth" (but authSource and authMechanism name no secret),
//     "cred", "signature" or "bearer", the key "sig", and keys that
//     contain "key" (key, api_key, access_key) except key file paths:
//     sslkey, tls_key and keys ending in "file" or "path"
//     (tlsCertificateKeyFile) name a file, not a secret; the file's
//     passphrase (sslpassword, ...Password) is hidden.
//
// What it cannot see: a password with a raw "://", or a raw '?' followed
// by '=' or '&' before its '@', and a credential value with a raw '&' (an
// escaped one is fine), are cut where a URL parser would cut them.
func Redact(rawURL string) string {
	_, perr := url.Parse(rawURL)
	s := redactUserinfo(rawURL, perr == nil)
	return redactParams(s)
}

const redacted = "xxxxx"

// redactUserinfo hides every userinfo of s; keepUser says whether a plain
// username may stay.
func redactUserinfo(s string, keepUser bool) string {
	// Where an authority may start: after every "://", and at the start
	// (after a leading "//") of a URL whose userinfo precedes any "://".
	starts := []int{0}
	if strings.HasPrefix(s, "//") {
		starts[0] = 2
	}
	for i := 0; ; {
		j := strings.Index(s[i:], "://")
		if j < 0 {
			break
		}
		i += j + 3
		starts = append(starts, i)
	}
	var b strings.Builder
	done := 0 // s[:done] is written
	for _, a := range starts {
		if a < done {
			continue
		}
		at := userinfoEnd(s, a)
		if at < 0 {
			continue
		}
		ui := s[a:at]
		if ui == "" || strings.Contains(ui, "/") && !strings.Contains(ui, ":") {
			continue // a path with an '@' in it
		}
		b.WriteString(s[done:a])
		if c := strings.IndexByte(ui, ':'); c >= 0 && keepUser && plainUser(ui[:c]) {
			b.WriteString(ui[:c+1])
		}
		b.WriteString(redacted)
		done = at
	}
	if done == 0 {
		return s
	}
	b.WriteString(s[done:])
	return b.String()
}

// userinfoEnd is the index of the '@' that ends a userinfo starting at a,
// or -1: the last '@' before the query (a raw '?' followed by an '@'
// before any '=' or '&' belongs to a password) and before the next "://".
func userinfoEnd(s string, a int) int {
	limit := len(s)
	if n := strings.Index(s[a:], "://"); n >= 0 {
		limit = a + n
	}
	at := -1
	for from := a; from <= limit; {
		q := strings.IndexByte(s[from:limit], '?')
		if q < 0 {
			q = limit
		} else {
			q += from
		}
		if k := strings.LastIndexByte(s[from:q], '@'); k >= 0 {
			at = from + k
		}
		if q == limit {
			break
		}
		n := strings.IndexAny(s[q+1:limit], "@=&")
		if n < 0 || s[q+1+n] != '@' {
			break
		}
		from = q + 1
	}
	return at
}

// plainUser says whether a raw username may be shown: unreserved and
// sub-delim characters and valid escapes only.
func plainUser(u string) bool {
	for i := 0; i < len(u); i++ {
		c := u[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=", c) >= 0:
		case c == '%' && i+2 < len(u) && ishex(u[i+1]) && ishex(u[i+2]):
			i += 2
		default:
			return false
		}
	}
	return true
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// redactParams hides the value of every key=value whose key looks like a
// credential, wherever it appears after '?', '&', ';' or '#' (or at the
// start). A credential value runs to the next '&', so a raw ';' or '#' in
// it is hidden too.
func redactParams(s string) string {
	var b strings.Builder
	done, i := 0, 0
	for i < len(s) {
		end := i + strings.IndexAny(s[i:], "?&;#")
		if end < i {
			end = len(s)
		}
		if eq := strings.IndexByte(s[i:end], '='); eq >= 0 && credentialKey(s[i:i+eq]) {
			v := i + eq + 1
			vend := v + strings.IndexByte(s[v:], '&')
			if vend < v {
				vend = len(s)
			}
			b.WriteString(s[done:v])
			b.WriteString(redacted)
			done, end = vend, vend
		}
		i = end + 1
	}
	if done == 0 {
		return s
	}
	if done < len(s) {
		b.WriteString(s[done:])
	}
	return b.String()
}

// credentialKey says whether a query key names a secret (see Redact).
func credentialKey(key string) bool {
	if k := strings.LastIndexByte(key, '/'); k >= 0 {
		key = key[k+1:]
	}
	if u, err := url.QueryUnescape(key); err == nil {
		key = u
	}
	k := strings.ToLower(key)
	k = strings.NewReplacer("_", "", "-", "", ".", "", " ", "").Replace(k)
	for _, m := range []string{"pass", "pwd", "secret", "token", "cred", "signature", "bearer"} {
		if strings.Contains(k, m) {
			return true
		}
	}
	switch {
	case k == "sig":
		return true
	case strings.Contains(k, "auth"):
		return k != "authsource" && k != "authmechanism"
	case strings.Contains(k, "key"):
		return k != "sslkey" && k != "tlskey" && !strings.HasSuffix(k, "file") && !strings.HasSuffix(k, "path")
	}
	return false
}

func redactErr(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return fmt.Errorf("%s", ue.Err)
	}
	return err
}
