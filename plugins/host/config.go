package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/musterhq/muster/servicegroup/driver"
)

// Config says where plugin binaries are and how to trust and run them.
type Config struct {
	// Dir holds the plugin binaries, one per scheme, named
	// muster-plugin-<scheme>. Default: the directory of os.Executable().
	Dir string
	// Checksums pins plugin binaries: plugin name (see Plugin; an alias
	// scheme works too) -> hex SHA-256 of the binary. A binary whose plugin
	// has an entry is run only if it matches; one without is not verified.
	Checksums map[string]string
	// Logger receives go-plugin's diagnostics and the plugin's own log
	// lines (its stderr). Default: the Options.Logger of each session, and
	// none if that is nil too.
	Logger *zap.Logger
	// StartTimeout bounds starting a plugin up to the end of its handshake
	// (not Open, which the caller's context and DialTimeout bound).
	// Default: 10s.
	StartTimeout time.Duration
	// OnStart, if set, is called after each plugin process a Factory
	// started has opened its session; restart is false only for the
	// Factory's first. For metrics: it must not block.
	OnStart func(plugin string, restart bool)
	// OnExit, if set, is called when a plugin session ends; lost is false
	// only when it ended through Close. For metrics: it must not block.
	OnExit func(plugin string, lost bool)
}

// DefaultStartTimeout is Config.StartTimeout's default.
const DefaultStartTimeout = 10 * time.Second

// Restart backoff: a Factory waits before starting a plugin again after a
// failed start, or after a session that ended within stableAfter.
const (
	backoffMin  = 100 * time.Millisecond
	backoffMax  = 10 * time.Second
	stableAfter = 10 * time.Second
)

// aliases maps the URL schemes that one plugin serves to its name: tooz's
// spellings and the TLS variants run the plugin of the plain scheme.
var aliases = map[string]string{
	"rediss":      "redis",
	"kazoo":       "zookeeper",
	"etcd3":       "etcd",
	"etcd3+http":  "etcd",
	"etcd3+https": "etcd",
	"postgres":    "postgresql",
	"mariadb":     "mysql",
}

// Plugin is the name of the plugin that serves scheme: the scheme itself,
// or the plain scheme for an alias (rediss: redis, kazoo: zookeeper,
// etcd3+http: etcd, postgres: postgresql, mariadb: mysql).
func Plugin(scheme string) string {
	if p, ok := aliases[scheme]; ok {
		return p
	}
	return scheme
}

// BinaryName is the file name of the plugin binary for scheme:
// muster-plugin-<Plugin(scheme)>.
func BinaryName(scheme string) string { return "muster-plugin-" + Plugin(scheme) }

// Factory returns a driver.Factory that runs the backend for scheme as a
// plugin: each call starts one plugin process, opens its session and
// returns a Driver whose methods are RPCs to it.
//
// The Factory remembers failures: after a failed start, or a session that
// ended within 10s of starting, its next call waits first (100ms doubling
// up to 10s, with jitter; a wait honours ctx). Use one Factory per session
// that the caller keeps re-opening, so the backoff applies to it.
func (c Config) Factory(scheme string) driver.Factory {
	f := &factory{cfg: c, scheme: scheme}
	return f.open
}

type factory struct {
	cfg    Config
	scheme string

	mu        sync.Mutex
	failures  int
	notBefore time.Time
	started   bool // a plugin process has been started
}

func (f *factory) open(ctx context.Context, opts driver.Options) (driver.Driver, error) {
	f.mu.Lock()
	wait := time.Until(f.notBefore)
	f.mu.Unlock()
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("plugin for scheme %q: waiting to restart: %w", f.scheme, ctx.Err())
		case <-t.C:
		}
	}
	s, err := f.start(ctx, opts, f.ended)
	if err != nil {
		f.failed()
		return nil, err
	}
	f.mu.Lock()
	f.notBefore = time.Time{}
	restart := f.started
	f.started = true
	f.mu.Unlock()
	if f.cfg.OnStart != nil {
		f.cfg.OnStart(Plugin(f.scheme), restart)
	}
	return s.driver(), nil
}

// ended counts a session that was lost soon after it started as a failed
// start, so a plugin that crashes at once is restarted with backoff.
func (f *factory) ended(lived time.Duration, lost bool) {
	if f.cfg.OnExit != nil {
		f.cfg.OnExit(Plugin(f.scheme), lost)
	}
	if lost && lived < stableAfter {
		f.failed()
		return
	}
	f.mu.Lock()
	f.failures = 0
	f.mu.Unlock()
}

func (f *factory) failed() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures++
	d := backoffMin << min(f.failures-1, 10)
	d = min(d, backoffMax)
	d = d/2 + rand.N(d/2+1) // jitter, so a fleet does not restart in step
	f.notBefore = time.Now().Add(d)
}

func (f *factory) logger(opts driver.Options) *zap.Logger {
	switch {
	case f.cfg.Logger != nil:
		return f.cfg.Logger
	case opts.Logger != nil:
		return opts.Logger
	default:
		return zap.NewNop()
	}
}

// binary finds and verifies the plugin binary for the factory's scheme.
func (f *factory) binary() (string, error) { return f.cfg.Binary(f.scheme) }

// Binary is the path of the plugin binary for scheme in c.Dir, checked to
// be an executable file and, if its plugin is pinned in c.Checksums, to
// match: the binary a Factory for scheme would run.
func (c Config) Binary(scheme string) (string, error) {
	if !validScheme(scheme) {
		return "", fmt.Errorf("plugin scheme %q: not a URL scheme", scheme)
	}
	dir := c.Dir
	if dir == "" {
		exe, err := os.Executable()
		if err != nil {
			return "", fmt.Errorf("plugin for scheme %q: no plugin directory: %w", scheme, err)
		}
		dir = filepath.Dir(exe)
	}
	path := filepath.Join(dir, BinaryName(scheme))
	fi, err := os.Stat(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", fmt.Errorf("plugin for scheme %q not found: %s: %w", scheme, path, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("plugin for scheme %q: %s is not an executable file (%v)", scheme, path, fi.Mode())
	}
	want, pinned := c.Checksums[Plugin(scheme)]
	if !pinned {
		want, pinned = c.Checksums[scheme]
	}
	if pinned {
		if err := verify(path, want); err != nil {
			return "", fmt.Errorf("plugin for scheme %q: %w", scheme, err)
		}
	}
	return path, nil
}

// ErrChecksum is wrapped by the error for a plugin binary that does not
// match its pinned checksum.
var ErrChecksum = errors.New("checksum does not match")

// verify checks path against a pinned hex SHA-256. go-plugin's SecureConfig
// does the same check but cannot be combined with the custom runner the
// host needs (see process), and does not say which sums differ.
func verify(path, want string) error {
	wantSum, err := hex.DecodeString(strings.TrimSpace(want))
	if err != nil || len(wantSum) != sha256.Size {
		return fmt.Errorf("pinned checksum %q is not a hex SHA-256", want)
	}
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("verify checksum: %w", err)
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return fmt.Errorf("verify checksum of %s: %w", path, err)
	}
	got := h.Sum(nil)
	if !strings.EqualFold(hex.EncodeToString(got), hex.EncodeToString(wantSum)) {
		return fmt.Errorf("%s: %w: expected sha256 %x, got %x", path, ErrChecksum, wantSum, got)
	}
	return nil
}

// validScheme reports whether s is a URL scheme (RFC 3986), which also
// keeps it from naming another directory.
func validScheme(s string) bool {
	if s == "" || !('a' <= s[0] && s[0] <= 'z' || 'A' <= s[0] && s[0] <= 'Z') {
		return false
	}
	for _, r := range s {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '+', r == '-', r == '.':
		default:
			return false
		}
	}
	return true
}
