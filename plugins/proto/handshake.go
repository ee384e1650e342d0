package proto

import plugin "github.com/hashicorp/go-plugin"

// Handshake is the go-plugin handshake shared by host and plugin. The cookie
// only keeps a plugin binary from being run by hand; it is not security.
// Bump ProtocolVersion on any incompatible change to muster.proto.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "MUSTER_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "b6f3c1e2-muster-driver-plugin",
}

// PluginName is the name under which the plugin serves the Driver service.
const PluginName = "driver"

// Environment the host sets for a plugin, on top of go-plugin's own.
const (
	// EnvHostPID is the host's process id: a plugin whose parent is not
	// that process has been orphaned before it could watch for it.
	EnvHostPID = "MUSTER_PLUGIN_HOST_PID"
	// EnvLogLevel is the lowest level the plugin should log (trace, debug,
	// info, warn, error).
	EnvLogLevel = "MUSTER_PLUGIN_LOG_LEVEL"
	// EnvMaxProcs overrides the plugin's GOMAXPROCS, which is 1 by default
	// (see plugins/serve).
	EnvMaxProcs = "MUSTER_PLUGIN_GOMAXPROCS"
)

// Flow-control windows both sides set. Setting them turns off gRPC's
// bandwidth-delay probing, whose pings ride along with every response of
// a connection that carries one small call at a time.
const (
	StreamWindow = 1 << 20
	ConnWindow   = 4 << 20
)
