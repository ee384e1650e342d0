package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseGood(t *testing.T) {
	c, err := Parse("m.toml", `
# a comment
[backend]
url = "file:///tmp/x"
mode = "inprocess"
plugin_checksums = { file = "`+strings.Repeat("ab", 32)+`" }

[session]
member = "node-1"
heartbeat_interval = "200ms"
member_ttl = "2s"

[log]
format = "json"

[agent.compute.capabilities]
zone = "az1"
nested = { a = 1 }

[agent.central]
tasks_group = ""
tasks = ["a", "b"]
algorithm = "tooz"
`)
	if err != nil {
		t.Fatal(err)
	}
	if c.Backend.URL != "file:///tmp/x" || c.Backend.Mode != "inprocess" || c.Session.Member != "node-1" {
		t.Fatalf("decoded %+v", c)
	}
	if c.Session.HeartbeatInterval.Duration != 200*time.Millisecond || c.Session.MemberTTL.Duration != 2*time.Second {
		t.Fatalf("durations %+v", c.Session)
	}
	if c.Agent.Central.TasksGroupOrDefault() != "" || len(c.Agent.Central.Tasks) != 2 {
		t.Fatalf("central %+v", c.Agent.Central)
	}
	if c.Agent.Compute.Capabilities["zone"] != "az1" {
		t.Fatalf("caps %+v", c.Agent.Compute.Capabilities)
	}
	sg := c.ServiceGroup()
	if sg.URL != c.Backend.URL || sg.HeartbeatInterval != 200*time.Millisecond || sg.Member != "node-1" {
		t.Fatalf("servicegroup config %+v", sg)
	}
	if _, err := c.Log.Logger(); err != nil {
		t.Fatal(err)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.Backend.URL, "file:///") || c.Session.MemberTTL.Duration <= c.Session.HeartbeatInterval.Duration {
		t.Fatalf("defaults %+v", c)
	}
	if c.Agent.Central.TasksGroupOrDefault() != "compute" {
		t.Fatal("tasks group default")
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		line       int
		key, msg   string
	}{
		{"unknown key", "[backend]\nurl = \"file:///x\"\nurll = 3\n", 3, "backend.urll", `unknown key (did you mean "backend.url"?)`},
		{"unknown table", "[session]\nmember = \"a\"\n\n[bogus]\nx = 1\n", 4, "bogus", "unknown key"},
		{"unknown dotted", "session.membr = \"a\"\n", 1, "session.membr", "unknown key"},
		{"bad duration", "[session]\nheartbeat_interval = \"soon\"\n", 2, "session.heartbeat_interval", "not a duration"},
		{"wrong type", "[session]\n\nmember_ttl = 5\n", 3, "session.member_ttl", ""},
		{"bad mode", "[backend]\nurl = \"file:///x\"\nmode = \"plgin\"\n", 3, "backend.mode", `"plgin"`},
		{"no scheme", "[backend]\nurl = \"/var/lib/muster\"\n", 2, "backend.url", "no scheme"},
		{"memory as plugin", "[backend]\nurl = \"memory://x\"\nmode = \"plugin\"\n", 3, "backend.mode", "cannot run as a plugin"},
		{"bad checksum", "[backend.plugin_checksums]\nfile = \"abc\"\n", 2, "backend.plugin_checksums.file", "not a hex sha256"},
		{"bad member", "[session]\nmember = \"a/b\"\n", 2, "session.member", "path separator"},
		{"bad level", "[log]\nlevel = \"loud\"\n", 2, "log.level", "loud"},
		{"syntax", "[backend\nurl = 1\n", 2, "", "end table name"},
		{"bad algorithm", "[agent.central]\nalgorithm = \"maglev\"\n", 2, "agent.central.algorithm", "maglev"},
		{"string for integer", "[backend]\nurl = 1\n", 2, "backend.url", "want a string in quotes, found an integer"},
		{"string for table", "backend = \"file:///x\"\n", 1, "backend", "want a table"},
		{"interval too short", "[session]\nheartbeat_interval = \"1ns\"\n", 2, "session.heartbeat_interval", "at least 10ms"},
		{"ttl too short", "[session]\nmember_ttl = \"1ms\"\n", 2, "session.member_ttl", "at least 100ms"},
		{"poll too short", "[agent.central]\npoll_interval = \"1ms\"\n", 2, "agent.central.poll_interval", "at least 10ms"},
		{"watch too short", "[session]\nwatch_interval = \"1us\"\n", 2, "session.watch_interval", "at least 10ms"},
		{"dial too short", "[backend]\ndial_timeout = \"1ms\"\n", 2, "backend.dial_timeout", "at least 100ms"},
		{"bad tasks group", "[agent.central]\ntasks_group = \"a/b\"\n", 2, "agent.central.tasks_group", "path separator"},
		{"blank group", "[agent.compute]\ngroup = \" \"\n", 2, "agent.compute.group", "whitespace"},
		{"bad weight", "[agent.compute.capabilities]\nweight = \"heavy\"\n", 2, "agent.compute.capabilities.weight", "not an integer"},
		{"negative weight", "[agent.compute.capabilities]\nweight = -1\n", 2, "agent.compute.capabilities.weight", "below 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("m.toml", tc.text)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %v (%T), want *Error", err, err)
			}
			if ce.Line != tc.line || ce.Key != tc.key || !strings.Contains(ce.Msg, tc.msg) {
				t.Fatalf("got line %d key %q msg %q (%v); want line %d key %q msg containing %q",
					ce.Line, ce.Key, ce.Msg, err, tc.line, tc.key, tc.msg)
			}
			if !strings.HasPrefix(err.Error(), "config m.toml:") {
				t.Fatalf("message %q does not name the file", err)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("/nonexistent/muster.toml")
	if err == nil || strings.Count(err.Error(), "/nonexistent/muster.toml") != 1 {
		t.Fatalf("got %v; want the path named once", err)
	}
}

// A relative plugin_dir is relative to the config file, not to the
// working directory.
func TestRelativePluginDir(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "muster.toml")
	if err := os.WriteFile(p, []byte("[backend]\nplugin_dir = \"bin\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "bin"); c.Backend.PluginDir != want {
		t.Fatalf("plugin_dir %q; want %q", c.Backend.PluginDir, want)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("[backend]\nurl = \"file:///x\"\n")
	f.Add("a.b.c = { d = [1, 2] }\n[[x]]\n")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = Parse("f.toml", s) // must not panic
	})
}
