// Command scheduler is a Nova-style scheduler filter: of the compute hosts a
// request could go to, it keeps only those that are up (live in the compute
// group and not forced down) and have enough memory, then picks the one with
// the most memory.
//
//	muster agent compute --member host-a &   # a few compute agents, same config
//	go run ./examples/scheduler -config examples/scheduler/config.toml -memory-mb 1024
//	go run ./examples/scheduler -config examples/scheduler/config.toml host-a host-b
//
// With host names as arguments, only those are candidates (a dead or unknown
// one is filtered out); without, every member of the group is. The group is
// read through a servicegroup.View: IsUp and GetAll answer from memory.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"

	"github.com/musterhq/muster/config"
	_ "github.com/musterhq/muster/plugins/file"
	"github.com/musterhq/muster/servicegroup"
)

func main() {
	cfgPath := flag.String("config", "examples/scheduler/config.toml", "muster configuration `file`")
	memoryMB := flag.Int64("memory-mb", 0, "memory the instance needs, in `MiB`")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	cfg, err := config.Load(*cfgPath)
	if err != nil {
		log.Fatal(err)
	}
	sg, err := servicegroup.Open(ctx, cfg.ServiceGroup())
	if err != nil {
		log.Fatal(err)
	}
	defer sg.Close(context.Background())

	// A View holds the compute group in memory, kept current by a watch:
	// a long-running scheduler asks IsUp for every candidate of every
	// request with no round trip to the backend. It never answers from a
	// state it has stopped following: then its reads fail with ErrStale.
	group := cfg.Agent.Compute.Group
	view, err := sg.View(ctx, group)
	if err != nil {
		log.Fatal(err)
	}
	defer view.Close()
	if err := view.Synced(ctx); err != nil {
		log.Fatal(err)
	}
	candidates := flag.Args()
	if len(candidates) == 0 {
		// GetAll is Nova's get_all: the members that are up.
		up, err := view.GetAll()
		if err != nil {
			log.Fatal(err)
		}
		for _, m := range up {
			candidates = append(candidates, m.ID)
		}
	}

	var best string
	var bestMem int64 = -1
	for _, h := range candidates {
		up, err := view.IsUp(h) // from memory: no round trip
		if err != nil {
			log.Fatal(err) // stale, or a bad host name
		}
		if !up {
			fmt.Printf("%-20s filtered out: not up\n", h)
			continue
		}
		m, err := view.Member(h)
		if err != nil {
			log.Fatal(err)
		}
		mem, _ := m.Capabilities["memory_mb"].(int64)
		if mem < *memoryMB {
			fmt.Printf("%-20s filtered out: %d MiB < %d MiB\n", h, mem, *memoryMB)
			continue
		}
		fmt.Printf("%-20s passes (%d MiB)\n", h, mem)
		if mem > bestMem {
			best, bestMem = h, mem
		}
	}
	if best == "" {
		fmt.Println("no valid host found")
		os.Exit(1)
	}
	fmt.Println("selected:", best)
}
