package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/musterhq/muster/servicegroup"
)

// outFormat is --format (kept here, not in opts, as only the listing
// commands have it): "table" for people, "lines" for scripts, "" to pick
// table on a terminal and lines otherwise.
var outFormat string

// stampFormat is RFC 3339 to the millisecond, always three digits, so that
// lines sort and align.
const stampFormat = "2006-01-02T15:04:05.000Z07:00"

func formatFlag(fs *flag.FlagSet, _ *opts) {
	fs.StringVar(&outFormat, "format", "", "`table` (aligned, with a header) or lines (tab-separated, no header); default: table on a terminal, lines when piped")
}

// tableOutput says whether to print a table: --format, else whether w is a
// terminal.
func tableOutput(w io.Writer) (bool, error) {
	switch outFormat {
	case "table":
		return true, nil
	case "lines":
		return false, nil
	case "":
		return isTerminal(w), nil
	}
	return false, fmt.Errorf("--format %q: want table or lines", outFormat)
}

// isTerminal says whether w is a character device (a terminal, not a pipe
// or a file).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0 && st.Mode()&os.ModeDevice != 0
}

// ago says how long since t, as people read it ("3s ago", "2m ago").
func ago(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Second:
		return fmt.Sprintf("%dms ago", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// printMembers prints members as a table or as tab-separated lines (id,
// state: up, forced-down or down, last heartbeat to the millisecond or "-"
// when unknown, capabilities as JSON).
func printMembers(w io.Writer, ms []servicegroup.KnownMember, table bool) error {
	stamp := func(m servicegroup.KnownMember) string {
		if m.UpdatedAt.IsZero() {
			return "-"
		}
		return m.UpdatedAt.UTC().Format(stampFormat)
	}
	if !table {
		var b strings.Builder
		for _, m := range ms {
			caps, _ := json.Marshal(m.Capabilities)
			fmt.Fprintf(&b, "%s\t%s\t%s\t%s\n", m.ID, m.State(), stamp(m), caps)
		}
		_, err := io.WriteString(w, b.String())
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tLAST SEEN\tUPDATED AT\tCAPABILITIES")
	now := time.Now()
	for _, m := range ms {
		caps, _ := json.Marshal(m.Capabilities)
		seen := "-"
		if !m.UpdatedAt.IsZero() {
			seen = ago(now, m.UpdatedAt)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.ID, m.State(), seen, stamp(m), caps)
	}
	return tw.Flush()
}

// groupRow is one group as the groups table shows it.
type groupRow struct {
	name      string
	live, up  int
	listError error
}

// printGroups prints group names one a line, or a table with each group's
// live and up member counts.
func printGroups(w io.Writer, rows []groupRow, table bool) error {
	if !table {
		var b strings.Builder
		for _, r := range rows {
			b.WriteString(r.name + "\n")
		}
		_, err := io.WriteString(w, b.String())
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tMEMBERS\tUP")
	for _, r := range rows {
		if r.listError != nil {
			fmt.Fprintf(tw, "%s\t?\t?\n", r.name)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\n", r.name, r.live, r.up)
	}
	return tw.Flush()
}
