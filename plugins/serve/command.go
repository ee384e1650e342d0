package serve

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/musterhq/muster/plugins/proto"
)

// Command runs one of the plugin binary's own commands when the process was
// started as `muster-plugin-<backend> NAME` rather than by a host: it reads
// the backend URL from the first line of stdin (never from the command line,
// where every user of the machine could read its password), runs run, prints
// its error as one line on stderr and exits 0 or 2. Otherwise Command
// returns at once and the caller goes on to serve with Driver.
//
// It is how `muster create-schema` reaches a backend that the muster binary
// does not link in: muster runs the plugin's create-schema.
func Command(name string, run func(ctx context.Context, url string) error) {
	if os.Getenv(proto.Handshake.MagicCookieKey) == proto.Handshake.MagicCookieValue ||
		len(os.Args) != 2 || os.Args[1] != name {
		return
	}
	os.Exit(runCommand(name, run))
}

func runCommand(name string, run func(ctx context.Context, url string) error) int {
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	url := strings.TrimSpace(line)
	if url == "" {
		fmt.Fprintf(os.Stderr, "%s: no backend URL on stdin (%v)\n", name, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, url); err != nil {
		// One line, as muster prints every error: drivers' errors (pgx's
		// connect errors list one line per address) may have several.
		lines := strings.Split(err.Error(), "\n")
		for i := range lines {
			lines[i] = strings.TrimSpace(lines[i])
		}
		fmt.Fprintln(os.Stderr, strings.Join(lines, "; "))
		return 2
	}
	return 0
}
