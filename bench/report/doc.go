// Command report is muster's benchmark harness (issue 12). It starts the
// servers it needs with internal/testserver, measures muster in-process,
// through its plugin, against each backend's raw Go client and against
// OpenStack tooz (Debian's python3-tooz, driven by the embedded
// tooz_bench.py), and prints one markdown table per question, writing them
// with the machine, the load, the versions and the command to
// docs/benchmarks.md.
//
// Run it from the repository root after make build:
//
//	go run ./bench/report          # make bench: the full run
//	go run ./bench/report -quick   # make bench-quick: every table, fewer samples
//
// Flags: -backends file,redis,... picks backends, -sections abcde picks
// tables (a latency, b tooz, c failure detection, d scale, e footprint),
// -out FILE (or "") where the markdown goes, -bin DIR where make build put
// muster and the plugins (missing ones are built into a temp dir).
//
// `report member -url U -group G -member M` is the helper member process
// of the failure-detection table; it is not meant to be run by hand.
//
// The package has no tests that need servers: go test ./... runs only the
// unit tests of its statistics and tables.
package main
