package host

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestReadings(t *testing.T) {
	m, err := Memory()
	if err != nil || m.TotalMB <= 0 || m.AvailableMB <= 0 || m.AvailableMB > m.TotalMB {
		t.Fatalf("Memory() = %+v, %v", m, err)
	}
	l, err := LoadAverage()
	if err != nil || l[0] < 0 {
		t.Fatalf("LoadAverage() = %v, %v", l, err)
	}
}

func TestListenAndServe(t *testing.T) {
	ln, url, err := Listen("127.0.0.1:0", "/status")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.HasSuffix(url, "/status") {
		t.Fatalf("url %q", url)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			WriteJSON(w, map[string]int{"a": 1})
		}))
	}()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(string(b), `"a": 1`) {
		t.Fatalf("got %s %q", resp.Header.Get("Content-Type"), b)
	}
	http.DefaultClient.CloseIdleConnections()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, _, err := Listen("256.1.1.1:0", "/"); err == nil {
		t.Fatal("Listen on a bad address succeeded")
	}
}
