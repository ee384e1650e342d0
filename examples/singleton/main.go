// Command singleton runs a job that must run once in the whole fleet (a
// periodic cleanup, a report): every copy campaigns for leadership of a
// group, and only the leader runs the job. If the leader dies, its session
// expires after the member TTL and another copy is elected; if a leader
// loses its leadership (its session was lost), it stops the job at once.
//
//	go run ./examples/singleton -config examples/singleton/config.toml -member s1 &
//	go run ./examples/singleton -config examples/singleton/config.toml -member s2
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
)

func main() {
	cfgPath := flag.String("config", "examples/singleton/config.toml", "muster configuration `file`")
	member := flag.String("member", "", "member `id` (default <hostname>-<pid>)")
	group := flag.String("group", "cleanup-job", "election `group`")
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
	defer sg.Close(context.Background())

	for ctx.Err() == nil {
		log.Printf("%s: waiting to lead %q", sg.Member(), *group)
		lead, err := sg.Campaign(ctx, *group)
		if err != nil {
			if ctx.Err() == nil {
				log.Printf("campaign: %v", err)
				time.Sleep(time.Second)
			}
			continue
		}
		log.Printf("leading (term %d): starting the job", lead.Token())
		jobCtx, stopJob := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); job(jobCtx) }()
		select {
		case <-lead.Lost():
			log.Printf("leadership lost: stopping the job")
		case <-ctx.Done():
			log.Printf("stopping: handing leadership over")
		}
		stopJob()
		<-done // never two jobs at once: stop before resigning
		_ = lead.Resign(context.Background())
	}
}

// job is the singleton's work: here, a line every second.
func job(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			log.Printf("job: round %d", n)
		}
	}
}
