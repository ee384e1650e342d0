package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/musterhq/muster/internal/buildinfo"
)

// doc is what a command's --help says beyond its usage line and flags.
type doc struct {
	exits string // exit statuses, one per line
	env   string // environment the command sets for a child
	group string // what it does when its group does not exist
}

const (
	exitOK     = "0  success"
	exitErr    = "2  error (one line on stderr)"
	exitSignal = "0  stopped by SIGINT/SIGTERM (a clean stop)"
	noGroup    = "a missing GROUP is an error (exit 2, \"group not found\"): a typo must not read as an empty group"
)

// docs completes each command's help; watch, leader and campaign are
// described here too so that every --help has the same parts.
var docs = map[string]doc{
	"groups":  {exits: exitOK + "\n" + exitErr},
	"members": {exits: exitOK + "\n" + exitErr, group: noGroup},
	"is-up":   {exits: "0  up\n1  down (not live, or forced down)\n2  error", group: noGroup},
	"join": {exits: exitSignal + "\n" + exitErr,
		group: "GROUP is created if missing"},
	"force-down": {exits: exitOK + "\n" + exitErr, group: noGroup},
	"ring":       {exits: exitOK + "\n" + exitErr + " (also when GROUP has no member up)", group: noGroup},
	"lock": {exits: "N    CMD's exit status (128+signal when a signal ended it)\n" +
		"1    the lock is held (--no-wait) or still held after --timeout\n" +
		"2    error, or the lock was lost while CMD ran\n" +
		"126  CMD cannot be run\n127  CMD not found",
		env: "MUSTER_LOCK           the lock's NAME\nMUSTER_FENCING_TOKEN  the lock's fencing token (strictly increasing per NAME)"},
	"watch": {exits: exitSignal + "\n" + exitErr, group: noGroup},
	"leader": {exits: "0  printed the leader\n1  nobody leads GROUP\n2  error",
		group: "a missing GROUP has no leader (exit 1)"},
	"campaign": {exits: exitSignal + " (resigns first)\n2  error, or leadership lost (run it again, or under a supervisor, to campaign again)",
		group: "runs for leader whether or not GROUP exists as a membership group, and does not create it"},
	"agent compute": {exits: exitSignal + "\n" + exitErr, group: "its group is created if missing"},
	"agent central": {exits: exitSignal + "\n" + exitErr, group: "its group is created if missing; a missing tasks group means no tasks yet"},
	"create-schema": {exits: exitOK + "\n" + exitErr},
	"demo":          {exits: exitOK + " (also on Ctrl-C)\n" + exitErr},
	"version":       {exits: exitOK},
}

// globalUsage is the top-level synopsis.
const globalUsage = "usage: muster [GLOBAL FLAGS] COMMAND [ARGS] [FLAGS]"

func usage(w io.Writer) {
	fmt.Fprintln(w, globalUsage)
	fmt.Fprintln(w, "\ncommands:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, n := range commandNames() {
		fmt.Fprintf(tw, "  %s\t%s\n", n, summary(commands[n].help))
	}
	fmt.Fprintf(tw, "  version\tprint muster's version, commit and Go version\n")
	fmt.Fprintf(tw, "  help [COMMAND]\tthis help, or COMMAND's\n")
	_ = tw.Flush()
	fmt.Fprintln(w, "\nglobal flags (before or after COMMAND):")
	fs := flag.NewFlagSet("muster", flag.ContinueOnError)
	globalFlags(fs, &opts{})
	fs.Bool("version", false, "print the version and exit")
	printFlags(w, fs, nil)
	fmt.Fprintln(w, "\nrun \"muster help COMMAND\" (or \"muster COMMAND --help\") for a command's arguments, flags and exit statuses")
}

// summary is the first clause of a command's help, for the command list.
func summary(help string) string {
	s, _, _ := strings.Cut(help, "; ")
	return s
}

func commandNames() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// commandHelp prints name's help: usage, what it does, its own flags, the
// global flags, then its exit statuses, the environment it sets, and what
// it does with a missing group.
func commandHelp(w io.Writer, name string) {
	c := commands[name]
	fmt.Fprintf(w, "usage: muster %s\n\n%s\n", c.usage, c.help)
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	o := &opts{}
	globalFlags(fs, o)
	global := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { global[f.Name] = true })
	if c.flags != nil {
		c.flags(fs, o)
	}
	own := 0
	fs.VisitAll(func(f *flag.Flag) {
		if !global[f.Name] {
			own++
		}
	})
	if own > 0 {
		fmt.Fprintln(w, "\nflags:")
		printFlags(w, fs, func(n string) bool { return !global[n] })
	}
	fmt.Fprintln(w, "\nglobal flags:")
	printFlags(w, fs, func(n string) bool { return global[n] })
	d := docs[name]
	if d.exits != "" {
		fmt.Fprintln(w, "\nexit status:")
		fmt.Fprint(w, indent(d.exits))
	}
	if d.env != "" {
		fmt.Fprintln(w, "\nenvironment set for CMD:")
		fmt.Fprint(w, indent(d.env))
	}
	if d.group != "" {
		fmt.Fprintf(w, "\nmissing group: %s\n", d.group)
	}
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

// printFlags lists fs's flags that keep says to, GNU style (two dashes),
// in aligned columns.
func printFlags(w io.Writer, fs *flag.FlagSet, keep func(string) bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		if keep != nil && !keep(f.Name) {
			return
		}
		arg, text := flag.UnquoteUsage(f)
		left := "--" + f.Name
		if arg != "" {
			left += " " + strings.ToUpper(arg)
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			text += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(tw, "  %s\t%s\n", left, text)
	})
	_ = tw.Flush()
}

// meta runs what needs neither a configuration nor a backend: help,
// version, and the bare "agent". done is false for a real command.
func meta(name string, rest []string, stdout io.Writer) (done bool, err error) {
	switch name {
	case "":
		usage(stdout)
		return true, &exitError{code: 2, err: errors.New("no command given")}
	case "help":
		if len(rest) == 0 {
			usage(stdout)
			return true, nil
		}
		topic := strings.Join(rest, " ")
		if topic == "agent" {
			return meta("agent", []string{"--help"}, stdout)
		}
		if _, ok := commands[topic]; !ok {
			return true, unknownCommand(topic)
		}
		commandHelp(stdout, topic)
		return true, nil
	case "version":
		fmt.Fprintln(stdout, versionText())
		return true, nil
	case "agent":
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			fmt.Fprintln(stdout, "usage: muster agent compute|central [FLAGS]\n\nagents:")
			tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			for _, n := range []string{"agent compute", "agent central"} {
				fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimPrefix(n, "agent "), commands[n].help)
			}
			_ = tw.Flush()
			if len(rest) == 0 {
				return true, &exitError{code: 2, err: errors.New("agent: which one? compute or central")}
			}
			return true, nil
		}
	}
	return false, nil
}

// unknownCommand names the nearest command, for typos.
func unknownCommand(name string) error {
	best, bestD := "", 3
	for _, n := range append(commandNames(), "version", "help") {
		if d := levenshtein(name, n); d < bestD {
			best, bestD = n, d
		}
	}
	if best != "" {
		return fmt.Errorf("unknown command %q: did you mean %q? (run \"muster help\")", name, best)
	}
	return fmt.Errorf("unknown command %q (run \"muster help\")", name)
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// versionText is what "muster version" prints.
func versionText() string {
	commit, when := buildinfo.Commit()
	if commit == "" {
		commit = "unknown"
	}
	if when != "" {
		when = " (" + when + ")"
	}
	return fmt.Sprintf("muster %s\ncommit %s%s\n%s %s/%s", buildinfo.Version(), commit, when, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
