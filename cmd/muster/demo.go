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
		help:  "watch agents split the polling, die and be replaced (temp file backend, ~10s)",
		nargs: exactly(0),
		run:   runDemo,
	}
}

func runDemo(ctx context.Context, e *env, _ []string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("demo: cannot find the muster binary: %w", err)
	}
	return demo.Run(ctx, demo.Options{Binary: exe, Mode: e.o.mode, Out: e.stdout})
}
