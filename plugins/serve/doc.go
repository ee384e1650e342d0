// Package serve runs a muster backend as an out-of-process plugin: a
// plugin's main is one line,
//
//	func main() { serve.Driver(file.Open) }
//
// The plugin speaks go-plugin's gRPC protocol (plugins/proto) to one host,
// serves exactly one session, and never outlives its host or its host's
// heartbeats:
//
//   - it asks the kernel for SIGTERM when its parent dies (PR_SET_PDEATHSIG)
//     and also polls its parent pid, closing the session and exiting when
//     the host is gone;
//   - it ends the session itself when no Heartbeat has arrived for the
//     session TTL, so a frozen host is reported down even on backends whose
//     clients keep sessions alive by themselves, and reports that on the
//     Events stream.
//
// It logs JSON lines with hclog on stderr, which the host bridges into its
// own logger; the backend's zap logger writes through the same hclog logger.
package serve
