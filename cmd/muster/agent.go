package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/musterhq/muster/agents/central"
	"github.com/musterhq/muster/agents/compute"
	"github.com/musterhq/muster/servicegroup/hashring"
)

func init() {
	commands["agent compute"] = &command{
		usage:       "agent compute [--member NAME] [--listen HOST:PORT]",
		help:        "join the compute group and serve /status, /healthz until SIGINT/SIGTERM",
		longRunning: true,
		flags: func(fs *flag.FlagSet, o *opts) {
			memberFlag(fs, o)
			fs.StringVar(&o.listen, "listen", "", "HTTP `address` of /status and /healthz (default: agent.compute.listen, 127.0.0.1:0)")
		},
		nargs: exactly(0),
		run:   runAgentCompute,
	}
	commands["agent central"] = &command{
		usage:       "agent central [--member NAME] [--listen HOST:PORT] [--poll-interval D] [--tasks-group G] [--output FILE]",
		help:        "poll this agent's share of the tasks, rebalancing as agents come and go",
		longRunning: true,
		flags: func(fs *flag.FlagSet, o *opts) {
			memberFlag(fs, o)
			fs.StringVar(&o.listen, "listen", "", "HTTP `address` of /status and /healthz (default: agent.central.listen, 127.0.0.1:0)")
			fs.DurationVar(&o.pollInterval, "poll-interval", 0, "how often to poll each owned task (default: agent.central.poll_interval, 10s)")
			fs.StringVar(&o.tasksGroup, "tasks-group", "", "`group` whose live members are tasks (default: agent.central.tasks_group, compute; \"-\" for none)")
			fs.StringVar(&o.output, "output", "", "JSON-lines `file` for poll records, \"-\" for stdout (default: agent.central.output)")
			fs.StringVar(&o.algorithm, "algorithm", "", "hash ring: muster or tooz (default: agent.central.algorithm)")
		},
		nargs: exactly(0),
		run:   runAgentCentral,
	}
}

func memberFlag(fs *flag.FlagSet, o *opts) {
	fs.StringVar(&o.member, "member", "", "member `id` (default: session.member, else the hostname)")
}

// agentMember is the agent's member id: --member, session.member, the
// hostname.
func (e *env) agentMember() string {
	switch {
	case e.o.member != "":
		return e.o.member
	case e.cfg.Session.Member != "":
		return e.cfg.Session.Member
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}

func runAgentCompute(ctx context.Context, e *env, _ []string) error {
	c := e.cfg.Agent.Compute
	if e.o.listen != "" {
		c.Listen = e.o.listen
	}
	sess := e.cfg.ServiceGroup()
	sess.Member = e.agentMember()
	sess.Logger = e.log
	return compute.Run(ctx, compute.Options{
		Session:      sess,
		Group:        c.Group,
		Listen:       c.Listen,
		Capabilities: c.Capabilities,
		Logger:       e.log,
		Metrics:      e.mx.collectors(),
	})
}

func runAgentCentral(ctx context.Context, e *env, _ []string) error {
	c := e.cfg.Agent.Central
	if e.o.listen != "" {
		c.Listen = e.o.listen
	}
	if e.o.pollInterval < 0 {
		return fmt.Errorf("agent central: --poll-interval %v is negative", e.o.pollInterval)
	}
	if e.o.pollInterval > 0 {
		c.PollInterval.Duration = e.o.pollInterval
	}
	tasksGroup := c.TasksGroupOrDefault()
	switch e.o.tasksGroup {
	case "":
	case "-":
		tasksGroup = ""
	default:
		tasksGroup = e.o.tasksGroup
	}
	if e.o.output != "" {
		c.Output = e.o.output
	}
	if e.o.algorithm != "" {
		c.Algorithm = e.o.algorithm
	}
	alg, err := ringAlgorithm(c.Algorithm)
	if err != nil {
		return fmt.Errorf("agent central: %w", err)
	}
	var out io.Writer = e.stdout
	if c.Output != "-" {
		f, err := os.OpenFile(c.Output, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("agent central: output: %w", err)
		}
		defer f.Close()
		out = f
	}
	sess := e.cfg.ServiceGroup()
	sess.Member = e.agentMember()
	sess.Logger = e.log
	return central.Run(ctx, central.Options{
		Session:      sess,
		Group:        c.Group,
		Listen:       c.Listen,
		PollInterval: c.PollInterval.Duration,
		TasksGroup:   tasksGroup,
		Tasks:        c.Tasks,
		Output:       out,
		Algorithm:    alg,
		Logger:       e.log,
		Metrics:      e.mx.collectors(),
	})
}

// ringAlgorithm checks an algorithm name from a flag or the config.
func ringAlgorithm(name string) (hashring.Algorithm, error) {
	switch a := hashring.Algorithm(name); a {
	case "", hashring.Default:
		return hashring.Default, nil
	case hashring.Tooz:
		return a, nil
	}
	return "", fmt.Errorf("algorithm %q: want %q or %q", name, hashring.Default, hashring.Tooz)
}
