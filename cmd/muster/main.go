// Command muster is the operator's and the agents' binary: membership,
// liveness, elections, locks and hash-ring ownership over any backend.
//
//	muster [--config FILE] [--url URL] [--mode plugin|inprocess] <command> [args]
//
// Errors are one line on stderr and a non-zero exit status (2; is-up exits 1
// for "down"); never a stack trace.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/musterhq/muster/config"
	_ "github.com/musterhq/muster/plugins/etcd"
	_ "github.com/musterhq/muster/plugins/file"
	_ "github.com/musterhq/muster/plugins/memcached"
	_ "github.com/musterhq/muster/plugins/memory"
	_ "github.com/musterhq/muster/plugins/mysql"
	_ "github.com/musterhq/muster/plugins/postgresql"
	_ "github.com/musterhq/muster/plugins/redis"
	_ "github.com/musterhq/muster/plugins/zookeeper"
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
			fmt.Fprintf(stderr, "muster: %v\n", oneLine(ee.err))
		}
		return ee.code
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "muster: %v\n", oneLine(err))
	return 2
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

func dispatch(args []string, stdout, stderr io.Writer) error {
	var o opts
	global := flag.NewFlagSet("muster", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	globalFlags(global, &o)
	name, rest, err := splitCommand(global, args)
	if err != nil {
		return err
	}
	if name == "" || name == "help" {
		usage(stdout)
		if name == "" {
			return &exitError{code: 2, err: errors.New("no command given")}
		}
		return nil
	}
	if name == "agent" && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		name, rest = "agent "+rest[0], rest[1:]
	}
	c, ok := commands[name]
	if !ok {
		return fmt.Errorf("unknown command %q (run \"muster help\")", name)
	}
	// Global flags given before the command are kept: set them again on
	// the command's flag set, which registers them anew.
	given := map[string]string{}
	global.Visit(func(f *flag.Flag) { given[f.Name] = f.Value.String() })
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
			fmt.Fprintf(stdout, "usage: muster %s\n\n%s\n\nflags:\n", c.usage, c.help)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return flag.ErrHelp
		}
		return fmt.Errorf("%s: %v (usage: muster %s)", name, err, c.usage)
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
	return c.run(ctx, e, pos)
}

func globalFlags(fs *flag.FlagSet, o *opts) {
	fs.StringVar(&o.config, "config", os.Getenv("MUSTER_CONFIG"), "configuration `file` (TOML); default $MUSTER_CONFIG")
	fs.StringVar(&o.url, "url", "", "backend `URL`, overriding the config (e.g. file:///var/lib/muster)")
	fs.StringVar(&o.mode, "mode", "", "run the backend as a `plugin` or `inprocess`, overriding the config")
	fs.DurationVar(&o.heartbeat, "heartbeat-interval", 0, "heartbeat `interval`, overriding the config")
	fs.DurationVar(&o.ttl, "member-ttl", 0, "member `TTL`, overriding the config")
	fs.BoolVar(&o.json, "json", false, "print JSON")
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
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w (after command-line overrides)", err)
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
	return servicegroup.Open(ctx, c)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: muster [--config FILE] [--url URL] [--mode plugin|inprocess] [--heartbeat-interval D] [--member-ttl D] [--json] COMMAND [ARGS]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-38s %s\n", commands[n].usage, commands[n].help)
	}
	fmt.Fprintln(w, "\nrun \"muster COMMAND --help\" for a command's flags")
}

func exactly(n int) func(int) bool { return func(k int) bool { return k == n } }
func atLeast(n int) func(int) bool { return func(k int) bool { return k >= n } }
