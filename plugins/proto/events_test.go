package proto_test

import (
	"testing"

	"github.com/musterhq/muster/plugins/proto"
	"github.com/musterhq/muster/servicegroup/driver"
)

// Every driver event type crosses the wire and comes back as itself.
func TestEventRoundTrip(t *testing.T) {
	for _, typ := range []driver.EventType{driver.Joined, driver.Left, driver.Updated} {
		in := driver.Event{Type: typ, Group: "g", Member: "m"}
		out, ok := proto.FromEvent(in).Driver()
		if !ok || out != in {
			t.Errorf("event %v came back as %v (%v)", in, out, ok)
		}
	}
	if _, ok := (&proto.WatchEvent{}).Driver(); ok {
		t.Error("the stream's start marker converted to an event")
	}
}
