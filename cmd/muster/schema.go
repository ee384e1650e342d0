package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/musterhq/muster/plugins/host"
	"github.com/musterhq/muster/servicegroup/driver"
)

func init() {
	commands["create-schema"] = &command{
		usage: "create-schema",
		help:  "create the SQL backends' tables (postgresql://, mysql://) ahead of time with a privileged account, so the runtime account needs only row privileges",
		nargs: exactly(0),
		run:   runCreateSchema,
	}
}

// schemaPlugins are the plugins that keep a schema.
var schemaPlugins = map[string]bool{"postgresql": true, "mysql": true}

// linkedSchemas are the schema creators linked into this binary, by plugin
// name: none by default (backends_all.go adds them).
var linkedSchemas = map[string]func(context.Context, string) error{}

func runCreateSchema(ctx context.Context, e *env, _ []string) error {
	url := e.cfg.Backend.URL
	scheme, err := driver.Scheme(url)
	if err != nil {
		return err
	}
	name := host.Plugin(scheme)
	if !schemaPlugins[name] {
		return fmt.Errorf("create-schema: the %s backend keeps no schema (only postgresql:// and mysql:// do)", scheme)
	}
	create, linked := linkedSchemas[name]
	if !linked || e.cfg.Backend.Mode == "plugin" {
		hc := host.Config{Dir: e.cfg.Backend.PluginDir, Checksums: e.cfg.Backend.PluginChecksums}
		create = func(ctx context.Context, url string) error { return pluginSchema(ctx, hc, scheme, url) }
	}
	if err := create(ctx, url); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "schema ready at %s\n", driver.Redact(url))
	return nil
}

// pluginSchema runs `muster-plugin-<name> create-schema` (see
// serve.Command), handing it url on stdin, and returns its error line.
func pluginSchema(ctx context.Context, hc host.Config, scheme, url string) error {
	bin, err := hc.Binary(scheme)
	if err != nil {
		return fmt.Errorf("create-schema: %w", err)
	}
	cmd := exec.CommandContext(ctx, bin, "create-schema")
	cmd.Stdin = strings.NewReader(url + "\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if err == nil {
		return nil
	}
	if msg := strings.TrimSpace(stderr.String()); msg != "" {
		return errors.New(msg)
	}
	return fmt.Errorf("create-schema: %s: %w", bin, err)
}
