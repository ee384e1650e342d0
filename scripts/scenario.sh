#!/usr/bin/env bash
# The README's CLI scenario against one backend, as a new user runs it:
# two joins, members --json, kill -9 one, is-up turns down, and two
# `muster lock` loops counting to exactly 100.
#   scripts/scenario.sh URL [plugin|inprocess]     (uses ./bin/muster: make build first)
set -euo pipefail
url=$1 mode=${2:-plugin}
m="./bin/muster --url $url --mode $mode --heartbeat-interval 200ms --member-ttl 2s"
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
g="scenario-$$"
$m join "$g" host-1 --caps '{"vcpus": 8}' 2>"$work/j1" & j1=$!
$m join "$g" host-2 2>"$work/j2" &
for _ in $(seq 100); do [ "$($m members "$g" 2>/dev/null | wc -l)" -ge 2 ] && break; sleep 0.1; done
$m members "$g" --json
kill -9 $j1
start=$(date +%s.%N)
until ! $m is-up "$g" host-1 >/dev/null; do sleep 0.1; done
echo "host-1 down $(echo "$(date +%s.%N) - $start" | bc) s after kill -9"
n="$work/counter"; echo 0 >"$n"
loop() { for _ in $(seq 50); do $m lock "$g-counter" -- sh -c 'n=$(cat "$1"); echo $((n+1)) >"$1.t"; mv "$1.t" "$1"' sh "$n"; done; }
loop & a=$!; loop & b=$!; wait $a $b
echo "counter: $(cat "$n") (want 100)"
[ "$(cat "$n")" = 100 ]
