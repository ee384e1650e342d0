package servicegroup

import (
	"github.com/musterhq/muster/plugins/host"
	"github.com/musterhq/muster/servicegroup/driver"
)

// pluginFactory starts each session in its own plugin process
// (muster-plugin-<scheme>), verified against the pinned checksum if any.
// The keeper treats a dead plugin like any lost session: it calls the
// factory again, which restarts the plugin with backoff.
func pluginFactory(cfg Config, scheme string) (driver.Factory, error) {
	hc := host.Config{
		Dir:       cfg.PluginDir,
		Checksums: cfg.PluginChecksums,
		Logger:    cfg.Logger,
	}
	if o := cfg.Observer; o != nil {
		hc.OnStart = func(p string, restart bool) { o.PluginProcess(p, true, restart, false) }
		hc.OnExit = func(p string, lost bool) { o.PluginProcess(p, false, false, lost) }
	}
	return hc.Factory(scheme), nil
}
