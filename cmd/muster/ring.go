package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"

	"github.com/musterhq/muster/servicegroup/hashring"
	"github.com/musterhq/muster/servicegroup/partition"
)

func init() {
	commands["ring"] = &command{
		usage: "ring GROUP KEY... [--algorithm muster|tooz] [--replicas N]",
		help:  "print each key's owner among GROUP's live members (weighted by their \"weight\" capability)",
		flags: func(fs *flag.FlagSet, o *opts) {
			fs.StringVar(&o.algorithm, "algorithm", "", "hash ring: muster or tooz (default: agent.central.algorithm, muster)")
			fs.IntVar(&o.replicas, "replicas", 1, "owners to print per key, in preference order")
		},
		nargs: atLeast(2),
		run:   runRing,
	}
}

// ownersJSON is one key as `ring --json` prints it.
type ownersJSON struct {
	Key    string   `json:"key"`
	Owner  string   `json:"owner"`
	Owners []string `json:"owners"`
}

func runRing(ctx context.Context, e *env, args []string) error {
	name := e.o.algorithm
	if name == "" {
		name = e.cfg.Agent.Central.Algorithm
	}
	alg, err := ringAlgorithm(name)
	if err != nil {
		return fmt.Errorf("ring: %w", err)
	}
	if e.o.replicas < 1 {
		return fmt.Errorf("ring: --replicas %d: want at least 1", e.o.replicas)
	}
	group, keys := args[0], args[1:]
	sg, err := e.open(ctx, "")
	if err != nil {
		return err
	}
	defer sg.Close(context.Background())
	// Up members only: a forced-down member reads as down for everyone,
	// so it owns nothing.
	ms, err := sg.GetAll(ctx, group)
	if err != nil {
		return err
	}
	if len(ms) == 0 {
		return fmt.Errorf("ring: group %q has no member up", group)
	}
	nodes := make([]hashring.Node, 0, len(ms))
	for _, m := range ms {
		w, err := partition.Weight(m.Capabilities)
		if err != nil {
			e.log.Sugar().Warnw("ignoring bad weight capability", "member", m.ID, "error", err, "weight", w)
		}
		nodes = append(nodes, hashring.Node{Name: m.ID, Weight: w})
	}
	r, err := hashring.New(alg, nodes)
	if err != nil {
		return fmt.Errorf("ring: %w", err)
	}
	if e.o.json {
		out := make([]ownersJSON, 0, len(keys))
		for _, k := range keys {
			os := r.Owners([]byte(k), e.o.replicas)
			out = append(out, ownersJSON{Key: k, Owner: os[0], Owners: os})
		}
		return json.NewEncoder(e.stdout).Encode(out)
	}
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %s\n", k, strings.Join(r.Owners([]byte(k), e.o.replicas), " "))
	}
	_, err = fmt.Fprint(e.stdout, b.String())
	return err
}
