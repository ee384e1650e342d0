package file

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// start creates the session file, under the flock, after tidying up: it
// removes leftover temporary files, ends the earlier session of this
// instance, and, at most once per TTL, every expired session.
func (s *session) start(ctx context.Context) error {
	unlock, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	s.cleanTmp()
	j, err := s.judge()
	if err != nil {
		return err
	}
	if err := s.sweepLocked(j); err != nil {
		return err
	}
	if s.instance != "" {
		if err := s.takeOverLocked(); err != nil {
			return err
		}
	}
	rec := sessionRecord{member: s.member, instance: s.instance, ttl: s.ttl, pid: cmp.Or(s.ownerPID, os.Getpid()),
		host: s.host.name, boot: s.host.boot, pidNS: pidNS(), renewal: renewal{at: bootNow(), wall: wallNow()}.encode()}
	b := rec.encode()
	p := s.path(sessionsDir, s.id)
	if err := s.writeFile(p, b); err != nil {
		return err
	}
	own, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	s.own, s.ownAt = own, int64(len(b)-renewalLen) // the renewal is the record's end
	if s.instance != "" {
		return s.writeFile(s.instancePath(), []byte(s.id+"\n"))
	}
	return nil
}

// instancePath is the file naming the latest session of this session's
// instance. Instances are free text, so the file is named by a hash.
func (s *session) instancePath() string {
	sum := sha256.Sum256([]byte(s.instance))
	return s.path(instancesDir, hex.EncodeToString(sum[:16]))
}

// takeOverLocked ends the latest earlier session of this instance, which
// ended every one before it when it opened. Caller holds the flock.
func (s *session) takeOverLocked() error {
	b, err := readFile(s.instancePath())
	if err != nil || b == nil {
		return err
	}
	id := strings.TrimSpace(string(b))
	if !isSessionID(id) {
		return nil // garbage: overwritten below
	}
	b, err = readFile(s.path(sessionsDir, id))
	if err != nil || b == nil {
		return err // ended already
	}
	rec, err := parseSession(b)
	if err != nil || rec.instance != s.instance {
		return nil // garbage, for the sweep; or another instance (a hash collision)
	}
	s.log.Info("file: ending an earlier session of this instance",
		zap.String("session", id), zap.String("member", rec.member), zap.String("instance", rec.instance))
	return s.reapLocked(map[string]string{id: rec.member})
}

// dropInstanceLocked removes the instance file if it still names this
// session. Caller holds the flock.
func (s *session) dropInstanceLocked() error {
	if s.instance == "" {
		return nil
	}
	p := s.instancePath()
	if b, err := readFile(p); err != nil || strings.TrimSpace(string(b)) != s.id {
		return err
	}
	return removeFile(p)
}

// sweepLocked ends every expired session, and removes garbage among the
// session files. It reads every session file, so it runs at most once per
// TTL (of the session opening), whoever ran it last: readers treat dead
// sessions' records as absent anyway, so the sweep is only housekeeping.
// Caller holds the flock.
func (s *session) sweepLocked(j *judge) error {
	// The marker holds the boot time of the last sweep.
	marker := s.path(sweptFile)
	if b, _ := readFile(marker); b != nil {
		if at, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && at <= int64(j.now) && j.now-time.Duration(at) < s.ttl {
			return nil
		}
	}
	if err := s.writeFile(marker, []byte(strconv.FormatInt(int64(j.now), 10)+"\n")); err != nil {
		return err
	}
	entries, err := os.ReadDir(s.path(sessionsDir))
	if err != nil {
		return err
	}
	dead := map[string]string{}
	for _, e := range entries {
		id := e.Name()
		p := s.path(sessionsDir, id)
		if !isSessionID(id) {
			s.log.Debug("file: leaving alone a file muster did not write", pathField(p))
			continue
		}
		b, err := readFile(p)
		if err != nil && !errors.Is(err, errGarbage) {
			return err
		}
		if b == nil && err == nil {
			continue // gone meanwhile
		}
		rec, err := parseSession(b)
		if err != nil {
			s.log.Debug("file: leaving alone an unparseable file among sessions", pathField(p))
			continue
		}
		if _, ok, err := j.alive(id, rec.ttl); err != nil {
			return err
		} else if !ok {
			s.log.Debug("file: ending an expired session", zap.String("session", id), zap.String("member", rec.member))
			dead[id] = rec.member
		}
	}
	return s.reapLocked(dead)
}
