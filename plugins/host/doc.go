// Package host runs muster backends as plugin processes and adapts each to
// driver.Driver: Config.Factory(scheme) starts muster-plugin-<scheme>
// (verifying its pinned SHA-256), performs go-plugin's gRPC handshake with
// automatic mTLS, opens the session and returns a Driver whose methods are
// RPCs.
//
// Supervision: a returned Driver's Done channel closes as soon as the
// plugin process exits, stops answering pings, or reports that its session
// ended; from then on every call returns an error wrapping
// driver.ErrSessionLost, and the process has been killed. The caller (the
// servicegroup core) reacts as to any lost session: Close the old Driver and
// call the Factory again, which waits with backoff after failed starts.
// Close closes the session, stops the process and waits for it.
//
// The plugin's stderr (hclog JSON lines) is bridged into the host's zap
// logger; lines that are not well-formed hclog JSON are logged as text.
package host
