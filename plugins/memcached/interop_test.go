package memcached_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"reflect"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/testserver"
	"github.com/musterhq/muster/servicegroup/driver"
)

// TestToozInterop runs Debian's tooz against the same server: each side
// lists the other's member, with capabilities, and a lock muster holds
// cannot be taken by tooz.
func TestToozInterop(t *testing.T) {
	srv := need(t)
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import tooz.drivers.memcached").Run(); err != nil {
		testserver.Missing(t, errors.Join(testserver.ErrMissing, errors.New("python3-tooz for "+python+": "+err.Error())))
	}
	url := "memcached://" + srv.Addr() // no prefix: tooz has none
	group, lock := "interop-"+prefix(), "interop-lock-"+prefix()
	caps, err := driver.EncodeCapabilities(map[string]any{"lang": "go", "slots": int64(4)})
	must(t, err, "caps")
	d := open(t, url, "muster-1", 5*time.Second)
	if err := d.CreateGroup(bg, group); err != nil && !errors.Is(err, driver.ErrGroupExists) {
		t.Fatal(err)
	}
	must(t, d.Join(bg, group, caps), "join")
	tok, err := d.TryLock(bg, lock)
	must(t, err, "lock")
	// Heartbeat while tooz runs.
	stop := make(chan struct{})
	beats := make(chan struct{})
	go func() {
		defer close(beats)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
				_ = d.Heartbeat(bg)
			}
		}
	}()
	defer func() { close(stop); <-beats }()

	cmd := exec.Command(python, "testdata/tooz_interop.py", url, group, "tooz-1", "muster-1", lock)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	must(t, err, "stdin")
	stdout, err := cmd.StdoutPipe()
	must(t, err, "stdout")
	must(t, cmd.Start(), "start tooz")
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("tooz side: %v (%q)", err, line)
	}
	var got struct {
		Caps      map[string]any `json:"caps"`
		LockTaken bool           `json:"lock_taken"`
	}
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		t.Fatalf("tooz side said %q", line)
	}
	if want := map[string]any{"lang": "go", "slots": float64(4)}; !reflect.DeepEqual(got.Caps, want) {
		t.Errorf("tooz reads muster's capabilities as %v; want %v", got.Caps, want)
	}
	if got.LockTaken {
		t.Errorf("tooz took lock %q that muster holds", lock)
	}
	eventually(t, 10*time.Second, func() error {
		ms, err := d.Members(bg, group)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.ID == "tooz-1" {
				c, err := driver.DecodeCapabilities(m.Capabilities)
				if err != nil || c["lang"] != "python" {
					return errors.New("tooz's capabilities unreadable")
				}
				return nil
			}
		}
		return errors.New("tooz-1 not listed by muster")
	})
	must(t, d.Unlock(bg, lock, tok), "unlock")
}
