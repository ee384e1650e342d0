package mysql_test

import (
	"context"
	"fmt"
	"time"

	"github.com/musterhq/muster/plugins/mysql"
	"github.com/musterhq/muster/servicegroup/driver"
)

// Open a session on a MariaDB or MySQL database and join a group. It needs
// a server on 127.0.0.1:3306, so it is compiled but not run.
func ExampleOpen() {
	ctx := context.Background()
	d, err := mysql.Open(ctx, driver.Options{
		URL:    "mysql://muster:secret@127.0.0.1:3306/muster?tls=skip-verify",
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

// Create the tables ahead of time with a privileged account; the runtime
// account then needs only SELECT, INSERT, UPDATE and DELETE.
func ExampleCreateSchema() {
	err := mysql.CreateSchema(context.Background(), "mysql://admin:secret@127.0.0.1:3306/muster")
	if err != nil {
		fmt.Println(err)
	}
}
