package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/metrics"
)

// statusUI is the page: plain HTML, CSS and JavaScript, nothing fetched
// from elsewhere.
//
//go:embed statusui
var statusUI embed.FS

// pageJSON is the page's whole state, sent on every change.
type pageJSON struct {
	// Now is this server's clock when the state was read: the page counts
	// "last seen" from it, not from the browser's clock.
	Now            time.Time   `json:"now"`
	Backend        string      `json:"backend"`
	Member         string      `json:"member"`
	AllowForceDown bool        `json:"allow_force_down"`
	Groups         []groupJSON `json:"groups"`
}

type groupJSON struct {
	Name    string       `json:"name"`
	Leader  string       `json:"leader"`
	Up      int          `json:"up"`
	Down    int          `json:"down"`
	Forced  int          `json:"forced_down"`
	Members []memberView `json:"members"`
	Ring    *ringJSON    `json:"ring,omitempty"`
}

type memberView struct {
	ID string `json:"id"`
	// State is up, forced_down or down (seen live by this page, gone since).
	State        string         `json:"state"`
	LastSeen     time.Time      `json:"last_seen"`
	Capabilities map[string]any `json:"capabilities"`
	Leader       bool           `json:"leader,omitempty"`
}

func (b *statusBoard) page() pageJSON {
	rosters := b.groups()
	byName := map[string]metrics.Roster{}
	for _, r := range rosters {
		byName[r.Group] = r
	}
	p := pageJSON{Now: time.Now().UTC(), Backend: b.backend, Member: b.sg.Member(), AllowForceDown: b.allowFD,
		Groups: []groupJSON{}}
	for _, r := range rosters {
		g := groupJSON{Name: r.Group, Leader: r.Leader, Members: []memberView{}}
		g.Up, g.Down, g.Forced = r.Counts()
		for _, m := range r.Members {
			st := metrics.StateUp
			if m.ForcedDown {
				st = metrics.StateForcedDown
			}
			g.Members = append(g.Members, memberView{ID: m.ID, State: st, LastSeen: m.UpdatedAt.UTC(),
				Capabilities: jsonCaps(m.Capabilities), Leader: m.ID == r.Leader})
		}
		for _, m := range r.Gone {
			g.Members = append(g.Members, memberView{ID: m.ID, State: metrics.StateDown, LastSeen: m.LastSeen.UTC(),
				Capabilities: jsonCaps(m.Capabilities)})
		}
		if b.ring.group == r.Group {
			keys, ok := byName[b.ring.keysGroup]
			g.Ring = b.ring.draw(r, keys, ok)
		}
		p.Groups = append(p.Groups, g)
	}
	return p
}

// jsonCaps keeps capabilities that JSON can carry (msgpack may decode
// maps with non-string keys); anything else is shown as text.
func jsonCaps(c servicegroup.Capabilities) map[string]any {
	out := make(map[string]any, len(c))
	for k, v := range c {
		if _, err := json.Marshal(v); err != nil {
			v = fmt.Sprint(v)
		}
		out[k] = v
	}
	return out
}

func (b *statusBoard) handler(ctx context.Context) http.Handler {
	mux := http.NewServeMux()
	ui, _ := fs.Sub(statusUI, "statusui")
	files := http.FileServer(http.FS(ui))
	mux.Handle("GET /", securityHeaders(files))
	mux.HandleFunc("GET /api/state", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(b.page())
	})
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) { b.events(ctx, w, r) })
	mux.HandleFunc("POST /api/force-down", b.forceDown)
	if b.mx != nil {
		mux.Handle("GET /metrics", b.mx.Handler())
	}
	return mux
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		h.ServeHTTP(w, r)
	})
}

// events streams the page's state as server-sent events: once at once,
// then after every change, until the browser goes away or the command
// ends.
func (b *statusBoard) events(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	wake, cancel := b.subscribe()
	defer cancel()
	keepAlive := time.NewTicker(15 * time.Second)
	defer keepAlive.Stop()
	for {
		data, err := json.Marshal(b.page())
		if err != nil {
			b.log.Warn("status page state", zap.Error(err))
			return
		}
		if _, err := fmt.Fprintf(w, "event: state\ndata: %s\n\n", data); err != nil {
			return
		}
		flusher.Flush()
	wait:
		for {
			select {
			case <-ctx.Done():
				return
			case <-r.Context().Done():
				return
			case <-keepAlive.C:
				if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
					return
				}
				flusher.Flush()
			case <-wake:
				break wait
			}
		}
	}
}

// forceDown forces a member down or up, if the page was started with
// --allow-force-down. It answers only same-origin JSON requests, so
// another site open in the operator's browser cannot drive it.
func (b *statusBoard) forceDown(w http.ResponseWriter, r *http.Request) {
	if !b.allowFD {
		http.Error(w, "read-only: start muster status with --allow-force-down", http.StatusForbidden)
		return
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			http.Error(w, "cross-origin request refused", http.StatusForbidden)
			return
		}
	}
	if r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "want application/json", http.StatusUnsupportedMediaType)
		return
	}
	var req struct {
		Group  string `json:"group"`
		Member string `json:"member"`
		Down   bool   `json:"down"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	err := b.sg.ForceDown(ctx, req.Group, req.Member, req.Down)
	switch {
	case errors.Is(err, servicegroup.ErrGroupNotFound):
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	b.log.Info("forced down from the status page", zap.String("group", req.Group),
		zap.String("member", req.Member), zap.Bool("down", req.Down), zap.String("from", r.RemoteAddr))
	w.WriteHeader(http.StatusNoContent)
}
