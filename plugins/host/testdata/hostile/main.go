// Command hostile is the file plugin preceded and interleaved with stderr
// lines that would crash go-plugin's own log parser, or that are merely
// malformed: the host must log them as text and keep going.
package main

import (
	"os"
	"strings"
	"time"

	"github.com/musterhq/muster/plugins/file"
	"github.com/musterhq/muster/plugins/serve"
)

var lines = []string{
	`{"@message": 42, "@level": "info"}`,
	`{"@message": "level is a number", "@level": 7}`,
	`{"@message": "timestamp is a number", "@timestamp": 5}`,
	`{"@message": ["a", "list"]}`,
	`{"@message": null}`,
	`{"not": "hclog"}`,
	`[1, 2, 3]`,
	`{ broken json`,
	"plain text with \x00 NUL and \xff invalid UTF-8",
	`[ERROR] prefixed text`,
	`{"@message": "well formed", "@level": "warn", "@module": "hostile", "k": {"nested": [1, 2]}}`,
	strings.Repeat("x", 1<<20), // one huge line
	`{"@message": "` + strings.Repeat("y", 200<<10) + `"}`,
}

func main() {
	stderr := os.Stderr // serve.Driver's go-plugin redirects os.Stderr; fd 2 stays
	write := func() {
		for _, l := range lines {
			stderr.WriteString(l + "\n")
		}
	}
	write()
	go func() {
		for {
			time.Sleep(50 * time.Millisecond)
			write()
		}
	}()
	serve.Driver(file.Open)
}
