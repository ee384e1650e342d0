package servicegroup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"github.com/musterhq/muster/servicegroup/driver"
)

// factoryFor picks how sessions of cfg's backend are opened: a registered
// in-process driver or a plugin process.
func factoryFor(cfg Config) (driver.Factory, string, error) {
	scheme, err := driver.Scheme(cfg.URL)
	if err != nil {
		return nil, "", fmt.Errorf("servicegroup: %w", err)
	}
	mode := cfg.Mode
	if mode == ModeDefault {
		mode = ModePlugin
		if scheme == "memory" { // shares state only inside one process
			mode = ModeInProcess
		}
	}
	if mode == ModeInProcess {
		f, ok := driver.Lookup(scheme)
		if !ok {
			return nil, "", fmt.Errorf("servicegroup: %q: %w (linked: %v); use mode %q or import its package",
				scheme, ErrNotLinked, driver.Schemes(), ModePlugin)
		}
		return f, scheme, nil
	}
	f, err := pluginFactory(cfg, scheme)
	if err != nil {
		return nil, "", fmt.Errorf("servicegroup: %w", err)
	}
	return f, scheme, nil
}

// Open connects to the backend cfg.URL names and opens this member's session.
// It does not join any group. Close it when done.
func Open(ctx context.Context, cfg Config) (*ServiceGroup, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	f, scheme, err := factoryFor(cfg)
	if err != nil {
		return nil, err
	}
	return OpenDriver(ctx, cfg, scheme, f)
}

// OpenDriver is Open with an explicit session factory, for tests and for
// programs that build their own driver (cfg.URL is passed to it as is).
func OpenDriver(ctx context.Context, cfg Config, backend string, f driver.Factory) (*ServiceGroup, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Member == "" {
		cfg.Member = defaultMember()
	}
	if err := driver.ValidateName("member", cfg.Member); err != nil {
		return nil, fmt.Errorf("servicegroup: %w", err)
	}
	s := newServiceGroup(cfg, backend, f)
	started := monoNow()
	d, err := s.openSession(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.install(d, began(d, started))
	s.mu.Unlock()
	s.start()
	return s, nil
}

func (s *ServiceGroup) openSession(ctx context.Context) (driver.Driver, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	d, err := s.factory(ctx, driver.Options{
		URL:         s.cfg.URL,
		Member:      s.cfg.Member,
		Instance:    s.instance,
		TTL:         s.cfg.MemberTTL,
		DialTimeout: s.cfg.DialTimeout,
		Logger:      s.log,
	})
	if err != nil {
		if ctx.Err() != nil && !errorsIsCtx(err) {
			err = fmt.Errorf("%w (no answer within %v)", err, s.cfg.DialTimeout)
		}
		// A driver's *OpError already names the backend, the operation and
		// the address; saying them again here only repeats them.
		var oe *driver.OpError
		if errors.As(err, &oe) {
			return nil, err
		}
		return nil, fmt.Errorf("servicegroup: open %s backend at %s: %w", s.backend, driver.Redact(s.cfg.URL), err)
	}
	return d, nil
}

func defaultMember() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "host"
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
