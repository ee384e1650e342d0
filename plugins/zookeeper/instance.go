package zookeeper

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/go-zookeeper/zk"
)

// Options.Instance: a new session of an instance ends the earlier ones.

// takeOver ends every earlier session of this instance: it deletes the
// instance record's session record (so that session can create nothing
// more: its creates check it) and every ephemeral node that session owns.
func (s *session) takeOver(ctx context.Context) error {
	for range 20 {
		// Usually there is no earlier session: try the create first.
		err := s.do(ctx, func() error {
			_, err := s.conn.Create(s.instPath, []byte(s.recPath), zk.FlagEphemeral, s.acl)
			return err
		})
		if errors.Is(err, zk.ErrNoNode) {
			if err := s.ensure(ctx, s.internal+"/instances"); err != nil {
				return err
			}
			continue
		}
		if !errors.Is(err, zk.ErrNodeExists) {
			return err
		}
		var old []byte
		err = s.do(ctx, func() error {
			var err error
			old, _, err = s.conn.Get(s.instPath)
			return err
		})
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return err
		}
		if err := s.endSession(ctx, string(old)); err != nil {
			return err
		}
		// The old instance record is an ephemeral of the old session.
		err = s.do(ctx, func() error { return s.conn.Delete(s.instPath, -1) })
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			return err
		}
	}
	return errors.New("instance record keeps changing")
}

// endSession ends the session whose record is at rec.
func (s *session) endSession(ctx context.Context, rec string) error {
	if rec == s.recPath || !strings.HasPrefix(rec, s.internal+"/sessions/") {
		return nil
	}
	owner, err := parseHex(rec[strings.LastIndexByte(rec, '/')+1:])
	if err != nil {
		return nil
	}
	for range 20 {
		var data []byte
		var st *zk.Stat
		err := s.do(ctx, func() error {
			var err error
			data, st, err = s.conn.Get(rec)
			return err
		})
		if errors.Is(err, zk.ErrNoNode) {
			return nil // ended already
		}
		if err != nil {
			return err
		}
		var r record
		_ = json.Unmarshal(data, &r)
		err = s.do(ctx, func() error { return s.conn.Delete(rec, st.Version) })
		if errors.Is(err, zk.ErrBadVersion) {
			continue // it just joined or locked: read its list again
		}
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			return err
		}
		for _, p := range r.Owned {
			if dir, ok := strings.CutPrefix(p, "lock:"); ok {
				var kids []string
				if s.do(ctx, func() error {
					var err error
					kids, _, err = s.conn.Children(dir)
					return err
				}) != nil {
					continue
				}
				for _, k := range kids {
					if strings.HasPrefix(k, r.Session+lockMark) {
						s.deleteOwned(ctx, dir+"/"+k, owner)
					}
				}
				continue
			}
			s.deleteOwned(ctx, p, owner)
		}
		return nil
	}
	return errors.New("an earlier session of this instance keeps changing")
}

// deleteOwned deletes p if the zk session owner owns it.
func (s *session) deleteOwned(ctx context.Context, p string, owner int64) {
	_ = s.do(ctx, func() error {
		ok, st, err := s.conn.Exists(p)
		if err != nil || !ok || st.EphemeralOwner != owner {
			return err
		}
		return s.conn.Delete(p, st.Version)
	})
}

func parseHex(h string) (int64, error) {
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 8 {
		return 0, fmt.Errorf("not a session id: %q", h)
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}
