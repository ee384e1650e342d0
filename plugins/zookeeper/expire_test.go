package zookeeper_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/musterhq/muster/plugins/zookeeper"
	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/driver"
)

// closeSessionFromOutside attaches to the client's ZooKeeper session on a
// connection of its own (session id and password) and closes it: the
// server ends the session, as an expiry would.
func closeSessionFromOutside(addr string, c *zk.Conn) error {
	pw := reflect.ValueOf(c).Elem().FieldByName("passwd").Bytes()
	id := c.SessionID()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	req := binary.BigEndian.AppendUint32(nil, 0)              // protocol version
	req = binary.BigEndian.AppendUint64(req, 0)               // last zxid seen
	req = binary.BigEndian.AppendUint32(req, 60000)           // timeout
	req = binary.BigEndian.AppendUint64(req, uint64(id))      // session id
	req = binary.BigEndian.AppendUint32(req, uint32(len(pw))) // password
	req = append(req, pw...)
	req = append(req, 0) // read-only: no
	// The close is sent with the attach, before the client (which redials
	// at once when the server moves its session) can take the session back.
	closeReq := binary.BigEndian.AppendUint32(nil, 8)
	closeReq = binary.BigEndian.AppendUint32(closeReq, 1)                  // xid
	closeReq = binary.BigEndian.AppendUint32(closeReq, uint32(0xfffffff5)) // closeSession (-11)
	msg := append(binary.BigEndian.AppendUint32(nil, uint32(len(req))), req...)
	if _, err := nc.Write(append(msg, closeReq...)); err != nil {
		return err
	}
	resp, err := readFrame(nc)
	if err != nil {
		return err
	}
	if len(resp) < 16 || int64(binary.BigEndian.Uint64(resp[8:16])) != id {
		return fmt.Errorf("attach to session %x refused", id)
	}
	// The server may close the connection right after the close.
	if _, err = readFrame(nc); errors.Is(err, io.EOF) {
		err = nil
	}
	return err
}

func readFrame(r io.Reader) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(n[:]))
	_, err := io.ReadFull(r, b)
	return b, err
}

// TestSessionEndedByServer: a member whose ZooKeeper session the server
// ends re-joins by itself (a new session), and a lock it held is reported
// lost.
func TestSessionEndedByServer(t *testing.T) {
	url := freshURL(t)
	ctx := context.Background()
	var mu sync.Mutex
	var opened []driver.Driver
	factory := func(ctx context.Context, o driver.Options) (driver.Driver, error) {
		d, err := zookeeper.Open(ctx, o)
		if err == nil {
			mu.Lock()
			opened = append(opened, d)
			mu.Unlock()
		}
		return d, err
	}
	cfg := servicegroup.Config{URL: url, HeartbeatInterval: 200 * time.Millisecond, MemberTTL: 2 * time.Second,
		WatchInterval: 100 * time.Millisecond, DialTimeout: 5 * time.Second}
	cfg.Member = "m"
	sg, err := servicegroup.OpenDriver(ctx, cfg, "zookeeper", factory)
	if err != nil {
		t.Fatal(err)
	}
	defer sg.Close(ctx)
	cfg.Member = "obs"
	obs, err := servicegroup.OpenDriver(ctx, cfg, "zookeeper", zookeeper.Open)
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close(ctx)
	if err := sg.JoinOrCreate(ctx, "g", servicegroup.Capabilities{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	l := sg.Lock("l")
	tok, err := l.TryAcquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	first := opened[0]
	mu.Unlock()
	if err := closeSessionFromOutside(server(t).Addr(), zookeeper.ConnOf(first)); err != nil {
		t.Fatalf("end the session from outside: %v", err)
	}
	select {
	case <-first.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done did not fire after the server ended the session")
	}
	select {
	case <-l.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("the lock was not reported lost")
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		ms, err := obs.Members(ctx, "g")
		mu.Lock()
		n := len(opened)
		mu.Unlock()
		if err == nil && len(ms) == 1 && ms[0].ID == "m" && n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not re-joined: %v, %v, %d sessions", ms, err, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A later holder gets a larger token.
	tok2, err := obs.Lock("l").TryAcquire(ctx)
	if err != nil || tok2 <= tok {
		t.Errorf("next holder: token %d, %v; want > %d", tok2, err, tok)
	}
}
