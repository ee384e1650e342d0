package main

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/musterhq/muster/internal/testserver"
)

// screenshotEnv names a file where TestStatusPageLive leaves a picture of
// the page, when set.
const screenshotEnv = "MUSTER_STATUS_SCREENSHOT"

// browser starts headless Debian chromium through chromedp; missing is a
// skip, or a failure under CI=true.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := testserver.Lookup("chromium", "chromium")
	if err != nil {
		testserver.Missing(t, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // root in a container
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() {
		_ = chromedp.Cancel(ctx) // closes the browser and waits for it
		cancelCtx()
		cancelAlloc()
	})
	// The first run starts the browser, which lives as long as its
	// context: no timeout on that one.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// within runs actions in the browser, failing the test after d.
func within(t *testing.T, ctx context.Context, d time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// value runs one action that returns a value, failing the test after d.
func value[T any](t *testing.T, ctx context.Context, d time.Duration, what string, a chromedp.Action[T]) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	v, err := chromedp.Run(tctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

func row(member, state string) chromedp.CSS {
	return chromedp.CSS(`tr[data-member="` + member + `"][data-state="` + state + `"]`)
}

// TestStatusPageLive drives the status page in headless Chromium: two
// joined members are listed; a third one joining and a killed one going
// down show up without a reload (a marker set in the page survives).
func TestStatusPageLive(t *testing.T) {
	b := backendFlags(t, "inprocess")
	start(t, append(b, "join", "web", "a", "--caps", `{"zone":"z1"}`)...)
	victim := start(t, append(b, "join", "web", "b", "--caps", `{"zone":"z2"}`)...)
	start(t, append(b, "join", "central", "x1")...)
	start(t, append(b, "join", "central", "x2")...)
	addr := freeAddr(t)
	start(t, append(b, "status", "--listen", addr, "--ring", "central:web")...)
	page := "http://" + addr + "/"
	eventually(t, 30*time.Second, "the status page answers", func() bool { return scrape(page) != "" })

	ctx := browser(t)
	within(t, ctx, 60*time.Second, "two members listed", chromedp.Navigate(page),
		chromedp.WaitVisible(row("a", "up")), chromedp.WaitVisible(row("b", "up")))
	marker := value(t, ctx, 10*time.Second, "set a marker", chromedp.Evaluate[string](`window.musterMarker = "loaded-once"; window.musterMarker`))

	start(t, append(b, "join", "web", "c", "--caps", `{"zone":"z1"}`)...)
	within(t, ctx, 30*time.Second, "the third member appears", chromedp.WaitVisible(row("c", "up")))

	if err := victim.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	within(t, ctx, 30*time.Second, "the killed member goes down", chromedp.WaitVisible(row("b", "down")),
		chromedp.WaitVisible(chromedp.CSS(`[data-ring="central"] li[data-owner="x1"]`)))
	after := value(t, ctx, 10*time.Second, "read the marker", chromedp.Evaluate[string](`window.musterMarker || "reloaded"`))
	if marker != "loaded-once" || after != marker {
		t.Fatalf("the page was reloaded: marker %q, then %q", marker, after)
	}
	text := value(t, ctx, 10*time.Second, "read the page", chromedp.Text(chromedp.CSS(`[data-group="web"]`)))
	for _, want := range []string{"2 up", "1 down", "s ago", "zone=z1"} {
		if !strings.Contains(text, want) {
			t.Errorf("the web group's card lacks %q:\n%s", want, text)
		}
	}
	if out := os.Getenv(screenshotEnv); out != "" {
		png := value(t, ctx, 20*time.Second, "screenshot", chromedp.CaptureScreenshot())
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStatusReadOnly: without --allow-force-down the page cannot force a
// member down.
func TestStatusReadOnly(t *testing.T) {
	b := backendFlags(t, "inprocess")
	start(t, append(b, "join", "web", "a")...)
	addr := freeAddr(t)
	start(t, append(b, "status", "web", "--listen", addr)...)
	eventually(t, 30*time.Second, "the page lists a", func() bool {
		return strings.Contains(scrape("http://"+addr+"/api/state"), `"id":"a"`)
	})
	resp, err := httpPost("http://"+addr+"/api/force-down", `{"group":"web","member":"a","down":true}`)
	if err != nil {
		t.Fatal(err)
	}
	if resp != 403 {
		t.Fatalf("force-down on a read-only page: status %d, want 403", resp)
	}
	if m := membersOf(t, b, "web"); m["a"].ForcedDown {
		t.Fatal("a was forced down through a read-only page")
	}
}

// httpPost posts a JSON body and returns the status code.
func httpPost(url, body string) (int, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestStatusForceDown: with --allow-force-down the page's endpoint forces
// a member down, and refuses a cross-origin request.
func TestStatusForceDown(t *testing.T) {
	b := backendFlags(t, "inprocess")
	start(t, append(b, "join", "web", "a")...)
	addr := freeAddr(t)
	start(t, append(b, "status", "web", "--listen", addr, "--allow-force-down")...)
	eventually(t, 30*time.Second, "the page lists a", func() bool {
		return strings.Contains(scrape("http://"+addr+"/api/state"), `"id":"a"`)
	})
	req, _ := http.NewRequest("POST", "http://"+addr+"/api/force-down", strings.NewReader(`{"group":"web","member":"a","down":true}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "http://evil.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin force-down: status %d, want 403", resp.StatusCode)
	}
	code, err := httpPost("http://"+addr+"/api/force-down", `{"group":"web","member":"a","down":true}`)
	if err != nil || code != http.StatusNoContent {
		t.Fatalf("force-down: %d %v", code, err)
	}
	if m := membersOf(t, b, "web"); !m["a"].ForcedDown {
		t.Fatal("a is not forced down")
	}
}
