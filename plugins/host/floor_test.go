package host

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/proto"
	"github.com/musterhq/muster/servicegroup/driver"
)

// BenchmarkRPCFloor measures the transport alone: an RPC (Features) that
// does no backend work, through go-plugin's gRPC connection with mTLS.
// BenchmarkTransport's differences minus this are the backend running in
// another process.
func BenchmarkRPCFloor(b *testing.B) {
	dir := os.Getenv("MUSTER_HOST_TEST_PLUGIN_DIR") // set by TestMain
	if dir == "" {
		b.Skip("no plugin directory")
	}
	ctx := context.Background()
	d, err := Config{Dir: dir}.Factory("file")(ctx, driver.Options{
		URL: "file://" + b.TempDir(), Member: "floor", TTL: time.Hour,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close(ctx)
	s := d.(*session)
	b.ResetTimer()
	for range b.N {
		if _, err := s.rpc.Features(ctx, &proto.Empty{}); err != nil {
			b.Fatal(err)
		}
	}
}
