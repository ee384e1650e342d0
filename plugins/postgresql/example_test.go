package postgresql_test

import (
	"context"
	"fmt"
	"time"

	"github.com/musterhq/muster/plugins/postgresql"
	"github.com/musterhq/muster/servicegroup/driver"
)

// Open a session on a PostgreSQL database and join a group. It needs a
// server on 127.0.0.1:5432, so it is compiled but not run.
func ExampleOpen() {
	ctx := context.Background()
	d, err := postgresql.Open(ctx, driver.Options{
		URL:    "postgresql://muster:secret@127.0.0.1:5432/muster?sslmode=disable",
		Member: "compute-1",
		TTL:    10 * time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close(ctx)
	_ = d.CreateGroup(ctx, "compute")
	if err := d.Join(ctx, "compute", nil); err != nil {
		fmt.Println(err)
	}
}

// Create muster's tables ahead of time with a privileged account; the
// runtime account then needs only the row privileges of GrantSQL.
func ExampleCreateSchema() {
	ctx := context.Background()
	if err := postgresql.CreateSchema(ctx, "postgresql://admin@db.example/muster"); err != nil {
		fmt.Println(err)
	}
}
