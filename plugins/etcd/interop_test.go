package etcd_test

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
	"github.com/musterhq/muster/plugins/etcd"
	"github.com/musterhq/muster/servicegroup/driver"
)

// toozPeer is the Python side: tooz 3.1 with Debian's /usr/bin/python3.
type toozPeer struct {
	in  io.WriteCloser
	out *bufio.Scanner
}

func startTooz(t *testing.T, url, group string) *toozPeer {
	t.Helper()
	py, err := testserver.Lookup("python3-tooz", "/usr/bin/python3")
	if err == nil {
		for _, f := range []string{"/usr/lib/python3/dist-packages/tooz/drivers/etcd3.py", "/usr/lib/python3/dist-packages/etcd3gw"} {
			if _, serr := os.Stat(f); serr != nil {
				err = errors.Join(testserver.ErrMissing, serr)
			}
		}
	}
	if err != nil {
		testserver.Missing(t, err)
	}
	cmd := exec.Command(py, "-W", "ignore", "testdata/tooz_interop.py", url, group)
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	outp, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &toozPeer{in: in, out: bufio.NewScanner(outp)}
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

// TestToozInterop: with each of tooz's etcd drivers (python-etcd3 over
// gRPC, etcd3gw over the HTTP gateway), tooz and muster list each other's
// members with their capabilities, and a lock held by one side excludes
// the other. tooz has no key prefix, so this test uses none: its group
// and lock names are its own.
func TestToozInterop(t *testing.T) {
	addr := server(t).Addr()
	for _, tc := range []struct{ name, toozURL, musterURL string }{
		{"etcd3", "etcd3://" + addr, "etcd3://" + addr}, // one URL for both sides
		{"etcd3gw", "etcd3+http://" + addr + "?api_version=v3", "etcd3+http://" + addr + "?api_version=v3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			group, lock := "compute-"+randomID(), "shared-"+randomID()
			ctx := context.Background()
			d, err := etcd.Open(ctx, driver.Options{URL: tc.musterURL, Member: "go-1", TTL: time.Minute, DialTimeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close(ctx)
			if err := d.CreateGroup(ctx, group); err != nil {
				t.Fatal(err)
			}
			caps, _ := driver.EncodeCapabilities(map[string]any{"lang": "go", "zone": "z1"})
			if err := d.Join(ctx, group, caps); err != nil {
				t.Fatal(err)
			}
			py := startTooz(t, tc.toozURL, group)

			var got struct{ Members map[string]any }
			py.ask(t, "members", &got)
			want := map[string]any{
				"go-1":   map[string]any{"lang": "go", "zone": "z1"},
				"tooz-1": map[string]any{"lang": "python", "slots": float64(3)},
			}
			if !reflect.DeepEqual(got.Members, want) {
				t.Errorf("tooz lists %v; want %v", got.Members, want)
			}
			ms, err := d.Members(ctx, group)
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
				if m.UpdatedAt.IsZero() {
					t.Errorf("member %q has no UpdatedAt", m.ID)
				}
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
			py.ask(t, "trylock "+lock, &acq)
			if !acq.Acquired {
				t.Fatal("tooz could not take a free lock")
			}
			if _, err := d.TryLock(ctx, lock); !errors.Is(err, driver.ErrLockHeld) {
				t.Errorf("muster TryLock of a lock tooz holds: %v; want ErrLockHeld", err)
			}
			if h, err := d.LockHolder(ctx, lock); err != nil || h.Token == 0 || h.Session != "" {
				t.Errorf("LockHolder of tooz's lock: %+v, %v; want a token and no session", h, err)
			}
			var rel struct{ Released bool }
			py.ask(t, "unlock "+lock, &rel)
			if !rel.Released {
				t.Fatal("tooz could not release its lock")
			}
			tok, err := d.TryLock(ctx, lock)
			if err != nil {
				t.Fatalf("muster TryLock after tooz released: %v", err)
			}
			py.ask(t, "trylock "+lock, &acq)
			if acq.Acquired {
				t.Error("tooz took a lock muster holds")
			}
			if err := d.Unlock(ctx, lock, tok); err != nil {
				t.Fatal(err)
			}
			py.ask(t, "trylock "+lock, &acq)
			if !acq.Acquired {
				t.Error("tooz could not take the lock muster released")
			}
			py.ask(t, "unlock "+lock, &rel)
			gs, err := d.Groups(ctx)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, g := range gs {
				if g == group {
					n++
				}
			}
			if n != 1 {
				t.Errorf("Groups %q: want %q listed once", gs, group)
			}
		})
	}
}
