// Command muster is the operator's and the agents' binary: membership,
// liveness, elections, locks and hash-ring ownership over any backend.
//
//	muster [--config FILE] [--url URL] [--mode plugin|inprocess] <command> [args]
//
// Errors are one line on stderr and a non-zero exit status (2; is-up exits 1
// for "down"); never a stack trace.
//
// Only the embedded backends (file, memory) are linked in: every other
// backend runs as its plugin (the default mode), which keeps each muster
// process small (see README, Footprint). `go build -tags allbackends` links
// every backend, for mode = "inprocess" on any of them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/musterhq/muster/config"
	_ "github.com/musterhq/muster/plugins/file"
	_ "github.com/musterhq/muster/plugins/memory"
	"github.com/musterhq/muster/servicegroup"
)

// command is one subcommand. run gets the parsed positional arguments.
type command struct {
	usage string // "members GROUP"
	help  string
	// longRunning commands log at info by default; one-shot ones at warn,
	// so scripts see only their output.
	longRunning bool
	flags       func(fs *flag.FlagSet, o *opts)
	nargs       func(n int) bool
	run         func(ctx context.Context, e *env, args []string) error
}

var commands = map[string]*command{}

// opts are every flag's value; commands read the ones they declared.
type opts struct {
	config, url, mode, member  string
	heartbeat, ttl             time.Duration
	json                       bool
	caps                       string
	clear                      bool
	timeout                    time.Duration
	noWait                     bool
	algorithm                  string
	replicas                   int
	listen, output, tasksGroup string
	pollInterval               time.Duration
}

// env is what a command runs with.
type env struct {
	o      opts
	cfg    config.Config
	log    *zap.Logger
	stdout io.Writer
	stderr io.Writer
	mx     *metricsRun // metrics of this command, nil when off (metrics.go)
}

// exitError carries a specific exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "muster: internal error: %v\n", r)
			code = 2
		}
	}()
	err := dispatch(args, stdout, stderr)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "muster: %v\n", errorText(ee.err))
		}
		return ee.code
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "muster: %v\n", errorText(err))
	return 2
}

func dispatch(args []string, stdout, stderr io.Writer) error {
	addMetricsFlags()
	var o opts
	global := flag.NewFlagSet("muster", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	globalFlags(global, &o)
	showVersion := global.Bool("version", false, "print the version and exit")
	name, rest, err := splitCommand(global, args)
	if err != nil {
		return flagError(global, err)
	}
	if *showVersion {
		name = "version"
	}
	if done, err := meta(name, rest, stdout); done {
		return err
	}
	if name == "agent" && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		name, rest = "agent "+rest[0], rest[1:]
	}
	c, ok := commands[name]
	if !ok {
		return unknownCommand(name)
	}
	// Global flags given before the command are kept: set them again on
	// the command's flag set, which registers them anew.
	given := map[string]string{}
	global.Visit(func(f *flag.Flag) {
		if f.Name != "version" {
			given[f.Name] = f.Value.String()
		}
	})
	fs := flag.NewFlagSet("muster "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	globalFlags(fs, &o)
	for k, v := range given {
		_ = fs.Set(k, v)
	}
	if c.flags != nil {
		c.flags(fs, &o)
	}
	pos, err := parseInterspersed(fs, rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			commandHelp(stdout, name)
			return flag.ErrHelp
		}
		return fmt.Errorf("%s: %v (usage: muster %s)", name, flagError(fs, err), c.usage)
	}
	if !c.nargs(len(pos)) {
		return fmt.Errorf("%s: wrong number of arguments (usage: muster %s)", name, c.usage)
	}
	e, err := newEnv(o, fs, c.longRunning, stdout, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = e.log.Sync() }()
	ctx, stop := signalContext()
	defer stop()
	stopMetrics, err := e.serveMetrics(ctx, name, pos)
	if err != nil {
		return err
	}
	defer stopMetrics()
	return c.run(ctx, e, pos)
}

func globalFlags(fs *flag.FlagSet, o *opts) {
	fs.StringVar(&o.config, "config", os.Getenv("MUSTER_CONFIG"), "configuration `file` (TOML); default $MUSTER_CONFIG")
	fs.StringVar(&o.url, "url", "", "backend `URL`, overriding the config (e.g. file:///var/lib/muster)")
	fs.StringVar(&o.mode, "mode", "", "backend `mode`, overriding the config: plugin (a child process) or inprocess (linked in)")
	fs.DurationVar(&o.heartbeat, "heartbeat-interval", 0, "heartbeat `interval`, overriding the config (at least "+config.MinHeartbeatInterval.String()+")")
	fs.DurationVar(&o.ttl, "member-ttl", 0, "member `TTL`, overriding the config (at least "+config.MinMemberTTL.String()+"; raised to 2.5 heartbeat intervals if not above one)")
	fs.BoolVar(&o.json, "json", false, "print JSON instead of text (commands that print data: groups, members, is-up, leader, ring, watch)")
}

// splitCommand parses global flags up to the command name.
func splitCommand(fs *flag.FlagSet, args []string) (string, []string, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "help", nil, nil
		}
		return "", nil, err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return "", nil, nil
	}
	return rest[0], rest[1:], nil
}

// parseInterspersed lets flags follow positional arguments, as operators
// type them ("members compute --json"); "--" ends flag parsing, and
// everything after it is positional (lock NAME -- CMD ARGS).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func newEnv(o opts, fs *flag.FlagSet, longRunning bool, stdout, stderr io.Writer) (*env, error) {
	cfg, err := config.Load(o.config)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	applyFlags(&cfg, o, set)
	if err := validate(cfg, set); err != nil {
		return nil, err
	}
	if cfg.Log.Level == "" && !longRunning {
		cfg.Log.Level = "warn"
	}
	log, err := cfg.Log.Logger()
	if err != nil {
		return nil, err
	}
	return &env{o: o, cfg: cfg, log: log, stdout: stdout, stderr: stderr}, nil
}

// open opens a session as member (config's or default when "").
func (e *env) open(ctx context.Context, member string) (*servicegroup.ServiceGroup, error) {
	c := e.cfg.ServiceGroup()
	if member != "" {
		c.Member = member
	}
	c.Logger = e.log
	c.Observer = e.observer()
	sg, err := servicegroup.Open(ctx, c)
	if err == nil {
		e.followMetrics(sg)
	}
	return sg, err
}

func exactly(n int) func(int) bool { return func(k int) bool { return k == n } }
func atLeast(n int) func(int) bool { return func(k int) bool { return k >= n } }
