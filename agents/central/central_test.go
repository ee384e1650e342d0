package central

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	_ "github.com/musterhq/muster/plugins/memory"
	"github.com/musterhq/muster/servicegroup"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func session(url, member string) servicegroup.Config {
	return servicegroup.Config{URL: url, Member: member,
		HeartbeatInterval: 50 * time.Millisecond, MemberTTL: 300 * time.Millisecond}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) records(t *testing.T) []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Record
	sc := bufio.NewScanner(bytes.NewReader(s.b.Bytes()))
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("bad record %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

type running struct {
	url    string
	cancel context.CancelFunc
	done   chan error
	out    *syncBuffer
}

func start(t *testing.T, backend, member string, static []string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1), out: &syncBuffer{}}
	ready := make(chan string, 1)
	go func() {
		r.done <- Run(ctx, Options{
			Session:      session(backend, member),
			PollInterval: 100 * time.Millisecond,
			TasksGroup:   "compute",
			Tasks:        static,
			Output:       r.out,
			Ready:        func(u string) { ready <- u },
		})
	}()
	select {
	case r.url = <-ready:
	case err := <-r.done:
		t.Fatal(err)
	case <-time.After(5 * time.Second):
		t.Fatal("not ready")
	}
	t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	r.cancel()
	<-r.done
	r.done <- nil // idempotent
}

func (r *running) status(t *testing.T) Status {
	t.Helper()
	resp, err := http.Get(r.url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// waitSplit waits until the agents' assigned lists are disjoint and cover
// want exactly, each agent seeing all the others.
func waitSplit(t *testing.T, want []string, rs ...*running) []Status {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var sts []Status
		var all []string
		for _, r := range rs {
			st := r.status(t)
			sts = append(sts, st)
			all = append(all, st.Assigned...)
		}
		sort.Strings(all)
		agree := true
		for _, st := range sts {
			agree = agree && len(st.Members) == len(rs)
		}
		if agree && slices.Equal(all, want) {
			return sts
		}
		if time.Now().After(deadline) {
			t.Fatalf("split never became %v: %+v", want, sts)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPartitionedPolling(t *testing.T) {
	backend := "memory://central-" + t.Name()
	ctx := context.Background()
	// Three compute hosts, answering at one status URL.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"member": "x"}`))
	}))
	defer srv.Close()
	var hosts []*servicegroup.ServiceGroup
	for _, h := range []string{"h1", "h2", "h3"} {
		sg, err := servicegroup.Open(ctx, session(backend, h))
		if err != nil {
			t.Fatal(err)
		}
		defer sg.Close(ctx)
		if err := sg.JoinOrCreate(ctx, "compute", servicegroup.Capabilities{"status_url": srv.URL + "/status"}); err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, sg)
	}
	static := []string{"s1", "s2"}
	a := start(t, backend, "central-a", static)
	b := start(t, backend, "central-b", static)
	sts := waitSplit(t, []string{"h1", "h2", "h3", "s1", "s2"}, a, b)
	for _, st := range sts {
		if st.TasksTotal != 5 || (st.Leader != "central-a" && st.Leader != "central-b") {
			t.Errorf("status %+v", st)
		}
	}

	// Records: each agent polls only what it owns.
	time.Sleep(300 * time.Millisecond)
	for _, r := range []*running{a, b} {
		st := r.status(t)
		recs := r.out.records(t)
		if len(recs) == 0 {
			t.Fatalf("%s wrote no records", st.Member)
		}
		for _, rec := range recs[len(recs)/2:] { // after the start-up churn
			if !slices.Contains(st.Assigned, rec.Task) || rec.Agent != st.Member || !rec.OK {
				t.Errorf("%s: record %+v, assigned %v", st.Member, rec, st.Assigned)
			}
		}
	}

	// A host leaves: it leaves every list.
	if err := hosts[1].Leave(ctx, "compute"); err != nil {
		t.Fatal(err)
	}
	waitSplit(t, []string{"h1", "h3", "s1", "s2"}, a, b)

	// A central agent stops: the survivor takes everything and leads.
	b.stop()
	sts = waitSplit(t, []string{"h1", "h3", "s1", "s2"}, a)
	deadline := time.Now().Add(5 * time.Second)
	for sts[0].Leader != "central-a" {
		if time.Now().After(deadline) {
			t.Fatalf("survivor does not lead: %+v", sts[0])
		}
		time.Sleep(20 * time.Millisecond)
		sts[0] = a.status(t)
	}
}
