// Command poller is a Ceilometer-style partitioned poller built on the
// library directly: each poller joins a group, and a Partitioner over the
// group tells it which resources are its share. Start several: the
// resources split between them; stop one and the others take its share
// without being told.
//
//	go run ./examples/poller -config examples/poller/config.toml -member p1 &
//	go run ./examples/poller -config examples/poller/config.toml -member p2
//
// The resources are agent.central.tasks from the configuration.
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/musterhq/muster/config"
	_ "github.com/musterhq/muster/plugins/file"
	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/hashring"
	"github.com/musterhq/muster/servicegroup/partition"
)

func main() {
	cfgPath := flag.String("config", "examples/poller/config.toml", "muster configuration `file`")
	member := flag.String("member", "", "member `id` (default <hostname>-<pid>)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg, err := config.Load(*cfgPath)
	if err != nil {
		log.Fatal(err)
	}
	sc := cfg.ServiceGroup()
	if *member != "" {
		sc.Member = *member
	}
	sg, err := servicegroup.Open(ctx, sc)
	if err != nil {
		log.Fatal(err)
	}
	defer sg.Close(context.Background()) // leaves the group at once

	group := cfg.Agent.Central.Group
	if err := sg.JoinOrCreate(ctx, group, nil); err != nil {
		log.Fatal(err)
	}
	p, err := partition.New(ctx, sg, group,
		partition.WithAlgorithm(hashring.Algorithm(cfg.Agent.Central.Algorithm)))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	resources := cfg.Agent.Central.Tasks
	log.Printf("%s: polling my share of %d resources every %v", sg.Member(), len(resources), cfg.Agent.Central.PollInterval)
	tick := time.NewTicker(cfg.Agent.Central.PollInterval.Duration)
	defer tick.Stop()
	// Ceilometer's extract_my_subset, recomputed every cycle: the
	// Partitioner follows the group by itself.
	poll := func() {
		for _, r := range p.Subset(resources) {
			log.Printf("polling %s", r)
		}
	}
	poll()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.Changed():
			log.Printf("pollers now %v: my share is %v", p.Members(), p.Subset(resources))
		case <-tick.C:
			poll()
		}
	}
}
