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

// Redact hides the password of a URL, for logs and messages.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		// Unparseable: hide anything between "://" and "@".
		if i := strings.Index(rawURL, "://"); i >= 0 {
			if j := strings.LastIndex(rawURL, "@"); j > i {
				return rawURL[:i+3] + "xxxxx" + rawURL[j:]
			}
		}
		return rawURL
	}
	q := u.Query()
	changed := false
	for k := range q {
		switch strings.ToLower(k) {
		case "password", "pass", "secret", "token":
			q.Set(k, "xxxxx")
			changed = true
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

func redactErr(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return fmt.Errorf("%s", ue.Err)
	}
	return err
}
