package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/musterhq/muster/servicegroup"
)

// Listen opens addr ("127.0.0.1:0" picks a free port) and returns the
// listener and the URL of path on it, as other hosts should reach it: a
// wildcard address is replaced by the host's name.
func Listen(addr, path string) (net.Listener, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("listen %s: %w", addr, err)
	}
	tcp := ln.Addr().(*net.TCPAddr)
	h := tcp.IP.String()
	if tcp.IP.IsUnspecified() {
		h = Hostname()
	}
	return ln, fmt.Sprintf("http://%s%s", net.JoinHostPort(h, fmt.Sprint(tcp.Port)), path), nil
}

// Serve serves h on ln until ctx ends, then shuts the server down within a
// few seconds. It returns when the server has stopped.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http: %w", err)
	}
	return nil
}

// WriteJSON writes v as an indented JSON response.
func WriteJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Healthz answers 200 "ok" while member is live in group by the backend's
// account (its session heartbeats and the backend lists it), else 503 with
// the reason.
func Healthz(sg *servicegroup.ServiceGroup, group string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		up, err := sg.IsUp(ctx, group, sg.Member())
		switch {
		case err != nil:
			http.Error(w, "backend: "+err.Error(), http.StatusServiceUnavailable)
		case !up:
			http.Error(w, fmt.Sprintf("%s is not up in group %s", sg.Member(), group), http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "ok")
		}
	}
}

// Leave leaves group and closes sg, within a few seconds even if the
// backend does not answer.
func Leave(sg *servicegroup.ServiceGroup, group string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := sg.Leave(ctx, group)
	if errors.Is(err, servicegroup.ErrNotMember) || errors.Is(err, servicegroup.ErrGroupNotFound) {
		err = nil
	}
	return errors.Join(err, sg.Close(ctx))
}
