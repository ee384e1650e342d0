package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var modes = []string{"inprocess", "plugin"}

// Two members join; members --json lists both; kill -9 one and is-up turns
// to down within the TTL plus a heartbeat.
func TestJoinMembersKill(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			b := backendFlags(t, mode)
			a := start(t, append(b, "join", "compute", "a", "--caps", `{"vcpus": 4, "zone": "az1"}`)...)
			start(t, append(b, "join", "compute", "b")...)
			var ms []memberJSON
			eventually(t, 15*time.Second, "both members listed", func() bool {
				out, _, code := muster(t, append(b, "members", "compute", "--json")...)
				ms = nil
				return code == 0 && json.Unmarshal([]byte(out), &ms) == nil && len(ms) == 2
			})
			if ms[0].ID != "a" || ms[1].ID != "b" || !ms[0].Up || ms[0].UpdatedAt.IsZero() {
				t.Fatalf("members: %+v", ms)
			}
			if ms[0].Capabilities["vcpus"] != float64(4) || ms[0].Capabilities["zone"] != "az1" {
				t.Fatalf("capabilities: %+v", ms[0].Capabilities)
			}
			out, _, code := muster(t, append(b, "is-up", "compute", "a")...)
			if code != 0 || out != "up\n" {
				t.Fatalf("is-up a: %q %d", out, code)
			}
			if err := a.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed := time.Now()
			eventually(t, 10*time.Second, "a reported down", func() bool {
				out, _, code := muster(t, append(b, "is-up", "compute", "a")...)
				return code == 1 && out == "down\n"
			})
			t.Logf("%s: down %v after kill -9 (TTL 1s, heartbeat 200ms)", mode, time.Since(killed).Round(10*time.Millisecond))
			out, _, code = muster(t, append(b, "is-up", "compute", "b")...)
			if code != 0 || out != "up\n" {
				t.Fatalf("is-up b: %q %d", out, code)
			}
		})
	}
}

// Two lock loops race 50 times each to increment a counter in a file.
func TestLockCounter(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			b := backendFlags(t, mode)
			counter := filepath.Join(t.TempDir(), "counter")
			if err := os.WriteFile(counter, []byte("0"), 0o644); err != nil {
				t.Fatal(err)
			}
			script := `n=$(cat "$1"); n=$((n+1)); echo $n > "$1.tmp"; mv "$1.tmp" "$1"; echo "$MUSTER_FENCING_TOKEN" >> "$1.tokens"`
			var wg sync.WaitGroup
			errs := make(chan string, 100)
			for w := 0; w < 2; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 50; i++ {
						_, stderr, code := muster(t, append(b, "lock", "counter", "--", "sh", "-c", script, "sh", counter)...)
						if code != 0 {
							errs <- fmt.Sprintf("exit %d: %s", code, stderr)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Fatal(e)
			}
			got, _ := os.ReadFile(counter)
			if strings.TrimSpace(string(got)) != "100" {
				t.Fatalf("counter = %s, want 100", got)
			}
			toks, _ := os.ReadFile(counter + ".tokens")
			prev := uint64(0)
			for _, l := range strings.Fields(string(toks)) {
				n, err := strconv.ParseUint(l, 10, 64)
				if err != nil || n <= prev {
					t.Fatalf("fencing tokens not strictly increasing: %q after %d", l, prev)
				}
				prev = n
			}
		})
	}
}

func TestLockExitStatusAndToken(t *testing.T) {
	b := backendFlags(t, "inprocess")
	out, _, code := muster(t, append(b, "lock", "l", "--", "sh", "-c", "echo $MUSTER_FENCING_TOKEN; exit 7")...)
	if code != 7 || out != "1\n" {
		t.Fatalf("got %q exit %d, want token 1 and exit 7", out, code)
	}
	out, _, _ = muster(t, append(b, "lock", "l", "--", "sh", "-c", "echo $MUSTER_FENCING_TOKEN")...)
	if out != "2\n" {
		t.Fatalf("second token %q, want 2", out)
	}
	// Held by another: --no-wait fails at once, --timeout after it.
	holder := start(t, append(b, "lock", "l", "--", "sleep", "30")...)
	_ = holder
	eventually(t, 10*time.Second, "lock taken by the holder", func() bool {
		_, stderr, code := muster(t, append(b, "lock", "l", "--no-wait", "--", "true")...)
		return code == 1 && strings.Contains(stderr, "held")
	})
	_, stderr, code := muster(t, append(b, "lock", "l", "--timeout", "300ms", "--", "true")...)
	if code != 1 || !strings.Contains(stderr, "still held after 300ms") {
		t.Fatalf("timeout: exit %d %q", code, stderr)
	}
}

func TestForceDown(t *testing.T) {
	b := backendFlags(t, "inprocess")
	start(t, append(b, "join", "compute", "h1")...)
	eventually(t, 10*time.Second, "h1 up", func() bool {
		_, _, code := muster(t, append(b, "is-up", "compute", "h1")...)
		return code == 0
	})
	if _, stderr, code := muster(t, append(b, "force-down", "compute", "h1")...); code != 0 {
		t.Fatalf("force-down: %d %s", code, stderr)
	}
	out, _, code := muster(t, append(b, "is-up", "compute", "h1")...)
	if code != 1 || out != "down\n" {
		t.Fatalf("forced down host: %q %d", out, code)
	}
	out, _, _ = muster(t, append(b, "members", "compute", "--json")...)
	var ms []memberJSON
	if err := json.Unmarshal([]byte(out), &ms); err != nil || len(ms) != 1 || ms[0].Up || !ms[0].ForcedDown {
		t.Fatalf("members after force-down: %s", out)
	}
	muster(t, append(b, "force-down", "compute", "h1", "--clear")...)
	if out, _, code := muster(t, append(b, "is-up", "compute", "h1")...); code != 0 {
		t.Fatalf("cleared: %q %d", out, code)
	}
}

func TestWatchAndElection(t *testing.T) {
	b := backendFlags(t, "inprocess")
	if _, stderr, code := muster(t, append(b, "leader", "central")...); code != 1 || !strings.Contains(stderr, "no leader") {
		t.Fatalf("leader of an unled group: %d %q", code, stderr)
	}
	start(t, append(b, "join", "central", "c0")...) // creates the group
	eventually(t, 10*time.Second, "group created", func() bool {
		_, _, code := muster(t, append(b, "is-up", "central", "c0")...)
		return code == 0
	})
	w := startOut(t, append(b, "watch", "central", "--json")...)
	// The watch reports the group as it finds it first: once it has, it is
	// watching, and sees c1's election.
	eventually(t, 10*time.Second, "watch reports c0", func() bool {
		return w.lines()[0] == `{"type":"joined","group":"central","member":"c0"}`
	})
	c1 := start(t, append(b, "campaign", "central", "c1")...)
	eventually(t, 10*time.Second, "c1 leads", func() bool {
		out, _, _ := muster(t, append(b, "leader", "central")...)
		return out == "c1\n"
	})
	// The file backend's watch polls: a leadership shorter than a poll may
	// be missed, so c1 resigns only once the watch has reported it.
	eventually(t, 10*time.Second, "watch reports c1 leading", func() bool {
		return slices.Contains(w.lines(), `{"type":"leader","group":"central","member":"c1"}`)
	})
	start(t, append(b, "campaign", "central", "c2")...)
	_ = c1.Process.Signal(syscall.SIGTERM) // resigns
	eventually(t, 10*time.Second, "c2 leads", func() bool {
		out, _, _ := muster(t, append(b, "leader", "central")...)
		return out == "c2\n"
	})
	// Between c1's resignation and c2's election nobody leads: a poll in
	// that gap rightly reports it ("member":""). Everything else is exact.
	want := []string{`{"type":"joined","group":"central","member":"c0"}`, `{"type":"leader","group":"central","member":"c1"}`, `{"type":"leader","group":"central","member":"c2"}`}
	var seen []string
	eventually(t, 10*time.Second, "watch saw "+strings.Join(want, " "), func() bool {
		seen = seen[:0]
		for _, l := range w.lines() {
			if l != `{"type":"leader","group":"central","member":""}` {
				seen = append(seen, l)
			}
		}
		return strings.Join(seen, "\n") == strings.Join(want, "\n")
	})
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	// The backend's own directory: the file backend refuses one holding
	// files it did not create (the config file here).
	store := filepath.Join(dir, "backend")
	cfg := filepath.Join(dir, "muster.toml")
	os.WriteFile(cfg, []byte("[backend]\nurl = \"file://"+store+"\"\n\n[session]\nheartbeat_intervall = \"1s\"\n"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown key in config", []string{"--config", cfg, "groups"}, cfg + ":5: session.heartbeat_intervall: unknown key"},
		{"missing config", []string{"--config", dir + "/nope.toml", "groups"}, "nope.toml"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"bad flag", []string{"members", "g", "--bogus"}, "unknown flag --bogus"},
		{"bad duration", []string{"--member-ttl", "soon", "groups"}, `--member-ttl "soon": want a duration`},
		{"bad mode", []string{"--url", "file://" + store, "--mode", "sideways", "groups"}, `--mode: "sideways"`},
		{"no scheme", []string{"--url", dir, "groups"}, "has no scheme"},
		{"unreachable backend", []string{"--url", "file:///dev/null/x", "--mode", "inprocess", "groups"}, "/dev/null/x"},
		{"missing group", []string{"--url", "file://" + store, "--mode", "inprocess", "members", "nope"}, `"nope": group not found`},
		{"bad name", []string{"--url", "file://" + store, "--mode", "inprocess", "members", "a/b"}, "path separator"},
		{"bad caps", []string{"--url", "file://" + store, "join", "g", "m", "--caps", "[1]"}, "want a JSON object"},
		{"wrong arity", []string{"is-up", "g"}, "usage: muster is-up GROUP MEMBER"},
		{"lock without command", []string{"lock", "l"}, "usage: muster lock"},
		{"secret redacted", []string{"--url", "file://user:hunter2@/dev/null/x", "--mode", "inprocess", "groups"}, "xxxxx"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := muster(t, tc.args...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 and %q", code, stderr, tc.want)
			}
			if strings.Contains(stderr, "hunter2") {
				t.Fatalf("secret printed: %q", stderr)
			}
			oneLineError(t, stderr)
		})
	}
}
