package host_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/musterhq/muster/plugins/file"
	"github.com/musterhq/muster/plugins/host"
	"github.com/musterhq/muster/servicegroup/driver"
)

func opts(dir, member string, ttl time.Duration) driver.Options {
	return driver.Options{URL: "file://" + dir, Member: member, Instance: member + "-instance", TTL: ttl}
}

// openPlugin opens a session through the file plugin; the test closes it.

func openPlugin(t *testing.T, cfg host.Config, o driver.Options) driver.Driver {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = pluginDir
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := cfg.Factory("file")(ctx, o)
	if err != nil {
		t.Fatalf("open plugin: %v", err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	return d
}

// testLogger logs through t when MUSTER_TEST_LOG is set, and fails the

// test if a plugin built with -race reports a data race.

func testLogger(t *testing.T) *zap.Logger {
	core, logs := observer.New(zapcore.DebugLevel)
	t.Cleanup(func() {
		for _, e := range logs.All() {
			if strings.Contains(e.Message, "DATA RACE") {
				t.Errorf("plugin: %s", e.Message)
			}
			if os.Getenv("MUSTER_TEST_LOG") != "" {
				t.Logf("%s %s %v", e.Level, e.Message, e.ContextMap())
			}
		}
	})
	return zap.New(core)
}

func openInProcess(t *testing.T, o driver.Options) driver.Driver {
	t.Helper()
	d, err := file.Open(context.Background(), o)
	if err != nil {
		t.Fatalf("open in-process: %v", err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	return d
}

func pidOf(t *testing.T, d driver.Driver) int {
	t.Helper()
	pid, ok := host.PID(d)
	if !ok || pid <= 0 {
		t.Fatalf("no plugin pid (%d, %v)", pid, ok)
	}
	return pid
}

// step is one SPI call of the round trip and what it must return.
type step struct {
	name string
	want error // a sentinel, or nil
	call func(ctx context.Context, d driver.Driver) (any, error)
}

var capsA = []byte{0x81, 0xa1, 'k', 0xa1, 'v'} // msgpack {"k": "v"}
var capsB = []byte{0x81, 0xa1, 'k', 0xa1, 'w'} // msgpack {"k": "w"}

func roundTripSteps(member string) []step {
	var tok driver.Token
	return []step{
		{"create group", nil, func(ctx context.Context, d driver.Driver) (any, error) { return nil, d.CreateGroup(ctx, "compute") }},
		{"create group again", driver.ErrGroupExists, func(ctx context.Context, d driver.Driver) (any, error) { return nil, d.CreateGroup(ctx, "compute") }},
		{"create group bad name", driver.ErrInvalidName, func(ctx context.Context, d driver.Driver) (any, error) { return nil, d.CreateGroup(ctx, "a/b") }},
		{"groups", nil, func(ctx context.Context, d driver.Driver) (any, error) { return d.Groups(ctx) }},
		{"join missing group", driver.ErrGroupNotFound, func(ctx context.Context, d driver.Driver) (any, error) { return nil, d.Join(ctx, "missing", nil) }},
		{"join", nil, func(ctx context.Context, d driver.Driver) (any, error) { return nil, d.Join(ctx, "compute", capsA) }},
		{"join again", driver.ErrMemberExists, func(ctx context.Context, d driver.Driver) (any, error) { return nil, d.Join(ctx, "compute", capsA) }},
		{"members", nil, members("compute")},
		{"members of missing group", driver.ErrGroupNotFound, members("missing")},
		{"set capabilities", nil, func(ctx context.Context, d driver.Driver) (any, error) {
			return nil, d.SetCapabilities(ctx, "compute", capsB)
		}},
		{"set capabilities missing group", driver.ErrGroupNotFound, func(ctx context.Context, d driver.Driver) (any, error) {
			return nil, d.SetCapabilities(ctx, "missing", capsB)
		}},
		{"set forced down", nil, func(ctx context.Context, d driver.Driver) (any, error) {
			return nil, d.SetForcedDown(ctx, "compute", member, true)
		}},
		{"members forced down", nil, members("compute")},
		{"set forced down missing group", driver.ErrGroupNotFound, func(ctx context.Context, d driver.Driver) (any, error) {
			return nil, d.SetForcedDown(ctx, "missing", member, true)
		}},
		{"clear forced down", nil, func(ctx context.Context, d driver.Driver) (any, error) {
			return nil, d.SetForcedDown(ctx, "compute", member, false)
		}},
		{"delete non-empty group", driver.ErrGroupNotEmpty, func(ctx context.Context, d driver.Driver) (any, error) { return nil, d.DeleteGroup(ctx, "compute") }},
		{"heartbeat", nil, func(ctx context.Context, d driver.Driver) (any, error) { return nil, d.Heartbeat(ctx) }},
		{"leave", nil, func(ctx context.Context, d driver.Driver) (any, error) { return nil, d.Leave(ctx, "compute") }},
		{"leave again", driver.ErrNotMember, func(ctx context.Context, d driver.Driver) (any, error) { return nil, d.Leave(ctx, "compute") }},
		{"set capabilities not member", driver.ErrNotMember, func(ctx context.Context, d driver.Driver) (any, error) {
			return nil, d.SetCapabilities(ctx, "compute", capsB)
		}},
		{"delete group", nil, func(ctx context.Context, d driver.Driver) (any, error) { return nil, d.DeleteGroup(ctx, "compute") }},
		{"delete missing group", driver.ErrGroupNotFound, func(ctx context.Context, d driver.Driver) (any, error) { return nil, d.DeleteGroup(ctx, "compute") }},
		{"lock holder of free lock", driver.ErrNotLocked, func(ctx context.Context, d driver.Driver) (any, error) { return d.LockHolder(ctx, "l") }},
		{"try lock", nil, func(ctx context.Context, d driver.Driver) (any, error) {
			t, err := d.TryLock(ctx, "l")
			tok = t
			return nil, err // tokens differ between directories only by history; compared below
		}},
		{"try lock held", driver.ErrLockHeld, func(ctx context.Context, d driver.Driver) (any, error) { return d.TryLock(ctx, "l") }},
		{"lock holder", nil, func(ctx context.Context, d driver.Driver) (any, error) {
			h, err := d.LockHolder(ctx, "l")
			if err == nil && h.Token != tok {
				return nil, errors.New("holder token is not the acquired token")
			}
			return h.Member, err
		}},
		{"unlock wrong token", driver.ErrNotLocked, func(ctx context.Context, d driver.Driver) (any, error) { return nil, d.Unlock(ctx, "l", tok+1) }},
		{"unlock", nil, func(ctx context.Context, d driver.Driver) (any, error) { return nil, d.Unlock(ctx, "l", tok) }},
		{"try lock again", nil, func(ctx context.Context, d driver.Driver) (any, error) {
			t, err := d.TryLock(ctx, "l")
			if err == nil && t <= tok {
				return nil, errors.New("fencing token did not increase")
			}
			return nil, err
		}},
		{"break lock", nil, func(ctx context.Context, d driver.Driver) (any, error) { return nil, d.BreakLock(ctx, "l") }},
		{"break free lock", driver.ErrNotLocked, func(ctx context.Context, d driver.Driver) (any, error) { return nil, d.BreakLock(ctx, "l") }},
		{"try lock bad name", driver.ErrInvalidName, func(ctx context.Context, d driver.Driver) (any, error) { return d.TryLock(ctx, "") }},
	}
}

// members returns Members with the volatile UpdatedAt checked and cleared.

func members(group string) func(ctx context.Context, d driver.Driver) (any, error) {
	return func(ctx context.Context, d driver.Driver) (any, error) {
		ms, err := d.Members(ctx, group)
		for i := range ms {
			if ms[i].UpdatedAt.IsZero() {
				return nil, errors.New("member without UpdatedAt")
			}
			ms[i].UpdatedAt = time.Time{}
		}
		return ms, err
	}
}

// TestRoundTrip runs every SPI call through the plugin and in-process

// against the file backend, and wants the same results and errors: the

// same sentinel and the same text.

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	const member = "m1"
	plug := openPlugin(t, host.Config{}, opts(t.TempDir(), member, time.Minute))
	local := openInProcess(t, opts(t.TempDir(), member, time.Minute))

	if _, ok := local.(driver.Watcher); ok != implements[driver.Watcher](plug) {
		t.Errorf("plugin Watcher = %v, in-process %v", !ok, ok)
	}
	if _, ok := local.(driver.LockWaiter); ok != implements[driver.LockWaiter](plug) {
		t.Errorf("plugin LockWaiter = %v, in-process %v", !ok, ok)
	}

	plugSteps, localSteps := roundTripSteps(member), roundTripSteps(member)
	for i, st := range plugSteps {
		gotP, errP := st.call(ctx, plug)
		gotL, errL := localSteps[i].call(ctx, local)
		if st.want == nil && errP != nil {
			t.Errorf("%s: plugin: %v", st.name, errP)
			continue
		}
		if st.want != nil && !errors.Is(errP, st.want) {
			t.Errorf("%s: plugin error %v, want errors.Is %v", st.name, errP, st.want)
		}
		if (errP == nil) != (errL == nil) || errP != nil && errP.Error() != errL.Error() {
			t.Errorf("%s: plugin error %q, in-process %q", st.name, errP, errL)
		}
		var oe *driver.OpError
		if errP != nil && !errors.As(errP, &oe) {
			t.Errorf("%s: plugin error %v is not a *driver.OpError", st.name, errP)
		}
		if !reflect.DeepEqual(gotP, gotL) {
			t.Errorf("%s: plugin %#v, in-process %#v", st.name, gotP, gotL)
		}
	}

	if err := plug.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := plug.Close(ctx); err != nil {
		t.Fatalf("close again: %v", err)
	}
	if err := plug.Join(ctx, "compute", nil); !errors.Is(err, driver.ErrClosed) {
		t.Fatalf("join after close: %v, want ErrClosed", err)
	}
	select {
	case <-plug.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
}

func implements[I any](d driver.Driver) bool {
	_, ok := d.(I)
	return ok
}

// TestMemberVisibleAcrossProcesses: a member joined through the plugin is

// seen by an in-process session on the same directory, and is gone as

// soon as the plugin session is closed.

func TestMemberVisibleAcrossProcesses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	observer := openInProcess(t, opts(dir, "observer", time.Minute))
	if err := observer.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	plug := openPlugin(t, host.Config{}, opts(dir, "agent", time.Minute))
	if err := plug.Join(ctx, "g", capsA); err != nil {
		t.Fatal(err)
	}
	if got := memberIDs(t, observer, "g"); got != "agent" {
		t.Fatalf("members %q, want agent", got)
	}
	pid := pidOf(t, plug)
	if err := plug.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Fatalf("plugin %d still running after Close", pid)
	}
	if got := memberIDs(t, observer, "g"); got != "" {
		t.Fatalf("members %q after Close, want none", got)
	}
}

// One member's record is one call through the plugin (driver.MemberGetter),
// with the backend's errors.
func TestMemberGetter(t *testing.T) {
	ctx := context.Background()
	plug := openPlugin(t, host.Config{}, opts(t.TempDir(), "agent", time.Minute))
	if err := plug.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if err := plug.Join(ctx, "g", capsA); err != nil {
		t.Fatal(err)
	}
	mg, ok := plug.(driver.MemberGetter)
	if !ok {
		t.Fatal("a plugin session is not a driver.MemberGetter")
	}
	m, err := mg.Member(ctx, "g", "agent")
	if err != nil || m.ID != "agent" || !bytes.Equal(m.Capabilities, capsA) || m.UpdatedAt.IsZero() {
		t.Fatalf("Member: %+v, %v; want agent with its capabilities and a time", m, err)
	}
	if _, err := mg.Member(ctx, "g", "nobody"); !errors.Is(err, driver.ErrNotMember) {
		t.Errorf("Member of a non-member: %v; want ErrNotMember", err)
	}
	if _, err := mg.Member(ctx, "nogroup", "agent"); !errors.Is(err, driver.ErrGroupNotFound) {
		t.Errorf("Member in a missing group: %v; want ErrGroupNotFound", err)
	}
}

func memberIDs(t *testing.T, d driver.Driver, group string) string {
	t.Helper()
	ms, err := d.Members(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return strings.Join(ids, ",")
}

func TestChecksum(t *testing.T) {
	bin, err := os.ReadFile(filepath.Join(pluginDir, host.BinaryName("file")))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(bin)
	good := hex.EncodeToString(sum[:])

	t.Run("good", func(t *testing.T) {
		d := openPlugin(t, host.Config{Checksums: map[string]string{"file": strings.ToUpper(good)}},
			opts(t.TempDir(), "m", time.Minute))
		if err := d.Heartbeat(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("bad", func(t *testing.T) {
		bad := strings.Repeat("0", 64)
		cfg := host.Config{Dir: pluginDir, Checksums: map[string]string{"file": bad}}
		d, err := cfg.Factory("file")(context.Background(), opts(t.TempDir(), "m", time.Minute))
		if err == nil {
			d.Close(context.Background())
			t.Fatal("opened a plugin whose checksum does not match")
		}
		if !errors.Is(err, host.ErrChecksum) || !strings.Contains(err.Error(), "checksum does not match") ||
			!strings.Contains(err.Error(), "expected sha256 "+bad) || !strings.Contains(err.Error(), "got "+good) {
			t.Fatalf("error %q", err)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		cfg := host.Config{Dir: pluginDir, Checksums: map[string]string{"file": "abc"}}
		_, err := cfg.Factory("file")(context.Background(), opts(t.TempDir(), "m", time.Minute))
		if err == nil || !strings.Contains(err.Error(), "not a hex SHA-256") {
			t.Fatalf("error %v", err)
		}
	})
}

func TestMissingBinary(t *testing.T) {
	dir := t.TempDir()
	_, err := host.Config{Dir: dir}.Factory("file")(context.Background(), opts(t.TempDir(), "m", time.Minute))
	want := `plugin for scheme "file" not found: ` + filepath.Join(dir, "muster-plugin-file") + `: no such file or directory`
	if err == nil || err.Error() != want {
		t.Fatalf("error %v\nwant %s", err, want)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("error %v is not ErrNotExist", err)
	}
	_, err = host.Config{Dir: dir}.Factory("../x")(context.Background(), opts(t.TempDir(), "m", time.Minute))
	if err == nil || !strings.Contains(err.Error(), "not a URL scheme") {
		t.Fatalf("error %v", err)
	}
}

// An alias scheme (tooz's spellings, TLS variants) runs the plain scheme's
// plugin.
func TestAliasScheme(t *testing.T) {
	dir := t.TempDir()
	for scheme, plugin := range map[string]string{
		"rediss": "redis", "kazoo": "zookeeper", "etcd3+https": "etcd", "postgres": "postgresql", "mariadb": "mysql", "file": "file",
	} {
		if got := host.BinaryName(scheme); got != "muster-plugin-"+plugin {
			t.Errorf("BinaryName(%q) = %q; want muster-plugin-%s", scheme, got, plugin)
		}
		_, err := host.Config{Dir: dir}.Factory(scheme)(context.Background(), opts(t.TempDir(), "m", time.Minute))
		if want := filepath.Join(dir, "muster-plugin-"+plugin); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Factory(%q): %v; want it to look for %s", scheme, err, want)
		}
	}
}

func TestNotAPlugin(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, host.BinaryName("file"))
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho hello\nsleep 0.2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := host.Config{Dir: dir, StartTimeout: 5 * time.Second}.Factory("file")(context.Background(), opts(t.TempDir(), "m", time.Minute))
	if err == nil || !strings.Contains(err.Error(), "not a muster plugin") || !strings.Contains(err.Error(), `"hello"`) {
		t.Fatalf("error %v", err)
	}
}

func TestStartTimeout(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, host.BinaryName("file"))
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexec sleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := host.Config{Dir: dir, StartTimeout: 300 * time.Millisecond}.Factory("file")(context.Background(), opts(t.TempDir(), "m", time.Minute))
	if err == nil || !strings.Contains(err.Error(), "timeout while waiting for plugin to start") {
		t.Fatalf("error %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = host.Config{Dir: dir}.Factory("file")(ctx, opts(t.TempDir(), "m", time.Minute))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
}

// TestPluginKilled: kill -9 of the plugin closes Done at once, every call

// then returns ErrSessionLost, and Close still works.

// TestPluginFrozen: a SIGSTOPped plugin stops answering pings; the host

// declares the session lost and kills it.

// TestCloseLeavesNoProcess: Close stops the plugin and waits for it.

// startHost re-executes the test binary as a host of a file plugin on

// dir, and returns it and the plugin's pid.

// TestHostKilled: a plugin whose host is killed -9 exits within 2s, and

// its member does not outlive it.

// TestHostFrozen: a SIGSTOPped host is reported down within its TTL: its

// plugin, which is fine, ends the session because the heartbeats stopped.

// TestNoHeartbeat: when the host stops heartbeating (frozen), the plugin

// ends the session within the TTL, even though the plugin itself is fine.

// TestHostileStderr: stderr lines that crash go-plugin's parser, or are

// merely malformed, are logged as text and the host keeps working.

func TestHostileStderr(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	cfg := host.Config{Dir: pluginDir, Logger: zap.New(core)}
	ctx := context.Background()
	d, err := cfg.Factory("hostile")(ctx, opts(t.TempDir(), "m", time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(ctx)
	for range 5 {
		if err := d.CreateGroup(ctx, "g"); err != nil && !errors.Is(err, driver.ErrGroupExists) {
			t.Fatal(err)
		}
		time.Sleep(60 * time.Millisecond) // the plugin writes its lines every 50ms
	}
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{
		`{"@message": 42, "@level": "info"}`:             false,
		`{"@message": "level is a number", "@level": 7}`: false,
		`timestamp is a number`:                          false,
		`{ broken json`:                                  false,
		`[ERROR] prefixed text`:                          false,
		`well formed`:                                    false,
	}
	truncated := false
	for _, e := range logs.All() {
		if _, ok := want[e.Message]; ok {
			want[e.Message] = true
		}
		if e.Message == "well formed" && (e.Level != zapcore.WarnLevel || e.ContextMap()["module"] != "hostile") {
			t.Errorf("well-formed line logged as %v %v", e.Level, e.ContextMap())
		}
		if e.ContextMap()["truncated"] == true {
			truncated = true
			if len(e.Message) > 64<<10 {
				t.Errorf("truncated line of %d bytes", len(e.Message))
			}
		}
	}
	for msg, seen := range want {
		if !seen {
			t.Errorf("line %q not logged", msg)
		}
	}
	if !truncated {
		t.Error("the huge line was not logged truncated")
	}
}

func TestDefaultDir(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	_, err = host.Config{}.Factory("nosuch")(context.Background(), opts(t.TempDir(), "m", time.Minute))
	want := filepath.Join(filepath.Dir(exe), "muster-plugin-nosuch")
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want it to name %s", err, want)
	}
}

// TestRestartBackoff: after a failed start the Factory waits before the

// next, honouring the caller's context.

// TestCloseWithExpiredContext still leaves the groups at once.
