package main

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

//go:embed tooz_bench.py
var toozScript []byte

// toozProc is a running tooz_bench.py.
type toozProc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

type toozResp struct {
	NS      []int64 `json:"ns"`
	Ops     int64   `json:"ops"`
	Seconds float64 `json:"seconds"`
	Error   string  `json:"error"`
	Ready   bool    `json:"ready"`
}

func startTooz(tmp, url, member string) (*toozProc, error) {
	script := filepath.Join(tmp, "tooz_bench.py")
	if _, err := os.Stat(script); err != nil {
		if err := os.WriteFile(script, toozScript, 0o644); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command("/usr/bin/python3", "-W", "ignore", script, url, member)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &toozProc{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	p.out.Buffer(make([]byte, 1<<20), 16<<20)
	var r toozResp
	if err := p.read(&r); err != nil || !r.Ready {
		p.close()
		return nil, fmt.Errorf("tooz on %s did not start: %v", url, err)
	}
	return p, nil
}

func (p *toozProc) read(r *toozResp) error {
	if !p.out.Scan() {
		if err := p.out.Err(); err != nil {
			return err
		}
		return io.ErrUnexpectedEOF
	}
	return json.Unmarshal(p.out.Bytes(), r)
}

func (p *toozProc) call(req map[string]any) (toozResp, error) {
	var r toozResp
	b, _ := json.Marshal(req)
	if _, err := p.in.Write(append(b, '\n')); err != nil {
		return r, err
	}
	if err := p.read(&r); err != nil {
		return r, err
	}
	if r.Error != "" {
		return r, fmt.Errorf("tooz %v: %s", req["op"], r.Error)
	}
	return r, nil
}

// timed runs a timed command and returns its samples.
func (p *toozProc) timed(req map[string]any) (samples, error) {
	r, err := p.call(req)
	if err != nil {
		return nil, err
	}
	s := make(samples, len(r.NS))
	for i, n := range r.NS {
		s[i] = time.Duration(n)
	}
	return s, nil
}

func (p *toozProc) close() {
	_, _ = p.in.Write([]byte(`{"op":"quit"}` + "\n"))
	p.in.Close()
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// throughput runs clients in-process sessions, each TryAcquire+Release of
// its own lock in a loop for d, and returns operations per second.
func musterThroughput(ctx context.Context, ss []*session, name string, d time.Duration) (float64, error) {
	var total atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for i, s := range ss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := s.sg.Lock(fmt.Sprintf("%s-%d", name, i))
			for time.Now().Before(deadline) {
				if _, err := l.TryAcquire(ctx); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				if err := l.Release(ctx); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				total.Add(1)
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return 0, e.(error)
	}
	return float64(total.Load()) / time.Since(start).Seconds(), nil
}
