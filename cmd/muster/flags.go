package main

import (
	"errors"
	"flag"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/musterhq/muster/config"
)

// flagKeys maps a flag to the configuration key it overrides: both are
// checked by config.Validate, and an error names what the operator typed.
var flagKeys = map[string]string{
	"url":                "backend.url",
	"mode":               "backend.mode",
	"heartbeat-interval": "session.heartbeat_interval",
	"member-ttl":         "session.member_ttl",
	"member":             "session.member",
	"poll-interval":      "agent.central.poll_interval",
	"tasks-group":        "agent.central.tasks_group",
	"output":             "agent.central.output",
	"algorithm":          "agent.central.algorithm",
}

// applyFlags sets the configuration values that the given flags override,
// so that one Validate checks the file and the command line alike.
func applyFlags(cfg *config.Config, o opts, set map[string]bool) {
	if set["url"] {
		cfg.Backend.URL = o.url
	}
	if set["mode"] {
		cfg.Backend.Mode = o.mode
	}
	if set["heartbeat-interval"] {
		cfg.Session.HeartbeatInterval.Duration = o.heartbeat
	}
	if set["member-ttl"] {
		cfg.Session.MemberTTL.Duration = o.ttl
	}
	if set["member"] {
		cfg.Session.Member = o.member
	}
	if set["poll-interval"] {
		cfg.Agent.Central.PollInterval.Duration = o.pollInterval
	}
	if set["tasks-group"] {
		tg := o.tasksGroup
		if tg == "-" {
			tg = ""
		}
		cfg.Agent.Central.TasksGroup = &tg
	}
	if set["output"] {
		cfg.Agent.Central.Output = o.output
	}
	if set["algorithm"] {
		cfg.Agent.Central.Algorithm = o.algorithm
	}
}

// validate checks cfg with the command-line overrides applied; an error
// about an overridden value names the flag, with the config's message.
func validate(cfg config.Config, set map[string]bool) error {
	err := cfg.Validate()
	var ce *config.Error
	if err == nil || !errors.As(err, &ce) {
		return err
	}
	for f, key := range flagKeys {
		if key == ce.Key && set[f] {
			return fmt.Errorf("--%s: %s", f, ce.Msg)
		}
	}
	return err
}

// flagParseError is the flag package's "invalid value "x" for flag -name:
// parse error".
var flagParseError = regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for flag -([^:]+): (.*)$`)

// flagError says a bad flag in the operator's words: the flag with two
// dashes and what it expects.
func flagError(fs *flag.FlagSet, err error) error {
	msg := err.Error()
	if m := flagParseError.FindStringSubmatch(msg); m != nil {
		val, name := m[1], m[2]
		want := "a valid value"
		if f := fs.Lookup(name); f != nil {
			if g, ok := f.Value.(flag.Getter); ok {
				switch g.Get().(type) {
				case time.Duration:
					want = `a duration such as 500ms, 10s or 1m`
				case int, int64, uint, uint64:
					want = "a whole number"
				case bool:
					want = "true or false"
				}
			}
		}
		return fmt.Errorf("--%s %q: want %s", name, val, want)
	}
	if rest, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return fmt.Errorf("unknown flag --%s", strings.TrimLeft(rest, "-"))
	}
	if rest, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Errorf("flag --%s needs a value", strings.TrimLeft(rest, "-"))
	}
	return err
}
