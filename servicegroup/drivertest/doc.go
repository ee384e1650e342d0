// Package drivertest is the conformance suite every muster backend runs:
// each line of CONFORMANCE.md (but the partitioner's, which has its own
// tests) is a named subtest of Run.
//
// A backend's test file calls Run with a Backend that says how to open
// sessions (its in-process factory, or a plugin host's) and how to get a
// fresh, empty namespace for one test:
//
//	func TestConformance(t *testing.T) {
//		drivertest.Run(t, drivertest.Backend{
//			Name:           "file",
//			URL:            func(t testing.TB) string { return "file://" + t.TempDir() },
//			UnreachableURL: "file:///dev/null/x",
//			Open:           file.Open,
//		})
//	}
//
// Behaviour the core owns (heartbeats, re-joining after a lost session,
// watches, elections, Lost channels, name validation, Acquire honouring its
// context) is tested through servicegroup.OpenDriver; behaviour of the
// backend itself (expiry, Close freeing at once, fencing tokens, internal
// records) through the raw driver.Driver. Sessions are made to expire for
// real, by a wrapper that stops their heartbeats from reaching the backend;
// the backend is never mocked.
//
// Timings are short (heartbeats every 100ms, a 600ms TTL) and every wait is
// a poll with a generous deadline, never a bare sleep used as an assertion.
// Tests run in parallel, each in its own namespace. A feature the backend
// declares unsupported is checked to return ErrNotSupported instead; with
// CI=true in the environment nothing may be skipped.
package drivertest
