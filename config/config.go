// Package config reads muster's TOML configuration: strictly (an unknown key
// or a bad value is an error naming the key and its line), with defaults
// that mirror Nova's service-group settings at shorter values.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/driver"
)

// Config is a whole muster configuration file.
type Config struct {
	Backend Backend `toml:"backend"`
	Session Session `toml:"session"`
	Log     Log     `toml:"log"`
	Agent   Agents  `toml:"agent"`
	Metrics Metrics `toml:"metrics"`

	// File is where the configuration came from ("" for defaults only).
	File string `toml:"-"`
}

// Backend says where and how to reach the coordination backend.
type Backend struct {
	// URL selects the backend by scheme. Default: file:///var/lib/muster as
	// root, else file://<tmp>/muster-<uid>.
	URL string `toml:"url"`
	// Mode is "plugin" or "inprocess". Default: plugin (memory: inprocess).
	Mode string `toml:"mode"`
	// PluginDir holds muster-plugin-<scheme> binaries. Default: next to
	// the muster binary.
	PluginDir string `toml:"plugin_dir"`
	// PluginChecksums pins plugin binaries: plugin name (redis for rediss://) = "hex sha256".
	PluginChecksums map[string]string `toml:"plugin_checksums"`
	// DialTimeout bounds connecting. Default 5s.
	DialTimeout Duration `toml:"dial_timeout"`
}

// Session sets this process's membership and liveness.
type Session struct {
	// Member is this process's member id. Default: <hostname>-<pid> for
	// operator commands; agents default to the hostname.
	Member string `toml:"member"`
	// HeartbeatInterval is Nova's report_interval. Default 1s.
	HeartbeatInterval Duration `toml:"heartbeat_interval"`
	// MemberTTL is Nova's service_down_time: a member silent this long is
	// down. Must exceed the interval. Default 5s.
	MemberTTL Duration `toml:"member_ttl"`
	// WatchInterval is how often watches poll. Default: half the heartbeat
	// interval.
	WatchInterval Duration `toml:"watch_interval"`
}

// Log configures the zap logger.
type Log struct {
	// Level is debug, info, warn or error. Default: info for long-running
	// commands (agents, join, campaign, watch), warn for one-shot ones.
	Level string `toml:"level"`
	// Format is console or json. Default console.
	Format string `toml:"format"`
}

// Metrics configures the Prometheus endpoint of agents and long-running
// commands.
type Metrics struct {
	// Listen is the HTTP address of GET /metrics (HOST:PORT); the
	// --metrics-listen flag overrides it. Default: none (agents still
	// serve /metrics on their status listener).
	Listen string `toml:"listen"`
}

// Agents configures `muster agent compute` and `muster agent central`.
type Agents struct {
	Compute Compute `toml:"compute"`
	Central Central `toml:"central"`
}

// Compute configures the compute agent.
type Compute struct {
	// Group to join. Default "compute".
	Group string `toml:"group"`
	// Listen is the HTTP address for /status and /healthz. Default
	// 127.0.0.1:0 (any free port, logged at start).
	Listen string `toml:"listen"`
	// Capabilities are added to the ones the agent reads from the host.
	Capabilities map[string]any `toml:"capabilities"`
}

// Central configures the central (partitioned polling) agent.
type Central struct {
	// Group to join. Default "central".
	Group string `toml:"group"`
	// Listen is the HTTP address for /status and /healthz. Default
	// 127.0.0.1:0.
	Listen string `toml:"listen"`
	// PollInterval is how often each owned task is polled. Default 10s.
	PollInterval Duration `toml:"poll_interval"`
	// TasksGroup: every live member of this group is a task (poll its
	// /status). Default "compute"; "" with Tasks set polls only those.
	TasksGroup *string `toml:"tasks_group"`
	// Tasks are extra static task ids.
	Tasks []string `toml:"tasks"`
	// Output is the JSON-lines sink: a file path, or "-" for stdout.
	// Default "-".
	Output string `toml:"output"`
	// Algorithm is the hash ring: "muster" (default) or "tooz".
	Algorithm string `toml:"algorithm"`
}

// Lower bounds of the durations, checked by Validate for the file and the
// command line alike. Below them a setting is a typo (1ns for 1s), not a
// tuning: each heartbeat, poll or watch is a backend round trip (a file
// write, a network request) of around a millisecond, so a shorter interval
// only spins the CPU and floods the log; a TTL shorter than a scheduling
// hiccup of a loaded host marks healthy members down; starting a plugin
// process and its handshake alone takes tens of milliseconds.
const (
	MinHeartbeatInterval = 10 * time.Millisecond
	MinMemberTTL         = 100 * time.Millisecond
	MinWatchInterval     = 10 * time.Millisecond
	MinPollInterval      = 10 * time.Millisecond
	MinDialTimeout       = 100 * time.Millisecond
)

// atLeast says why d is out of bounds, or "" when it is not.
func atLeast(d, least time.Duration, zeroOK bool) string {
	switch {
	case d == 0 && zeroOK:
		return ""
	case d <= 0:
		return fmt.Sprintf("%v: must be positive (at least %v)", d, least)
	case d < least:
		return fmt.Sprintf("%v is too short: at least %v", d, least)
	}
	return ""
}

// Duration is a time.Duration written as "1s", "250ms".
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (e.g. \"1s\", \"500ms\")", string(b))
	}
	if v < 0 {
		return fmt.Errorf("%q is negative", string(b))
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as Go does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Default is the configuration used when there is no file.
func Default() Config {
	return Config{
		Backend: Backend{URL: DefaultURL(), DialTimeout: Duration{servicegroup.DefaultDialTimeout}},
		Session: Session{
			HeartbeatInterval: Duration{servicegroup.DefaultHeartbeatInterval},
			MemberTTL:         Duration{servicegroup.DefaultMemberTTL},
		},
		Log: Log{Format: "console"},
		Agent: Agents{
			Compute: Compute{Group: "compute", Listen: "127.0.0.1:0"},
			Central: Central{Group: "central", Listen: "127.0.0.1:0",
				PollInterval: Duration{10 * time.Second}, Output: "-", Algorithm: "muster"},
		},
	}
}

// DefaultURL is the file backend in /var/lib/muster for root, else in a
// per-user directory under the temp dir.
func DefaultURL() string {
	if os.Geteuid() == 0 {
		return "file:///var/lib/muster"
	}
	return "file://" + filepath.Join(os.TempDir(), fmt.Sprintf("muster-%d", os.Geteuid()))
}

// TasksGroupOrDefault is the group whose members are tasks.
func (c Central) TasksGroupOrDefault() string {
	if c.TasksGroup == nil {
		return "compute"
	}
	return *c.TasksGroup
}

// ServiceGroup turns the configuration into the library's Config.
func (c Config) ServiceGroup() servicegroup.Config {
	return servicegroup.Config{
		URL:               c.Backend.URL,
		Member:            c.Session.Member,
		Mode:              servicegroup.Mode(c.Backend.Mode),
		PluginDir:         c.Backend.PluginDir,
		PluginChecksums:   c.Backend.PluginChecksums,
		HeartbeatInterval: c.Session.HeartbeatInterval.Duration,
		MemberTTL:         c.Session.MemberTTL.Duration,
		DialTimeout:       c.Backend.DialTimeout.Duration,
		WatchInterval:     c.Session.WatchInterval.Duration,
	}
}

// RedactedURL is the backend URL with any password hidden, for output.
func (b Backend) RedactedURL() string { return driver.Redact(b.URL) }
