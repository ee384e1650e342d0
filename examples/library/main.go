// Command library is README's Library section as a program that runs as
// pasted: the file backend linked in (ModeInProcess and its blank import),
// so it needs no plugin binary.
//
//	go run ./examples/library            # a temporary directory as the backend
//	go run ./examples/library -url file:///var/lib/muster
//
// To run the backend as a plugin instead (a separate process, see README's
// Plugins), ship muster-plugin-file with the program and say where it is:
//
//	go build -o /opt/app/bin/ ./plugins/file/cmd/muster-plugin-file
//	servicegroup.Config{..., Mode: servicegroup.ModePlugin, PluginDir: "/opt/app/bin"}
//
// (the default PluginDir is the program's own directory, which for `go run`
// is a temporary one: set it).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	_ "github.com/musterhq/muster/plugins/file" // links the file:// backend in
	"github.com/musterhq/muster/servicegroup"
)

func main() {
	url := flag.String("url", "", "backend `URL` (default: file:// in a new temporary directory)")
	flag.Parse()
	if *url == "" {
		dir, err := os.MkdirTemp("", "muster-library-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(dir)
		*url = "file://" + dir
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, *url); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, url string) error {
	sg, err := servicegroup.Open(ctx, servicegroup.Config{
		URL:    url,
		Member: "compute-1",
		Mode:   servicegroup.ModeInProcess,
	})
	if err != nil {
		return err
	}
	defer sg.Close(context.Background())

	if err := sg.JoinOrCreate(ctx, "compute", servicegroup.Capabilities{"vcpus": 8}); err != nil {
		return err
	}
	up, err := sg.IsUp(ctx, "compute", "compute-1")
	if err != nil {
		return err
	}
	hosts, err := sg.GetAll(ctx, "compute") // up members, with capabilities
	if err != nil {
		return err
	}
	fmt.Printf("compute-1 up: %v; up hosts: %d (vcpus %v)\n", up, len(hosts), hosts[0].Capabilities["vcpus"])

	lead, err := sg.Campaign(ctx, "central") // blocks until elected
	if err != nil {
		return err
	}
	fmt.Println("leading central")
	if err := lead.Resign(ctx); err != nil {
		return err
	}

	l := sg.Lock("placement")
	token, err := l.Acquire(ctx) // fencing token, strictly increasing
	if err != nil {
		return err
	}
	fmt.Println("holding placement, fencing token", token)
	if err := l.Release(ctx); err != nil {
		return err
	}
	if err := sg.Leave(ctx, "compute"); err != nil && !errors.Is(err, servicegroup.ErrNotMember) {
		return err
	}
	return sg.Close(ctx)
}
