package main

import (
	"context"
	"fmt"
	"os"

	"github.com/musterhq/muster/internal/demo"
)

func init() {
	commands["demo"] = &command{
		usage: "demo",
		help:  "watch agents split the polling, die and be replaced (its own file backend in a temp dir, ~10s; takes only --mode)",
		nargs: exactly(0),
		run:   runDemo,
	}
}

func runDemo(ctx context.Context, e *env, _ []string) error {
	// The demo is self-contained: its own backend in a temporary directory
	// and its own short timings, so that it runs anywhere in ~10s. Flags it
	// would ignore are refused rather than silently dropped.
	for flag, given := range map[string]bool{
		"--url":                e.o.url != "",
		"--config":             e.o.config != "" && e.o.config != os.Getenv("MUSTER_CONFIG"),
		"--heartbeat-interval": e.o.heartbeat != 0,
		"--member-ttl":         e.o.ttl != 0,
		"--json":               e.o.json,
	} {
		if given {
			return fmt.Errorf("demo: %s is not used: the demo runs its own file backend in a temporary directory (only --mode applies)", flag)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("demo: cannot find the muster binary: %w", err)
	}
	return demo.Run(ctx, demo.Options{Binary: exe, Mode: e.o.mode, Out: e.stdout})
}
