package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/driver"
	"github.com/musterhq/muster/servicegroup/hashring"
	"github.com/musterhq/muster/servicegroup/partition"
)

func init() {
	commands["groups"] = &command{
		usage: "groups [--format table|lines]",
		help:  "list the groups (a table with member counts on a terminal; --json: an array of names)",
		flags: formatFlag,
		nargs: exactly(0),
		run:   runGroups,
	}
	commands["members"] = &command{
		usage: "members GROUP [--all] [--format table|lines]",
		help: "list a group's live members: id, state (up or forced-down), last heartbeat, capabilities (--json: id, capabilities, updated_at, up, forced_down); " +
			"--all also lists the dead members whose records the backend still holds, and forced-down names with none, as down (last seen: their last renewal, " +
			"or - / null when the backend no longer knows it), to tell a dead host from a typo; on a backend that keeps no record of dead members (etcd, zookeeper) it lists the live ones and says so on stderr",
		flags: func(fs *flag.FlagSet, o *opts) {
			formatFlag(fs, o)
			fs.BoolVar(&allMembers, "all", false, "also list the dead members the backend still has records of, as down")
		},
		nargs: exactly(1),
		run:   runMembers,
	}
	commands["is-up"] = &command{
		usage: "is-up GROUP MEMBER",
		help:  "print up or down; exit 0 when up, 1 when down, 2 on error",
		nargs: exactly(2),
		run:   runIsUp,
	}
	commands["join"] = &command{
		longRunning: true,
		usage:       "join GROUP MEMBER [--caps JSON]",
		help:        "join (creating the group if needed) and heartbeat until SIGINT/SIGTERM, then leave",
		flags: func(fs *flag.FlagSet, o *opts) {
			fs.StringVar(&o.caps, "caps", "", "capabilities as a JSON `object`")
		},
		nargs: exactly(2),
		run:   runJoin,
	}
	commands["force-down"] = &command{
		usage: "force-down GROUP MEMBER [--clear]",
		help:  "mark a member down for every reader until cleared (Nova's forced_down)",
		flags: func(fs *flag.FlagSet, o *opts) {
			fs.BoolVar(&o.clear, "clear", false, "clear the mark")
		},
		nargs: exactly(2),
		run:   runForceDown,
	}
}

func runGroups(ctx context.Context, e *env, _ []string) error {
	sg, err := e.open(ctx, "")
	if err != nil {
		return err
	}
	defer sg.Close(context.Background())
	gs, err := sg.Groups(ctx)
	if err != nil {
		return err
	}
	if e.o.json {
		if gs == nil {
			gs = []string{}
		}
		return json.NewEncoder(e.stdout).Encode(gs)
	}
	table, err := tableOutput(e.stdout)
	if err != nil {
		return err
	}
	rows := make([]groupRow, 0, len(gs))
	for _, g := range gs {
		r := groupRow{name: g}
		if table {
			ms, err := sg.Members(ctx, g)
			r.live, r.listError = len(ms), err
			for _, m := range ms {
				if m.Up() {
					r.up++
				}
			}
		}
		rows = append(rows, r)
	}
	return printGroups(e.stdout, rows, table)
}

// allMembers is `members --all` (kept here, not in opts, as outFormat is).
var allMembers bool

// memberJSON is a member as `members --json` prints it.
type memberJSON struct {
	ID           string         `json:"id"`
	Capabilities map[string]any `json:"capabilities"`
	// UpdatedAt is null for a dead member whose last renewal the backend
	// no longer holds (--all).
	UpdatedAt  *time.Time `json:"updated_at"`
	Up         bool       `json:"up"`
	ForcedDown bool       `json:"forced_down"`
}

func runMembers(ctx context.Context, e *env, args []string) error {
	table, err := tableOutput(e.stdout)
	if err != nil {
		return err
	}
	sg, err := e.open(ctx, "")
	if err != nil {
		return err
	}
	defer sg.Close(context.Background())
	var ms []servicegroup.KnownMember
	if allMembers {
		var dead bool
		if ms, dead, err = sg.KnownMembers(ctx, args[0]); err != nil {
			return err
		}
		if !dead {
			fmt.Fprintf(e.stderr, "muster: note: the %s backend keeps no record of dead members: listing the live ones only\n", sg.Backend())
		}
	} else {
		live, err := sg.Members(ctx, args[0])
		if err != nil {
			return err
		}
		for _, m := range live {
			ms = append(ms, servicegroup.KnownMember{Member: m, Live: true})
		}
	}
	if e.o.json {
		out := make([]memberJSON, 0, len(ms))
		for _, m := range ms {
			j := memberJSON{ID: m.ID, Capabilities: m.Capabilities, Up: m.Up(), ForcedDown: m.ForcedDown}
			if !m.UpdatedAt.IsZero() {
				at := m.UpdatedAt.UTC()
				j.UpdatedAt = &at
			}
			out = append(out, j)
		}
		return json.NewEncoder(e.stdout).Encode(out)
	}
	return printMembers(e.stdout, ms, table)
}

func runIsUp(ctx context.Context, e *env, args []string) error {
	sg, err := e.open(ctx, "")
	if err != nil {
		return err
	}
	defer sg.Close(context.Background())
	up, err := sg.IsUp(ctx, args[0], args[1])
	if err != nil {
		return err
	}
	if e.o.json {
		_ = json.NewEncoder(e.stdout).Encode(map[string]any{"group": args[0], "member": args[1], "up": up})
	} else if up {
		fmt.Fprintln(e.stdout, "up")
	} else {
		fmt.Fprintln(e.stdout, "down")
	}
	if !up {
		return &exitError{code: 1}
	}
	return nil
}

func runJoin(ctx context.Context, e *env, args []string) error {
	caps, err := parseCaps(e.o.caps)
	if err != nil {
		return err
	}
	group, member := args[0], args[1]
	if err := needMember(member); err != nil {
		return err
	}
	sg, err := e.open(ctx, member)
	if err != nil {
		return err
	}
	defer sg.Close(context.Background())
	if err := joinWaiting(ctx, e, sg, group, caps); err != nil || ctx.Err() != nil {
		return err
	}
	e.log.Sugar().Infow("joined; heartbeating until SIGINT/SIGTERM", "group", group, "member", member)
	<-ctx.Done()
	leaveCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sg.Leave(leaveCtx, group); err != nil && !errors.Is(err, servicegroup.ErrNotMember) {
		return err
	}
	return sg.Close(leaveCtx)
}

// needMember refuses an empty or invalid member id given on the command
// line (the library would otherwise pick one).
func needMember(member string) error {
	if err := driver.ValidateName("member", member); err != nil {
		return fmt.Errorf("MEMBER: %w", err)
	}
	return nil
}

// joinWaiting joins group, waiting while the member id is still taken: a
// process restarted right after a crash finds its predecessor's session
// until that session ends (at once where the backend can tell its process
// is gone, else after its TTL). It returns nil, not joined, if ctx ends.
func joinWaiting(ctx context.Context, e *env, sg *servicegroup.ServiceGroup, group string, caps map[string]any) error {
	for logged := false; ; {
		err := sg.JoinOrCreate(ctx, group, caps)
		if !errors.Is(err, servicegroup.ErrMemberExists) {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if !logged {
			e.log.Sugar().Warnw("member id still taken by an earlier session (a crashed predecessor, or another process joined as this MEMBER?); waiting for it to end",
				"group", group, "member", sg.Member(), "member_ttl", sg.Config().MemberTTL.String())
			logged = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(sg.Config().HeartbeatInterval):
		}
	}
}

func runForceDown(ctx context.Context, e *env, args []string) error {
	sg, err := e.open(ctx, "")
	if err != nil {
		return err
	}
	defer sg.Close(context.Background())
	group, member := args[0], args[1]
	if err := sg.ForceDown(ctx, group, member, !e.o.clear); err != nil {
		return err
	}
	// A mark outlives sessions: one for a name nobody uses (a typo?) would
	// wait for any future member of that name.
	if !e.o.clear {
		if ms, err := sg.Members(ctx, group); err == nil && !slices.ContainsFunc(ms, func(m servicegroup.Member) bool { return m.ID == member }) {
			fmt.Fprintf(e.stderr, "muster: warning: %q is not a live member of %q: the mark applies to any member of that name that joins later (force-down %s %s --clear removes it)\n",
				member, group, group, member)
		}
	}
	return nil
}

// parseCaps reads --caps: a JSON object whose whole numbers become integers
// (JSON has one number type; capabilities keep two, as tooz's msgpack does).
func parseCaps(s string) (map[string]any, error) {
	if s == "" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("--caps: not JSON: %v", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("--caps: trailing data after the JSON object")
	}
	v, err := numbers(v)
	if err != nil {
		return nil, fmt.Errorf("--caps: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("--caps: want a JSON object, got %s", s)
	}
	if _, err := partition.Weight(m); err != nil {
		return nil, fmt.Errorf("--caps: %w (want a whole number from 1 to %d)", err, hashring.MaxWeight)
	}
	return m, nil
}

// An integer beyond int64 is refused rather than rounded to a float: a
// capability such as a disk size must read back as written.
func numbers(v any) (any, error) {
	var err error
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i, nil
		}
		if !strings.ContainsAny(x.String(), ".eE") {
			return nil, fmt.Errorf("integer %s is out of range (capabilities hold 64-bit integers: -9223372036854775808 to 9223372036854775807)", x)
		}
		f, err := x.Float64()
		if err != nil {
			return nil, fmt.Errorf("number %s is out of range", x)
		}
		return f, nil
	case map[string]any:
		for k, e := range x {
			if x[k], err = numbers(e); err != nil {
				return nil, err
			}
		}
	case []any:
		for i, e := range x {
			if x[i], err = numbers(e); err != nil {
				return nil, err
			}
		}
	}
	return v, nil
}
