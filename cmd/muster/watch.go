package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/musterhq/muster/servicegroup"
)

func init() {
	commands["watch"] = &command{
		longRunning: true,
		usage:       "watch GROUP",
		help:        "print one line per event (joined, left, updated, leader) until interrupted",
		nargs:       exactly(1),
		run:         runWatch,
	}
	commands["leader"] = &command{
		usage: "leader GROUP",
		help:  "print the member leading GROUP (exit 1 when nobody leads)",
		nargs: exactly(1),
		run:   runLeader,
	}
	commands["campaign"] = &command{
		longRunning: true,
		usage:       "campaign GROUP MEMBER",
		help:        "run for leader of GROUP as MEMBER and stay leader until SIGINT/SIGTERM",
		nargs:       exactly(2),
		run:         runCampaign,
	}
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

type eventJSON struct {
	Type   string `json:"type"`
	Group  string `json:"group"`
	Member string `json:"member"`
	// Capabilities and ForcedDown are the member's state: always on an
	// updated event; on a joined one only when set (capabilities not
	// empty, forced down true).
	Capabilities any   `json:"capabilities,omitempty"`
	ForcedDown   *bool `json:"forced_down,omitempty"`
}

func toEventJSON(ev servicegroup.Event) eventJSON {
	out := eventJSON{Type: ev.Type.String(), Group: ev.Group, Member: ev.Member}
	down := ev.ForcedDown
	switch ev.Type {
	case servicegroup.MemberUpdated:
		caps := ev.Capabilities
		if caps == nil {
			caps = servicegroup.Capabilities{}
		}
		out.Capabilities, out.ForcedDown = caps, &down
	case servicegroup.MemberJoined:
		if len(ev.Capabilities) > 0 {
			out.Capabilities = ev.Capabilities
		}
		if down {
			out.ForcedDown = &down
		}
	}
	return out
}

func runWatch(ctx context.Context, e *env, args []string) error {
	sg, err := e.open(ctx, "")
	if err != nil {
		return err
	}
	defer sg.Close(context.Background())
	w, err := sg.Watch(ctx, args[0])
	if err != nil {
		return err
	}
	enc := json.NewEncoder(e.stdout)
	for ev := range w.Events() {
		if e.o.json {
			if err := enc.Encode(toEventJSON(ev)); err != nil {
				return err
			}
			continue
		}
		switch {
		case ev.Type == servicegroup.LeaderChanged && ev.Member == "":
			_, err = fmt.Fprintf(e.stdout, "leader %s (none)\n", ev.Group)
		case ev.Type == servicegroup.MemberUpdated:
			caps, _ := json.Marshal(toEventJSON(ev).Capabilities)
			_, err = fmt.Fprintf(e.stdout, "%s %s %s forced_down=%v capabilities=%s\n", ev.Type, ev.Group, ev.Member, ev.ForcedDown, caps)
		default:
			_, err = fmt.Fprintf(e.stdout, "%s %s %s\n", ev.Type, ev.Group, ev.Member)
		}
		if err != nil {
			return err // stdout closed: stop
		}
	}
	return w.Err()
}

func runLeader(ctx context.Context, e *env, args []string) error {
	sg, err := e.open(ctx, "")
	if err != nil {
		return err
	}
	defer sg.Close(context.Background())
	l, err := sg.Leader(ctx, args[0])
	if errors.Is(err, servicegroup.ErrNoLeader) {
		if e.o.json {
			_ = json.NewEncoder(e.stdout).Encode(map[string]any{"group": args[0], "leader": nil})
		}
		return &exitError{code: 1, err: err}
	}
	if err != nil {
		return err
	}
	if e.o.json {
		return json.NewEncoder(e.stdout).Encode(map[string]any{"group": args[0], "leader": l})
	}
	fmt.Fprintln(e.stdout, l)
	return nil
}

func runCampaign(ctx context.Context, e *env, args []string) error {
	group, member := args[0], args[1]
	if err := needMember(member); err != nil {
		return err
	}
	sg, err := e.open(ctx, member)
	if err != nil {
		return err
	}
	defer sg.Close(context.Background())
	lead, err := sg.Campaign(ctx, group)
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while waiting
		}
		return err
	}
	fmt.Fprintf(e.stdout, "leader %s %s\n", group, member)
	select {
	case <-ctx.Done():
		// Stopping. If leadership went first (the stop signal reached the
		// plugin too), there is nothing left to resign: still a clean stop.
		if err := lead.Resign(context.Background()); err != nil && !errors.Is(err, servicegroup.ErrNotLeader) {
			return err
		}
		return nil
	case <-lead.Lost():
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("campaign: leadership of %q lost (exit 2; run it again, or under a supervisor, to campaign again)", group)
	}
}
