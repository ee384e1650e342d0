package file

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/musterhq/muster/servicegroup/driver"
)

// CreateGroup makes the group's directory; mkdir is atomic, so it needs no
// flock.
func (s *session) CreateGroup(ctx context.Context, group string) error {
	return s.run(ctx, "create group", group, driver.ErrSessionLost, checkName("group", group), unlocked, func() error {
		err := os.Mkdir(s.path(groupsDir, group), dirPerm)
		if errors.Is(err, fs.ErrExist) {
			return driver.ErrGroupExists
		}
		return err
	})
}

// DeleteGroup removes a group without live members, with its forced-down
// marks and the records of its dead members.
func (s *session) DeleteGroup(ctx context.Context, group string) error {
	return s.run(ctx, "delete group", group, driver.ErrSessionLost, checkName("group", group), locked, func() error {
		j, err := s.judge()
		if err != nil {
			return err
		}
		live, _, err := s.scanGroup(j, group)
		if err != nil {
			return err
		}
		if len(live) > 0 {
			return driver.ErrGroupNotEmpty
		}
		return s.removeGroupLocked(group)
	})
}

// removeGroupLocked removes a group without live members: the records it
// can identify as muster's (member records that parse, forced-down marks,
// which are empty files), then the directories. A file it cannot identify
// stays, and so does the group, with an error naming the file.
func (s *session) removeGroupLocked(group string) error {
	dir := s.path(groupsDir, group)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var foreign []string
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		b, err := readFile(p)
		if err != nil && !errors.Is(err, errGarbage) {
			return err
		}
		if _, perr := parseMember(b); b == nil || err != nil || perr != nil {
			if b != nil || err != nil {
				foreign = append(foreign, p)
			}
			continue
		}
		if err := removeFile(p); err != nil {
			return err
		}
	}
	if len(foreign) > 0 {
		return fmt.Errorf("%w: it holds files muster did not write: %s", driver.ErrGroupNotEmpty, strings.Join(foreign, ", "))
	}
	if err := os.Remove(dir); err != nil {
		return err
	}
	marks := s.path(marksDir, group)
	entries, err = os.ReadDir(marks)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(marks, e.Name())
		if fi, err := e.Info(); err != nil || !fi.Mode().IsRegular() || fi.Size() != 0 {
			s.log.Debug("file: leaving alone a file muster did not write", pathField(p))
			continue
		}
		if err := removeFile(p); err != nil {
			return err
		}
	}
	if err := os.Remove(marks); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Debug("file: leaving a marks directory with foreign files", pathField(marks), errField(err))
	}
	return nil
}

// Groups lists the group directories.
func (s *session) Groups(ctx context.Context) ([]string, error) {
	const op = "list groups"
	end, err := s.begin(ctx, op, "", driver.ErrSessionLost)
	if err != nil {
		return nil, err
	}
	defer end()
	entries, err := os.ReadDir(s.path(groupsDir))
	if err != nil {
		return nil, driver.Errorf(backend, op, "", err)
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// Join writes this member's record into the group, replacing a dead
// session's record of the same member.
func (s *session) Join(ctx context.Context, group string, caps []byte) error {
	return s.writeMember(ctx, "join", group, caps, true)
}

// SetCapabilities rewrites this member's record with caps.
func (s *session) SetCapabilities(ctx context.Context, group string, caps []byte) error {
	return s.writeMember(ctx, "set capabilities", group, caps, false)
}

func (s *session) writeMember(ctx context.Context, op, group string, caps []byte, join bool) error {
	check := cmp.Or(checkName("group", group), checkName("member", s.member))
	return s.run(ctx, op, group, driver.ErrSessionLost, check, locked, func() error {
		j, err := s.judge()
		if err != nil {
			return err
		}
		if ok, err := s.aliveLocked(j); err != nil || !ok {
			return errOr(err, driver.ErrSessionLost)
		}
		if err := s.groupExists(group); err != nil {
			return err
		}
		p := s.path(groupsDir, group, s.member)
		rec, state, err := s.readMember(j, p)
		if err != nil {
			return err
		}
		if state == recordGarbage {
			return fmt.Errorf("%w: %s is not a muster record; refusing to replace it", driver.ErrMemberExists, p)
		}
		if join && state == recordLive {
			return fmt.Errorf("%w: %q", driver.ErrMemberExists, s.member)
		}
		if !join && (state != recordLive || rec.session != s.id) {
			return driver.ErrNotMember
		}
		if state == recordDead { // tidy up all that the dead session left
			if err := s.reapLocked(map[string]string{rec.session: s.member}); err != nil {
				return err
			}
		}
		rec = memberRecord{session: s.id, ttl: s.ttl, caps: caps}
		return s.writeFile(p, rec.encode())
	})
}

// Leave removes this member's record.
func (s *session) Leave(ctx context.Context, group string) error {
	notMember := lostNot(driver.ErrNotMember)
	return s.run(ctx, "leave", group, notMember, checkName("group", group), locked, func() error {
		j, err := s.judge()
		if err != nil {
			return err
		}
		if ok, err := s.aliveLocked(j); err != nil || !ok {
			return errOr(err, notMember)
		}
		if err := s.groupExists(group); err != nil {
			return err
		}
		if s.member == "" {
			return driver.ErrNotMember
		}
		p := s.path(groupsDir, group, s.member)
		rec, state, err := s.readMember(j, p)
		if err != nil {
			return err
		}
		if state != recordLive || rec.session != s.id {
			return driver.ErrNotMember
		}
		return removeFile(p)
	})
}

// Members lists the live members without taking the flock; it takes it
// only to remove records of dead sessions, or garbage, that it came across.
func (s *session) Members(ctx context.Context, group string) (live []driver.Member, err error) {
	err = s.run(ctx, "members", group, driver.ErrSessionLost, checkName("group", group), unlocked, func() error {
		j, err := s.judge()
		if err != nil {
			return err
		}
		var dead []string
		if live, dead, err = s.scanGroup(j, group); err != nil {
			return err
		}
		if len(dead) > 0 {
			s.prune(group, dead)
		}
		if len(live) == 0 {
			return nil
		}
		marks, err := os.ReadDir(s.path(marksDir, group))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		down := make(map[string]bool, len(marks))
		for _, m := range marks {
			down[m.Name()] = true
		}
		for i := range live {
			live[i].ForcedDown = down[live[i].ID]
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return live, nil
}

// SetForcedDown creates or removes the member's mark.
func (s *session) SetForcedDown(ctx context.Context, group, member string, down bool) error {
	check := cmp.Or(checkName("group", group), checkName("member", member))
	// Under the flock: against DeleteGroup removing the marks.
	return s.run(ctx, "force down", group, driver.ErrSessionLost, check, locked, func() error {
		if err := s.groupExists(group); err != nil {
			return err
		}
		p := s.path(marksDir, group, member)
		if !down {
			return removeFile(p)
		}
		if err := os.MkdirAll(s.path(marksDir, group), dirPerm); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, filePerm)
		if err == nil {
			err = f.Close()
		}
		return err
	})
}

func (s *session) groupExists(group string) error {
	fi, err := os.Stat(s.path(groupsDir, group))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return driver.ErrGroupNotFound
	case err != nil:
		return err
	case !fi.IsDir():
		return driver.ErrGroupNotFound
	}
	return nil
}

type recordState int

const (
	recordMissing recordState = iota
	recordLive
	recordDead    // its session expired or ended
	recordGarbage // unparseable: treated as dead
)

// readMember reads and judges one member record.
func (s *session) readMember(j *judge, p string) (memberRecord, recordState, error) {
	b, err := readFile(p)
	switch {
	case errors.Is(err, errGarbage):
		return memberRecord{}, recordGarbage, nil
	case err != nil:
		return memberRecord{}, recordMissing, err
	case b == nil:
		return memberRecord{}, recordMissing, nil
	}
	rec, err := parseMember(b)
	if err != nil {
		return rec, recordGarbage, nil
	}
	_, ok, err := j.alive(rec.session, rec.ttl)
	if err != nil {
		return rec, recordMissing, err
	}
	if !ok {
		return rec, recordDead, nil
	}
	return rec, recordLive, nil
}

// scanGroup reads every record of group: the live members, sorted by id,
// and the names of dead or unparseable records.
func (s *session) scanGroup(j *judge, group string) (live []driver.Member, dead []string, err error) {
	err = s.eachMember(j, group, func(n int) { live = make([]driver.Member, 0, n) },
		func(m driver.Member, ok bool) {
			if ok {
				live = append(live, m)
			} else {
				dead = append(dead, m.ID)
			}
		})
	if err != nil {
		return nil, nil, err
	}
	return live, dead, nil
}

// eachMember judges every muster record of group, in order of id: found
// gets each as a member (UpdatedAt: its session's last renewal, zero once
// the session file is gone) and whether it is live. Files muster did not
// write are skipped. size is told how many entries there are first.
func (s *session) eachMember(j *judge, group string, size func(int), found func(m driver.Member, live bool)) error {
	entries, err := os.ReadDir(s.path(groupsDir, group))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return driver.ErrGroupNotFound
	}
	if err != nil {
		return err
	}
	size(len(entries))
	for _, e := range entries {
		p := s.path(groupsDir, group, e.Name())
		b, err := readFile(p)
		if b == nil && err == nil {
			continue // left meanwhile
		}
		if err != nil && !errors.Is(err, errGarbage) {
			return err
		}
		rec, perr := parseMember(b)
		if err != nil || perr != nil {
			continue // not muster's: no member, and left alone
		}
		renewed, ok, err := j.alive(rec.session, rec.ttl)
		if err != nil {
			return err
		}
		found(driver.Member{ID: e.Name(), Capabilities: rec.caps, UpdatedAt: renewed.renewed}, ok)
	}
	return nil
}

// KnownMembers lists every member record of group, live or dead, and the
// forced-down marks of names with no record. Unlike Members it removes
// nothing: a dead session's records stay until a Members call comes across
// them, the member joins again, or a session opening sweeps (at most once
// per TTL, that session's).
func (s *session) KnownMembers(ctx context.Context, group string) (out []driver.KnownMember, err error) {
	err = s.run(ctx, "known members", group, driver.ErrSessionLost, checkName("group", group), unlocked, func() error {
		j, err := s.judge()
		if err != nil {
			return err
		}
		out = nil
		if err := s.eachMember(j, group, func(n int) { out = make([]driver.KnownMember, 0, n) },
			func(m driver.Member, live bool) { out = append(out, driver.KnownMember{Member: m, Live: live}) }); err != nil {
			return err
		}
		marks, err := os.ReadDir(s.path(marksDir, group))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		listed := make(map[string]int, len(out))
		for i, m := range out {
			listed[m.ID] = i
		}
		for _, m := range marks {
			if i, ok := listed[m.Name()]; ok {
				out[i].ForcedDown = true
			} else if m.Type().IsRegular() {
				out = append(out, driver.KnownMember{Member: driver.Member{ID: m.Name(), ForcedDown: true}})
			}
		}
		slices.SortFunc(out, func(a, b driver.KnownMember) int { return strings.Compare(a.ID, b.ID) })
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// prune removes the records of dead members that Members came across,
// judging each again under the flock, and then everything else their
// sessions left. It never waits for the flock, and a failure only leaves
// the records for the next reader: Members neither waits nor fails for it.
func (s *session) prune(group string, names []string) {
	unlock, ok := s.tryLock()
	if !ok {
		return
	}
	defer unlock()
	j, err := s.judge()
	if err != nil {
		return
	}
	dead := map[string]string{}
	for _, m := range names {
		p := s.path(groupsDir, group, m)
		rec, state, err := s.readMember(j, p)
		switch {
		case err != nil:
			continue
		case state == recordDead:
			dead[rec.session] = m
		default:
			continue // live, missing, or not muster's (left alone)
		}
		if err := removeFile(p); err != nil {
			s.log.Warn("file: removing a dead member's record", groupField(group), memberField(m), errField(err))
		}
	}
	if err := s.reapLocked(dead); err != nil {
		s.log.Warn("file: removing the records of dead sessions", errField(err))
	}
}

// errOr returns err if it is not nil, else alt.
func errOr(err, alt error) error {
	if err != nil {
		return err
	}
	return alt
}

// lostNot is the error of a release (Leave, Unlock) by a lost session: it
// is both what the release reports (not a member, not locked) and why.
func lostNot(sentinel error) error {
	return fmt.Errorf("%w: %w", sentinel, driver.ErrSessionLost)
}

// Member is one member's entry as Members would list it, read with one
// record and one session stat however big the group is; ErrNotMember when
// it is not live in group. (The core's IsUp and UpdatedAt can use it
// through an optional interface instead of listing the group.)
func (s *session) Member(ctx context.Context, group, member string) (m driver.Member, err error) {
	check := cmp.Or(checkName("group", group), checkName("member", member))
	err = s.run(ctx, "member", group, driver.ErrSessionLost, check, unlocked, func() error {
		j, err := s.judge()
		if err != nil {
			return err
		}
		if err := s.groupExists(group); err != nil {
			return err
		}
		rec, state, err := s.readMember(j, s.path(groupsDir, group, member))
		if err != nil {
			return err
		}
		if state != recordLive {
			return fmt.Errorf("%w: %q", driver.ErrNotMember, member)
		}
		renewed, _, err := j.alive(rec.session, rec.ttl)
		if err != nil {
			return err
		}
		m = driver.Member{ID: member, Capabilities: rec.caps, UpdatedAt: renewed.renewed}
		fi, err := os.Stat(s.path(marksDir, group, member))
		m.ForcedDown = err == nil && fi.Mode().IsRegular()
		return nil
	})
	if err != nil {
		return driver.Member{}, err
	}
	return m, nil
}

// The optional interfaces the core finds by type assertion.
var (
	_ driver.SessionID         = (*session)(nil)
	_ driver.MemberGetter      = (*session)(nil)
	_ driver.KnownMemberLister = (*session)(nil)
)
