package main

import (
	"context"
	"fmt"

	"github.com/musterhq/muster/plugins/mysql"
	"github.com/musterhq/muster/plugins/postgresql"
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

func runCreateSchema(ctx context.Context, e *env, _ []string) error {
	url := e.cfg.Backend.URL
	scheme, err := driver.Scheme(url)
	if err != nil {
		return err
	}
	var create func(context.Context, string) error
	switch scheme {
	case "postgresql", "postgres":
		create = postgresql.CreateSchema
	case "mysql", "mariadb":
		create = mysql.CreateSchema
	default:
		return fmt.Errorf("create-schema: the %s backend keeps no schema (only postgresql:// and mysql:// do)", scheme)
	}
	if err := create(ctx, url); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "schema ready at %s\n", driver.Redact(url))
	return nil
}
