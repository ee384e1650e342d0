package host_test

import (
	"context"
	"log"
	"time"

	"go.uber.org/zap"

	"github.com/musterhq/muster/plugins/host"
	"github.com/musterhq/muster/servicegroup/driver"
)

// Open a session of the file backend through its plugin binary,
// /usr/lib/muster/muster-plugin-file, pinned by checksum.
func Example() {
	cfg := host.Config{
		Dir:       "/usr/lib/muster",
		Checksums: map[string]string{"file": "<hex sha256 of muster-plugin-file>"},
		Logger:    zap.NewExample(),
	}
	open := cfg.Factory("file") // keep it: it remembers failures for backoff

	ctx := context.Background()
	d, err := open(ctx, driver.Options{
		URL: "file:///var/lib/muster", Member: "compute-1", Instance: "compute-1", TTL: 10 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close(ctx)
	select {
	case <-d.Done():
		// The plugin died, stopped answering, or ended the session: Close d
		// and call open again.
	default:
	}
}
