package zookeeper_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"reflect"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/testserver"
	"github.com/musterhq/muster/plugins/zookeeper"
	"github.com/musterhq/muster/servicegroup/driver"
)

// toozPeer is the Python side: tooz 3.1 with Debian's /usr/bin/python3.
type toozPeer struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startTooz(t *testing.T, url, group string) *toozPeer {
	t.Helper()
	py, err := testserver.Lookup("python3-tooz", "/usr/bin/python3")
	if err == nil {
		if _, serr := os.Stat("/usr/lib/python3/dist-packages/tooz/drivers/zookeeper.py"); serr != nil {
			err = errors.Join(testserver.ErrMissing, serr)
		}
	}
	if err != nil {
		testserver.Missing(t, err)
	}
	cmd := exec.Command(py, "testdata/tooz_interop.py", url, group)
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	outp, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &toozPeer{cmd: cmd, in: in, out: bufio.NewScanner(outp)}
	t.Cleanup(func() {
		_, _ = io.WriteString(in, "quit\n")
		_ = in.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	if !p.out.Scan() || p.out.Text() != "joined" {
		t.Fatalf("tooz side did not join: %q %v", p.out.Text(), p.out.Err())
	}
	return p
}

func (p *toozPeer) ask(t *testing.T, line string, v any) {
	t.Helper()
	if _, err := io.WriteString(p.in, line+"\n"); err != nil {
		t.Fatal(err)
	}
	if !p.out.Scan() {
		t.Fatalf("tooz side: no answer to %q: %v", line, p.out.Err())
	}
	if err := json.Unmarshal(p.out.Bytes(), v); err != nil {
		t.Fatalf("tooz side answered %q: %v", p.out.Text(), err)
	}
}

// TestToozInterop: tooz and muster list each other's members with their
// capabilities, and a lock held by one side excludes the other.
func TestToozInterop(t *testing.T) {
	ns := "interop" + randomID()
	url := "zookeeper://" + server(t).Addr() + "?namespace=" + ns
	ctx := context.Background()
	d, err := zookeeper.Open(ctx, driver.Options{URL: url, Member: "go-1", TTL: time.Minute, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(ctx)
	if err := d.CreateGroup(ctx, "compute"); err != nil {
		t.Fatal(err)
	}
	caps, _ := driver.EncodeCapabilities(map[string]any{"lang": "go", "zone": "z1"})
	if err := d.Join(ctx, "compute", caps); err != nil {
		t.Fatal(err)
	}
	py := startTooz(t, url, "compute")

	// tooz sees us.
	var got struct{ Members map[string]any }
	py.ask(t, "members", &got)
	want := map[string]any{
		"go-1":   map[string]any{"lang": "go", "zone": "z1"},
		"tooz-1": map[string]any{"lang": "python", "slots": float64(3)},
	}
	if !reflect.DeepEqual(got.Members, want) {
		t.Errorf("tooz lists %v; want %v", got.Members, want)
	}
	// We see tooz.
	ms, err := d.Members(ctx, "compute")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]map[string]any{}
	for _, m := range ms {
		c, err := driver.DecodeCapabilities(m.Capabilities)
		if err != nil {
			t.Fatalf("capabilities of %q: %v", m.ID, err)
		}
		seen[m.ID] = c
	}
	wantGo := map[string]map[string]any{
		"go-1":   {"lang": "go", "zone": "z1"},
		"tooz-1": {"lang": "python", "slots": int64(3)},
	}
	if !reflect.DeepEqual(seen, wantGo) {
		t.Errorf("muster lists %v; want %v", seen, wantGo)
	}

	// A lock held by tooz excludes muster, and the other way round.
	var acq struct{ Acquired bool }
	py.ask(t, "trylock shared", &acq)
	if !acq.Acquired {
		t.Fatal("tooz could not take a free lock")
	}
	if _, err := d.TryLock(ctx, "shared"); !errors.Is(err, driver.ErrLockHeld) {
		t.Errorf("muster TryLock of a lock tooz holds: %v; want ErrLockHeld", err)
	}
	if h, err := d.LockHolder(ctx, "shared"); err != nil || h.Member != "tooz-1" {
		t.Errorf("LockHolder of tooz's lock: %+v, %v; want member tooz-1", h, err)
	}
	var rel struct{ Released bool }
	py.ask(t, "unlock shared", &rel)
	tok, err := d.TryLock(ctx, "shared")
	if err != nil {
		t.Fatalf("muster TryLock after tooz released: %v", err)
	}
	py.ask(t, "trylock shared", &acq)
	if acq.Acquired {
		t.Error("tooz took a lock muster holds")
	}
	if err := d.Unlock(ctx, "shared", tok); err != nil {
		t.Fatal(err)
	}
	// Muster's own listing hides tooz's lock directory.
	gs, err := d.Groups(ctx)
	if err != nil || !reflect.DeepEqual(gs, []string{"compute"}) {
		t.Errorf("Groups: %q, %v; want [compute]", gs, err)
	}
}
