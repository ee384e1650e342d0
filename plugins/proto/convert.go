package proto

import (
	"time"

	"github.com/musterhq/muster/servicegroup/driver"
)

// FromMember converts a driver member for the wire.
func FromMember(m driver.Member) *Member {
	var at int64
	if !m.UpdatedAt.IsZero() {
		at = m.UpdatedAt.UnixNano()
	}
	return &Member{Id: m.ID, Capabilities: m.Capabilities, UpdatedAtUnixNanos: at, ForcedDown: m.ForcedDown}
}

// Driver converts m back to a driver member.
func (m *Member) Driver() driver.Member {
	var at time.Time
	if n := m.GetUpdatedAtUnixNanos(); n != 0 {
		at = time.Unix(0, n)
	}
	caps := m.GetCapabilities()
	if len(caps) == 0 {
		caps = nil
	}
	return driver.Member{ID: m.GetId(), Capabilities: caps, UpdatedAt: at, ForcedDown: m.GetForcedDown()}
}

// FromEvent converts a watch event for the wire.
func FromEvent(e driver.Event) *WatchEvent {
	t := WatchEvent_TYPE_UNSPECIFIED
	switch e.Type {
	case driver.Joined:
		t = WatchEvent_TYPE_JOINED
	case driver.Left:
		t = WatchEvent_TYPE_LEFT
	case driver.Updated:
		t = WatchEvent_TYPE_UPDATED
	}
	return &WatchEvent{Type: t, Group: e.Group, Member: e.Member}
}

// Driver converts e back to a driver event; ok is false for the stream's
// start marker and unknown types.
func (e *WatchEvent) Driver() (_ driver.Event, ok bool) {
	var t driver.EventType
	switch e.GetType() {
	case WatchEvent_TYPE_JOINED:
		t = driver.Joined
	case WatchEvent_TYPE_LEFT:
		t = driver.Left
	case WatchEvent_TYPE_UPDATED:
		t = driver.Updated
	default:
		return driver.Event{}, false
	}
	return driver.Event{Type: t, Group: e.GetGroup(), Member: e.GetMember()}, true
}
