package serve

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/musterhq/muster/plugins/proto"
	"github.com/musterhq/muster/servicegroup/driver"
)

// closeTimeout bounds closing the session when the plugin exits.
const closeTimeout = 5 * time.Second

// envCPUProfile, when set to a path prefix, makes the plugin write a CPU
// profile of its life to <prefix>.<pid> as it exits (not when killed): the
// plugin's half of profiling the call path, the host's being its own
// -cpuprofile. Test and diagnosis only.
const envCPUProfile = "MUSTER_PLUGIN_CPUPROFILE"

// Driver serves the backend that factory opens as a go-plugin gRPC plugin,
// and exits the process when the host is done with it. It is what a plugin
// binary's main calls; it never returns.
func Driver(factory driver.Factory) {
	// First, before anything can block: die with the host.
	setParentDeathSignal()
	setMaxProcs()

	log := hclog.New(&hclog.LoggerOptions{
		Name:       filepath.Base(os.Args[0]),
		Level:      hclog.LevelFromString(os.Getenv(proto.EnvLogLevel)),
		Output:     os.Stderr, // the real stderr: go-plugin redirects os.Stderr in Serve
		JSONFormat: true,
	})
	stopProfile := startCPUProfile(log)

	srv := newServer(factory, log)
	var exitOnce sync.Once
	exit := func(code int, why string) {
		exitOnce.Do(func() {
			log.Debug("plugin exiting", "reason", why)
			ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
			srv.shutdown(ctx, why)
			cancel()
			removeSocketDir()
			stopProfile()
			os.Exit(code)
		})
	}

	if os.Getenv(proto.Handshake.MagicCookieKey) == proto.Handshake.MagicCookieValue {
		// Only as a real plugin: run by hand, plugin.Serve explains and exits.
		// stdout and stderr are pipes to the host: once it is gone, a log
		// line must fail, not kill the plugin (SIGPIPE) before it has
		// closed the session.
		signal.Ignore(syscall.SIGPIPE)
		ppid := os.Getppid()
		if gone := watchParent(log, func() { exit(1, "host process exited") }); gone {
			exit(1, "host process exited before the plugin started")
		}
		// A stop signal usually reaches the whole process group (systemd,
		// timeout(1), a terminal): the host got it too and is closing the
		// session, which it can do gracefully (leave, release, resign) only
		// while the plugin serves. So the plugin gives the host closeTimeout
		// to do so, and only then exits on its own.
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP)
		go func() {
			sig := <-sigs
			if os.Getppid() != ppid {
				exit(1, "host process exited") // the death signal: nobody will close the session
			}
			log.Debug("stop signal: waiting for the host to close the session", "signal", sig.String(), "grace", closeTimeout.String())
			time.AfterFunc(closeTimeout, func() {
				exit(0, "received "+sig.String()+" and the host did not close the session") // asked to stop: not a failure
			})
		}()
	}

	// go-plugin's own start-up messages are transport detail: shown when
	// the host debugs, else warnings up.
	pluginLevel := hclog.LevelFromString(os.Getenv(proto.EnvLogLevel))
	if pluginLevel != hclog.Trace && pluginLevel != hclog.Debug {
		pluginLevel = max(pluginLevel, hclog.Warn)
	}
	pluginLog := hclog.New(&hclog.LoggerOptions{
		Name:       filepath.Base(os.Args[0]),
		Level:      pluginLevel,
		Output:     os.Stderr,
		JSONFormat: true,
	})
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: proto.Handshake,
		Plugins:         plugin.PluginSet{proto.PluginName: &grpcPlugin{srv: srv}},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, latencyOptions()...)...)
		},
		Logger: pluginLog,
	})
	// Serve returns when the host shut the plugin down (or it could not
	// start): the session must not outlive this process.
	exit(0, "host shut the plugin down")
}

// setMaxProcs runs the plugin on one P unless EnvMaxProcs says otherwise. A
// plugin serves one session, a call or a few at a time; on one P the hand-
// offs inside each call (gRPC reader, handler, writer) are goroutine
// switches instead of wake-ups of other threads, which on small VMs cut
// about a fifth off every call (BenchmarkTransport in plugins/host).
func setMaxProcs() {
	n, err := strconv.Atoi(os.Getenv(proto.EnvMaxProcs))
	if err != nil || n < 1 {
		n = 1
	}
	runtime.GOMAXPROCS(n)
}

// startCPUProfile starts the profile envCPUProfile asks for, if any, and
// returns what ends it.
func startCPUProfile(log hclog.Logger) (stop func()) {
	prefix := os.Getenv(envCPUProfile)
	if prefix == "" {
		return func() {}
	}
	path := prefix + "." + strconv.Itoa(os.Getpid())
	f, err := os.Create(path)
	if err == nil {
		if err = pprof.StartCPUProfile(f); err != nil {
			f.Close()
		}
	}
	if err != nil {
		log.Warn("no CPU profile", "path", path, "error", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// removeSocketDir removes the directory go-plugin's host made for this
// plugin's socket alone: a host that died cannot, and for a live one it is
// no loss. (Whether the host died cannot be told reliably here: the death
// signal can arrive before the plugin is re-parented.)
func removeSocketDir() {
	dir := os.Getenv(plugin.EnvUnixSocketDir)
	if dir != "" && strings.HasPrefix(filepath.Base(dir), "plugin-dir") {
		_ = os.RemoveAll(dir)
	}
}

// latencyOptions tune the server for many small calls, one at a time: a
// stream's handler runs on a waiting worker instead of a new goroutine,
// and fixed flow-control windows (the host sets the same) turn off the
// BDP pings gRPC otherwise sends along with responses.
func latencyOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.NumStreamWorkers(uint32(max(runtime.GOMAXPROCS(0), 2))),
		grpc.InitialWindowSize(proto.StreamWindow),
		grpc.InitialConnWindowSize(proto.ConnWindow),
	}
}

// grpcPlugin registers the Driver service with go-plugin's gRPC server.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	srv *server
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	proto.RegisterDriverServer(s, p.srv)
	return nil
}

func (p *grpcPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errPluginSide
}
