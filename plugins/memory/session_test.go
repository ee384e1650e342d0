package memory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/memory"
	"github.com/musterhq/muster/servicegroup/driver"
)

// memberGetter is the optional single-member lookup proposed for the SPI.
type memberGetter interface {
	Member(ctx context.Context, group, member string) (driver.Member, error)
}

func TestSessionIDAndHolder(t *testing.T) {
	ctx := context.Background()
	url := "memory://session-id"
	open := func(member string) driver.Driver {
		d, err := memory.Open(ctx, driver.Options{URL: url, Member: member, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Close(ctx) })
		return d
	}
	a, a2 := open("a"), open("a")
	ida, ok := a.(driver.SessionID)
	if !ok {
		t.Fatal("memory does not implement driver.SessionID")
	}
	id2 := a2.(driver.SessionID).SessionID()
	if len(ida.SessionID()) != 32 || ida.SessionID() == id2 {
		t.Fatalf("session ids %q, %q: want two distinct random ids", ida.SessionID(), id2)
	}
	tok, err := a.TryLock(ctx, "L")
	if err != nil {
		t.Fatal(err)
	}
	h, err := a2.LockHolder(ctx, "L")
	if err != nil || h != (driver.LockHolder{Member: "a", Token: tok, Session: ida.SessionID()}) {
		t.Fatalf("holder = %+v, %v", h, err)
	}

	mg, ok := a.(memberGetter)
	if !ok {
		t.Fatal("memory has no Member lookup")
	}
	if err := a.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := mg.Member(ctx, "g", "a"); !errors.Is(err, driver.ErrNotMember) {
		t.Fatalf("Member before join: %v", err)
	}
	if err := a.Join(ctx, "g", []byte{0x80}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetForcedDown(ctx, "g", "a", true); err != nil {
		t.Fatal(err)
	}
	m, err := mg.Member(ctx, "g", "a")
	if err != nil || m.ID != "a" || !m.ForcedDown || len(m.Capabilities) != 1 || m.UpdatedAt.IsZero() {
		t.Fatalf("Member = %+v, %v", m, err)
	}
	if _, err := mg.Member(ctx, "nope", "a"); !errors.Is(err, driver.ErrGroupNotFound) {
		t.Fatalf("Member of a missing group: %v", err)
	}
}
