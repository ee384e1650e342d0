package main

import (
	"context"
	"testing"
	"time"
)

// TestRun runs the program's body over a fresh backend: README's snippet
// must work as pasted.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, "file://"+t.TempDir()); err != nil {
		t.Fatal(err)
	}
}
