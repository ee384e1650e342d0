package servicegroup

import (
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Mode says where a backend runs.
type Mode string

// Modes.
const (
	// ModeDefault runs every backend as a plugin but memory, which can only
	// run in-process.
	ModeDefault Mode = ""
	// ModePlugin runs the backend as a separate plugin process.
	ModePlugin Mode = "plugin"
	// ModeInProcess links the backend into this process; it must have been
	// registered (import _ "github.com/musterhq/muster/plugins/<scheme>").
	ModeInProcess Mode = "inprocess"
)

// Defaults, shorter than Nova's report_interval (10s) and service_down_time
// (60s) but in the same ratio's spirit: a member is declared dead after
// several missed heartbeats, never after one.
const (
	DefaultHeartbeatInterval = time.Second
	DefaultMemberTTL         = 5 * time.Second
	DefaultDialTimeout       = 5 * time.Second
)

// Config opens a ServiceGroup. Only URL is required.
type Config struct {
	// URL selects the backend by scheme: "file:///var/lib/muster",
	// "memory://name".
	URL string
	// Member is this process's member id. Default: "<hostname>-<pid>".
	Member string
	// Mode runs the backend as a plugin or in-process. Default: plugin,
	// except memory.
	Mode Mode
	// PluginDir is where muster-plugin-<scheme> binaries are. Default: the
	// directory of the running executable.
	PluginDir string
	// PluginChecksums pins plugin binaries by plugin name (redis for
	// rediss://) to a hex sha256; a
	// binary that does not match is refused.
	PluginChecksums map[string]string
	// HeartbeatInterval is how often the session is renewed. Default 1s.
	HeartbeatInterval time.Duration
	// MemberTTL is how long a member stays up without a heartbeat. It must
	// exceed HeartbeatInterval; if it does not, Open raises it to 2.5 times
	// the interval and logs a warning, as Nova does. Default 5s.
	MemberTTL time.Duration
	// DialTimeout bounds opening a session. Default 5s.
	DialTimeout time.Duration
	// WatchInterval is how often watches poll backends without a native
	// watch. Default: half the heartbeat interval.
	WatchInterval time.Duration
	// Logger receives diagnostics. Default: none.
	Logger *zap.Logger
	// Observer is told what the session does, for metrics (see package
	// servicegroup/metrics). Default: none, at no cost.
	Observer Observer
}

// withDefaults fills defaults and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if c.URL == "" {
		return c, fmt.Errorf("servicegroup: no backend URL")
	}
	switch c.Mode {
	case ModeDefault, ModePlugin, ModeInProcess:
	default:
		return c, fmt.Errorf("servicegroup: mode %q: want %q or %q", c.Mode, ModePlugin, ModeInProcess)
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	for name, d := range map[string]time.Duration{
		"heartbeat interval": c.HeartbeatInterval, "member TTL": c.MemberTTL,
		"dial timeout": c.DialTimeout, "watch interval": c.WatchInterval,
	} {
		if d < 0 {
			return c, fmt.Errorf("servicegroup: %s %v is negative", name, d)
		}
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.MemberTTL == 0 {
		c.MemberTTL = DefaultMemberTTL
		if c.MemberTTL <= c.HeartbeatInterval {
			c.MemberTTL = 5 * c.HeartbeatInterval
		}
	}
	if c.MemberTTL <= c.HeartbeatInterval {
		fixed := c.HeartbeatInterval * 5 / 2
		c.Logger.Warn("member TTL must exceed the heartbeat interval; raising it",
			zap.Duration("member_ttl", c.MemberTTL),
			zap.Duration("heartbeat_interval", c.HeartbeatInterval),
			zap.Duration("new_member_ttl", fixed))
		c.MemberTTL = fixed
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.WatchInterval == 0 {
		c.WatchInterval = c.HeartbeatInterval / 2
	}
	return c, nil
}
