package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster/servicegroup/driver"
)

// Issue 15, items 6, 9-14: what a newcomer meets, checked by behaviour
// (exit status, number of lines, what is named), not by wording.

// writeConfig writes a config file in a new temp dir and returns its path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "muster.toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// refused runs muster, which must fail with exit 2 and one line on stderr
// that contains every one of names.
func refused(t *testing.T, args []string, names ...string) string {
	t.Helper()
	out, stderr, code := muster(t, args...)
	if code != 2 {
		t.Fatalf("muster %q: exit %d (stdout %q, stderr %q); want 2", args, code, out, stderr)
	}
	oneLineError(t, stderr)
	for _, n := range names {
		if !strings.Contains(stderr, n) {
			t.Fatalf("muster %q: %q does not name %q", args, stderr, n)
		}
	}
	return stderr
}

// Item 6: flags and the config file share one validation, with bounds;
// an error names what the operator wrote (the flag, or the key and line).
func TestSettingsBounded(t *testing.T) {
	url := "file://" + t.TempDir()
	for _, tc := range []struct {
		args []string
		name string
	}{
		{[]string{"--url", url, "--heartbeat-interval", "1ns", "groups"}, "--heartbeat-interval"},
		{[]string{"--url", url, "--member-ttl", "1ms", "groups"}, "--member-ttl"},
		{[]string{"--url", url, "--heartbeat-interval", "-1s", "groups"}, "--heartbeat-interval"},
		{[]string{"--url", url, "agent", "central", "--poll-interval", "1ms"}, "--poll-interval"},
		{[]string{"--url", url, "agent", "central", "--tasks-group", "a/b"}, "--tasks-group"},
		{[]string{"--url", url, "agent", "central", "--algorithm", "md5"}, "--algorithm"},
	} {
		refused(t, tc.args, tc.name)
	}
	for key, text := range map[string]string{
		"session.heartbeat_interval":  "[session]\nheartbeat_interval = \"1ns\"\n",
		"agent.central.poll_interval": "[agent.central]\npoll_interval = \"1ms\"\n",
		"agent.central.tasks_group":   "[agent.central]\ntasks_group = \"a/b\"\n",
	} {
		cfg := writeConfig(t, "[backend]\nurl = \""+url+"\"\n"+text)
		refused(t, []string{"--config", cfg, "groups"}, key, cfg+":")
	}
}

// Item 9: a failure inside the plugin is one line on stderr, in muster's
// words, as in-process.
func TestPluginErrorsOneLine(t *testing.T) {
	for _, mode := range modes {
		stderr := refused(t, []string{"--url", "file://", "--mode", mode, "groups"}, "no directory")
		if strings.Contains(stderr, "open failed") {
			t.Errorf("%s: %q", mode, stderr)
		}
	}
	// Not a muster plugin: a binary that prints something else.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "muster-plugin-file"), []byte("#!/bin/sh\necho hello\necho world\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, "[backend]\nurl = \"file://"+t.TempDir()+"\"\nplugin_dir = \""+dir+"\"\n")
	stderr := refused(t, []string{"--config", cfg, "groups"}, "not a muster plugin", "hello")
	if strings.Contains(stderr, "Unrecognized") {
		t.Errorf("go-plugin's words: %q", stderr)
	}
	// A plugin that never answers: the handshake and the setting that
	// bounded it are named.
	hang := t.TempDir()
	if err := os.WriteFile(filepath.Join(hang, "muster-plugin-file"), []byte("#!/bin/sh\nexec sleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg = writeConfig(t, "[backend]\nurl = \"file://"+t.TempDir()+"\"\nplugin_dir = \""+hang+"\"\ndial_timeout = \"500ms\"\n")
	refused(t, []string{"--config", cfg, "groups"}, "handshake", "dial_timeout")
}

// Item 10: error text says each thing once, without package names, and
// in the operator's terms.
func TestErrorText(t *testing.T) {
	// --url file:// names the backend once.
	for _, mode := range modes {
		stderr := refused(t, []string{"--url", "file://", "--mode", mode, "groups"})
		if strings.Count(stderr, "file: ") > 1 || strings.Count(stderr, `"file://"`) > 1 || strings.Contains(stderr, "servicegroup") {
			t.Errorf("%s: repeated context: %q", mode, stderr)
		}
	}
	// A missing group: no package prefix, the group named once.
	stderr := refused(t, []string{"--url", "file://" + t.TempDir(), "--mode", "inprocess", "members", "nosuch"}, "nosuch")
	if strings.Count(stderr, "nosuch") != 1 || strings.Contains(stderr, "servicegroup") {
		t.Errorf("missing group: %q", stderr)
	}
	// A TOML type error names the key and its line, not Go types.
	for key, text := range map[string]string{
		"backend.url":        "[backend]\nurl = 1\n",
		"backend":            "backend = \"file:///x\"\n",
		"session.member_ttl": "[backend]\nurl = \"file:///x\"\n[session]\nmember_ttl = 5\n",
	} {
		cfg := writeConfig(t, text)
		stderr := refused(t, []string{"--config", cfg, "groups"}, key, cfg+":")
		for _, goWord := range []string{"int64", "config.", "destination", "TextUnmarshaler"} {
			if strings.Contains(stderr, goWord) {
				t.Errorf("%s: Go's words in %q", key, stderr)
			}
		}
	}
	// A bad flag value names the flag with two dashes and what it wants.
	stderr = refused(t, []string{"--heartbeat-interval", "soon", "groups"}, "--heartbeat-interval", "duration")
	if strings.Contains(stderr, " -heartbeat") || strings.Contains(stderr, "parse error") {
		t.Errorf("bad flag: %q", stderr)
	}
	refused(t, []string{"ring", "g", "k", "--replicas", "many"}, "--replicas", "number")
	// A missing config file: its path once.
	missing := filepath.Join(t.TempDir(), "nope.toml")
	if stderr := refused(t, []string{"--config", missing, "groups"}); strings.Count(stderr, missing) != 1 {
		t.Errorf("missing config: %q", stderr)
	}
	// The TTL-raised warning prints durations.
	_, stderr, code := muster(t, "--url", "file://"+t.TempDir(), "--mode", "inprocess",
		"--heartbeat-interval", "2s", "--member-ttl", "1s", "groups")
	if code != 0 || !strings.Contains(stderr, `"1s"`) || !strings.Contains(stderr, `"2s"`) {
		t.Errorf("TTL warning: exit %d, %q; want the durations 1s and 2s", code, stderr)
	}
}

// Item 11: one rule per command for a missing group. Commands that read a
// group refuse a missing one (exit 2: a typo must not read as "empty");
// join creates it.
func TestMissingGroupRule(t *testing.T) {
	b := backendFlags(t, "inprocess")
	for _, args := range [][]string{
		{"members", "nosuch"}, {"is-up", "nosuch", "m"}, {"ring", "nosuch", "k"}, {"force-down", "nosuch", "m"},
	} {
		out, stderr, code := muster(t, append(b, args...)...)
		if code != 2 || out != "" || !strings.Contains(stderr, "nosuch") {
			t.Errorf("muster %s: exit %d, stdout %q, stderr %q; want exit 2 naming the group", args[0], code, out, stderr)
		}
	}
	// leader: a missing group has no leader (exit 1, as for a group
	// nobody leads).
	if out, _, code := muster(t, append(b, "leader", "nosuch")...); code != 1 || out != "" {
		t.Errorf("leader nosuch: exit %d, %q; want 1", code, out)
	}
	start(t, append(b, "join", "made", "m1")...)
	eventually(t, 10*time.Second, "join creates its group", func() bool {
		out, _, code := muster(t, append(b, "groups")...)
		return code == 0 && strings.Contains(out, "made\n")
	})
}

// Item 12: members and groups print a table for people and lines for
// scripts; timestamps to the millisecond.
func TestMembersTableAndLines(t *testing.T) {
	// A long TTL: a heartbeat late on a loaded machine must not drop a
	// member between two listings.
	b := append(backendFlags(t, "inprocess"), "--heartbeat-interval", "1s", "--member-ttl", "30s")
	start(t, append(b, "join", "compute", "host-1", "--caps", `{"vcpus":8}`)...)
	start(t, append(b, "join", "compute", "h2")...)
	eventually(t, 10*time.Second, "both members listed", func() bool {
		out, _, _ := muster(t, append(b, "members", "compute")...)
		return strings.Count(out, "\n") == 2
	})
	// Piped (the default here): tab-separated, no header, ms timestamps.
	out, _, code := muster(t, append(b, "members", "compute")...)
	stamp := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(l, "\t")
		if code != 0 || len(f) != 4 || f[1] != "up" || !stamp.MatchString(f[2]) {
			t.Fatalf("line %q of %q: want id, up, ms timestamp, caps", l, out)
		}
	}
	checkMembersTable(t, mustOut(t, append(b, "members", "compute", "--format", "table")...))
	// groups: names one a line when piped, a table on request.
	if out := mustOut(t, append(b, "groups")...); out != "compute\n" {
		t.Errorf("groups piped: %q", out)
	}
	tbl := mustOut(t, append(b, "groups", "--format", "table")...)
	lines := strings.Split(strings.TrimSpace(tbl), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "GROUP") || len(strings.Fields(lines[1])) != 3 || strings.Fields(lines[1])[2] != "2" {
		t.Errorf("groups table:\n%s", tbl)
	}
	refused(t, append(b, "members", "compute", "--format", "xml"), "--format")
	// On a terminal, the table is the default.
	checkMembersTable(t, onTerminal(t, append(b, "members", "compute")...))
}

func mustOut(t *testing.T, args ...string) string {
	t.Helper()
	out, stderr, code := muster(t, args...)
	if code != 0 {
		t.Fatalf("muster %q: exit %d, %s", args, code, stderr)
	}
	return out
}

// checkMembersTable: a header, then one aligned row per member, each
// column starting where its header does.
func checkMembersTable(t *testing.T, out string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(out, "\r\n", "\n"), "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") {
		t.Fatalf("members table:\n%s", out)
	}
	for _, col := range []string{"STATE", "LAST SEEN", "CAPABILITIES"} {
		i := strings.Index(lines[0], col)
		if i < 0 {
			t.Fatalf("no %s column:\n%s", col, out)
		}
		for _, l := range lines[1:] {
			if len(l) <= i || l[i-1] != ' ' || l[i] == ' ' {
				t.Fatalf("column %s not aligned:\n%s", col, out)
			}
		}
	}
	if !strings.Contains(lines[1], " up ") || !strings.Contains(out, " ago") || !strings.Contains(out, `{"vcpus":8}`) {
		t.Fatalf("members table:\n%s", out)
	}
}

// Item 13: version, help per command, the agents listed, typos
// suggested, each command's own flags first with exit statuses and the
// environment it sets.
func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out := mustOut(t, args...)
		if !strings.Contains(out, "muster ") || !strings.Contains(out, "go1.") {
			t.Errorf("muster %s: %q; want the version and Go's", args[0], out)
		}
	}
	lock := mustOut(t, "help", "lock")
	if lock != mustOut(t, "lock", "--help") {
		t.Errorf("help lock and lock --help differ")
	}
	own, global := strings.Index(lock, "--timeout"), strings.Index(lock, "--url")
	if own < 0 || global < 0 || own > global {
		t.Errorf("lock's own flags are not first:\n%s", lock)
	}
	for _, want := range []string{"MUSTER_FENCING_TOKEN", "MUSTER_LOCK", "exit status", "127"} {
		if !strings.Contains(lock, want) {
			t.Errorf("lock help lacks %s:\n%s", want, lock)
		}
	}
	if strings.Contains(lock, "`") || !regexp.MustCompile(`--mode MODE\s+\S`).MatchString(lock) {
		t.Errorf("--mode help:\n%s", lock)
	}
	if members := mustOut(t, "help", "members"); !strings.Contains(members, "--json") || !strings.Contains(members, "missing group") {
		t.Errorf("members help:\n%s", members)
	}
	out, _, _ := muster(t, "agent")
	if !strings.Contains(out, "compute") || !strings.Contains(out, "central") {
		t.Errorf("muster agent: %q; want both agents listed", out)
	}
	refused(t, []string{"grops"}, `"groups"`)
	refused(t, []string{"help", "membres"}, `"members"`)
	// Top-level help: commands and global flags in aligned columns.
	top := mustOut(t, "help")
	for _, want := range []string{"--url URL", "--config FILE", "--json", "version"} {
		if !strings.Contains(top, want) {
			t.Errorf("top-level help lacks %s:\n%s", want, top)
		}
	}
}

// Item 14: smaller input checks.
func TestSmallInputChecks(t *testing.T) {
	b := backendFlags(t, "inprocess")
	for _, caps := range []string{`{"disk":99999999999999999999}`, `{"weight":"heavy"}`, `{"weight":-1}`} {
		refused(t, append(b, "join", "compute", "h1", "--caps", caps), "--caps")
	}
	for _, name := range []string{" ", " lead", "trail "} {
		refused(t, append(b, "join", name, "h1"), "whitespace")
	}
	if out := mustOut(t, append(b, "groups")...); out != "" {
		t.Errorf("groups after refused joins: %q", out)
	}
	refused(t, []string{"--url", "file://" + t.TempDir(), "demo"}, "--url")

	// A relative plugin_dir is the config file's neighbour, wherever
	// muster runs from.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "plugins"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(binDir, "muster-plugin-file"), filepath.Join(dir, "plugins", "muster-plugin-file")); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "muster.toml")
	if err := os.WriteFile(cfg, []byte("[backend]\nurl = \"file://"+t.TempDir()+"\"\nmode = \"plugin\"\nplugin_dir = \"plugins\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, "muster"), "--config", cfg, "groups")
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "MUSTER_CONFIG=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("relative plugin_dir from another directory: %v: %s", err, out)
	}
}

// Item 10: a second agent on one host (same default member id) is told
// how to fix it, in one line naming the member once.
func TestSecondAgentSuggestsMember(t *testing.T) {
	b := append(backendFlags(t, "inprocess"), "--heartbeat-interval", "1s", "--member-ttl", "30s")
	start(t, append(b, "agent", "compute", "--member", "vm1")...)
	eventually(t, 10*time.Second, "the first agent is up", func() bool {
		_, _, code := muster(t, append(b, "is-up", "compute", "vm1")...)
		return code == 0
	})
	stderr := refused(t, append(b, "agent", "compute", "--member", "vm1"), "--member")
	if strings.Count(stderr, `join "compute"`) > 1 {
		t.Errorf("repeated context: %q", stderr)
	}
}

func TestErrorTextDedupes(t *testing.T) {
	inner := &driver.OpError{Backend: "file", Op: "join", Name: "central", Err: fmt.Errorf("%w: %q", driver.ErrMemberExists, "vm")}
	got := errorText(fmt.Errorf("servicegroup: central agent: join %q: %w", "central", inner))
	if strings.Count(got, `join "central"`) != 1 || strings.Contains(got, "servicegroup") || !strings.Contains(got, "--member") {
		t.Errorf("errorText: %q", got)
	}
}
