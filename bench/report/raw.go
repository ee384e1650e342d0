package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/go-zookeeper/zk"
	goredis "github.com/redis/go-redis/v9"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// raw does by hand, with the backend's own Go client, the round trips a
// coordination layer needs for each operation, on records of its own (a
// group of 1 and one of 200 members, set up by setup).
type raw interface {
	setup(ctx context.Context) error
	join(ctx context.Context) error
	leave(ctx context.Context) error
	isUp(ctx context.Context) error
	list(ctx context.Context, n int) error // the group of n members
	setCaps(ctx context.Context) error
	heartbeat(ctx context.Context) error
	lock(ctx context.Context) error // acquire + release, uncontended
	close()
}

// rawRTs is the number of round trips each raw operation makes, by
// construction (file: system calls are not round trips).
var rawRTs = map[string]map[string]string{
	"redis":      {"join": "1", "leave": "1", "isup": "1", "getall1": "2", "getall200": "2", "setcaps": "1", "heartbeat": "1", "lock": "2"},
	"memcached":  {"join": "2", "leave": "2", "isup": "1", "getall1": "2", "getall200": "2", "setcaps": "2", "heartbeat": "1", "lock": "2"},
	"etcd":       {"join": "1", "leave": "1", "isup": "1", "getall1": "1", "getall200": "1", "setcaps": "1", "heartbeat": "1", "lock": "2"},
	"zookeeper":  {"join": "1", "leave": "1", "isup": "1", "getall1": "2", "getall200": "201 (pipelined)", "setcaps": "1", "heartbeat": "1", "lock": "3"},
	"postgresql": {"join": "1", "leave": "1", "isup": "1", "getall1": "1", "getall200": "1", "setcaps": "1", "heartbeat": "1", "lock": "2"},
	"mysql":      {"join": "1", "leave": "1", "isup": "1", "getall1": "1", "getall200": "1", "setcaps": "1", "heartbeat": "1", "lock": "2"},
}

// rawDescr says what each backend's raw client does.
var rawDescr = map[string]string{
	"file":       "os calls on a directory: write+rename a record (join/caps), remove (leave), read one file (IsUp), ReadDir + read every file (GetAll), pwrite in place (heartbeat), flock + read + pwrite in place, twice (lock)",
	"redis":      "go-redis: HSET/HDEL (join/leave/caps), pipelined HEXISTS+EXISTS (IsUp), HGETALL + MGET of beat keys (GetAll), SET PX (heartbeat), SET NX PX + DEL (lock)",
	"memcached":  "gomemcache: gets+cas of a group record (join/leave/caps), GetMulti group+member (IsUp), get + GetMulti of member keys (GetAll), touch (heartbeat), add + delete (lock)",
	"etcd":       "clientv3: Put on a lease / Delete (join/leave/caps), Get (IsUp), Get with prefix (GetAll), KeepAliveOnce (heartbeat), Txn create-if-absent + Delete (lock)",
	"zookeeper":  "go-zookeeper: Create ephemeral / Delete (join/leave), Exists (IsUp), Children + Get of each child, pipelined (GetAll), Set (caps, heartbeat), Create ephemeral sequential + Children + Delete (lock, kazoo's recipe)",
	"postgresql": "pgx, one connection: INSERT/DELETE/UPDATE (join/leave/caps), SELECT one row (IsUp), SELECT the group's live rows (GetAll), UPDATE expiry (heartbeat), INSERT ON CONFLICT DO NOTHING + DELETE (lock)",
	"mysql":      "database/sql + go-sql-driver: the same statements as postgresql",
}

func newRaw(ctx context.Context, b *backend) (raw, error) {
	switch b.name {
	case "file":
		dir := filepath.Join(b.tmp, "raw-file-"+rnd())
		return &rawFile{dir: dir}, nil
	case "redis":
		return &rawRedis{c: goredis.NewClient(&goredis.Options{Addr: b.srv.Addr()}), ns: "raw" + rnd()}, nil
	case "memcached":
		return &rawMemcached{c: memcache.New(b.srv.Addr()), ns: "raw" + rnd()}, nil
	case "etcd":
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{b.srv.Addr()}, DialTimeout: 5 * time.Second})
		if err != nil {
			return nil, err
		}
		return &rawEtcd{c: c, ns: "/raw" + rnd()}, nil
	case "zookeeper":
		c, _, err := zk.Connect([]string{b.srv.Addr()}, 10*time.Second, zk.WithLogInfo(false))
		if err != nil {
			return nil, err
		}
		return &rawZK{c: c, ns: "/raw" + rnd()}, nil
	case "postgresql", "mysql":
		return newRawSQL(ctx, b)
	}
	return nil, fmt.Errorf("no raw client for %s", b.name)
}

// --- redis

type rawRedis struct {
	c  *goredis.Client
	ns string
}

func (r *rawRedis) setup(ctx context.Context) error {
	for _, n := range []int{1, 200} {
		for i := range n {
			m := fmt.Sprintf("m%d", i)
			if err := r.c.HSet(ctx, fmt.Sprintf("%s:g%d", r.ns, n), m, "\x80").Err(); err != nil {
				return err
			}
			if err := r.c.Set(ctx, r.ns+":beat:"+m, "1", time.Hour).Err(); err != nil {
				return err
			}
		}
	}
	return nil
}
func (r *rawRedis) join(ctx context.Context) error {
	return r.c.HSet(ctx, r.ns+":gj", "self", "\x80").Err()
}
func (r *rawRedis) leave(ctx context.Context) error { return r.c.HDel(ctx, r.ns+":gj", "self").Err() }
func (r *rawRedis) isUp(ctx context.Context) error {
	p := r.c.Pipeline()
	p.HExists(ctx, r.ns+":g200", "m0")
	p.Exists(ctx, r.ns+":beat:m0")
	_, err := p.Exec(ctx)
	return err
}
func (r *rawRedis) list(ctx context.Context, n int) error {
	h, err := r.c.HGetAll(ctx, fmt.Sprintf("%s:g%d", r.ns, n)).Result()
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(h))
	for m := range h {
		keys = append(keys, r.ns+":beat:"+m)
	}
	v, err := r.c.MGet(ctx, keys...).Result()
	if err == nil && len(v) != n {
		err = fmt.Errorf("raw redis: %d members, want %d", len(v), n)
	}
	return err
}
func (r *rawRedis) setCaps(ctx context.Context) error {
	return r.c.HSet(ctx, r.ns+":g1", "m0", "\x81\xa1a\x01").Err()
}
func (r *rawRedis) heartbeat(ctx context.Context) error {
	return r.c.Set(ctx, r.ns+":beat:self", "1", 5*time.Second).Err()
}
func (r *rawRedis) lock(ctx context.Context) error {
	ok, err := r.c.SetNX(ctx, r.ns+":lock", "me", 5*time.Second).Result()
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("raw redis: lock held")
	}
	return r.c.Del(ctx, r.ns+":lock").Err()
}
func (r *rawRedis) close() { r.c.Close() }

// --- memcached

type rawMemcached struct {
	c  *memcache.Client
	ns string
}

func (r *rawMemcached) setup(ctx context.Context) error {
	for _, n := range []int{1, 200} {
		var ms []string
		for i := range n {
			m := fmt.Sprintf("m%d", i)
			ms = append(ms, m)
			if err := r.c.Set(&memcache.Item{Key: r.ns + ".m." + m, Value: []byte("1"), Expiration: 3600}); err != nil {
				return err
			}
		}
		if err := r.c.Set(&memcache.Item{Key: fmt.Sprintf("%s.g%d", r.ns, n), Value: []byte(strings.Join(ms, ","))}); err != nil {
			return err
		}
	}
	return r.c.Set(&memcache.Item{Key: r.ns + ".gj", Value: []byte("")})
}

// cas rewrites a group record: gets + cas, 2 round trips.
func (r *rawMemcached) cas(key string, f func([]byte) []byte) error {
	it, err := r.c.Get(key)
	if err != nil {
		return err
	}
	it.Value = f(it.Value)
	return r.c.CompareAndSwap(it)
}
func (r *rawMemcached) join(ctx context.Context) error {
	return r.cas(r.ns+".gj", func(v []byte) []byte { return []byte("self") })
}
func (r *rawMemcached) leave(ctx context.Context) error {
	return r.cas(r.ns+".gj", func(v []byte) []byte { return nil })
}
func (r *rawMemcached) isUp(ctx context.Context) error {
	_, err := r.c.GetMulti([]string{r.ns + ".g200", r.ns + ".m.m0"})
	return err
}
func (r *rawMemcached) list(ctx context.Context, n int) error {
	it, err := r.c.Get(fmt.Sprintf("%s.g%d", r.ns, n))
	if err != nil {
		return err
	}
	var keys []string
	for _, m := range strings.Split(string(it.Value), ",") {
		keys = append(keys, r.ns+".m."+m)
	}
	got, err := r.c.GetMulti(keys)
	if err == nil && len(got) != n {
		err = fmt.Errorf("raw memcached: %d members, want %d", len(got), n)
	}
	return err
}
func (r *rawMemcached) setCaps(ctx context.Context) error {
	return r.cas(r.ns+".g1", func(v []byte) []byte { return v })
}
func (r *rawMemcached) heartbeat(ctx context.Context) error {
	return r.c.Touch(r.ns+".m.m0", 3600)
}
func (r *rawMemcached) lock(ctx context.Context) error {
	if err := r.c.Add(&memcache.Item{Key: r.ns + ".lock", Value: []byte("me"), Expiration: 5}); err != nil {
		return err
	}
	return r.c.Delete(r.ns + ".lock")
}
func (r *rawMemcached) close() { r.c.Close() }

// --- etcd

type rawEtcd struct {
	c     *clientv3.Client
	ns    string
	lease clientv3.LeaseID
}

func (r *rawEtcd) setup(ctx context.Context) error {
	l, err := r.c.Grant(ctx, 3600)
	if err != nil {
		return err
	}
	r.lease = l.ID
	for _, n := range []int{1, 200} {
		for i := range n {
			if _, err := r.c.Put(ctx, fmt.Sprintf("%s/g%d/m%d", r.ns, n, i), "\x80", clientv3.WithLease(r.lease)); err != nil {
				return err
			}
		}
	}
	return nil
}
func (r *rawEtcd) join(ctx context.Context) error {
	_, err := r.c.Put(ctx, r.ns+"/gj/self", "\x80", clientv3.WithLease(r.lease))
	return err
}
func (r *rawEtcd) leave(ctx context.Context) error {
	_, err := r.c.Delete(ctx, r.ns+"/gj/self")
	return err
}
func (r *rawEtcd) isUp(ctx context.Context) error {
	_, err := r.c.Get(ctx, r.ns+"/g200/m0")
	return err
}
func (r *rawEtcd) list(ctx context.Context, n int) error {
	resp, err := r.c.Get(ctx, fmt.Sprintf("%s/g%d/", r.ns, n), clientv3.WithPrefix())
	if err == nil && len(resp.Kvs) != n {
		err = fmt.Errorf("raw etcd: %d members, want %d", len(resp.Kvs), n)
	}
	return err
}
func (r *rawEtcd) setCaps(ctx context.Context) error {
	_, err := r.c.Put(ctx, r.ns+"/g1/m0", "\x81\xa1a\x01", clientv3.WithLease(r.lease))
	return err
}
func (r *rawEtcd) heartbeat(ctx context.Context) error {
	_, err := r.c.KeepAliveOnce(ctx, r.lease)
	return err
}
func (r *rawEtcd) lock(ctx context.Context) error {
	k := r.ns + "/lock"
	resp, err := r.c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, "me", clientv3.WithLease(r.lease))).Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return errors.New("raw etcd: lock held")
	}
	_, err = r.c.Delete(ctx, k)
	return err
}
func (r *rawEtcd) close() { r.c.Close() }

// --- zookeeper

type rawZK struct {
	c  *zk.Conn
	ns string
}

func (r *rawZK) setup(ctx context.Context) error {
	acl := zk.WorldACL(zk.PermAll)
	for _, p := range []string{r.ns, r.ns + "/g1", r.ns + "/g200", r.ns + "/gj", r.ns + "/locks"} {
		if _, err := r.c.Create(p, nil, 0, acl); err != nil {
			return fmt.Errorf("create %s: %w", p, err)
		}
	}
	if _, err := r.c.Create(r.ns+"/session", nil, zk.FlagEphemeral, acl); err != nil {
		return err
	}
	for _, n := range []int{1, 200} {
		for i := range n {
			if _, err := r.c.Create(fmt.Sprintf("%s/g%d/m%d", r.ns, n, i), []byte{0x80}, zk.FlagEphemeral, acl); err != nil {
				return err
			}
		}
	}
	return nil
}
func (r *rawZK) join(ctx context.Context) error {
	_, err := r.c.Create(r.ns+"/gj/self", []byte{0x80}, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	return err
}
func (r *rawZK) leave(ctx context.Context) error { return r.c.Delete(r.ns+"/gj/self", -1) }
func (r *rawZK) isUp(ctx context.Context) error {
	ok, _, err := r.c.Exists(r.ns + "/g200/m0")
	if err == nil && !ok {
		err = errors.New("raw zk: no member")
	}
	return err
}
func (r *rawZK) list(ctx context.Context, n int) error {
	g := fmt.Sprintf("%s/g%d", r.ns, n)
	kids, _, err := r.c.Children(g)
	if err != nil {
		return err
	}
	errs := make([]error, len(kids))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i, k := range kids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			_, _, errs[i] = r.c.Get(g + "/" + k)
			<-sem
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if len(kids) != n {
		return fmt.Errorf("raw zk: %d members, want %d", len(kids), n)
	}
	return nil
}
func (r *rawZK) setCaps(ctx context.Context) error {
	_, err := r.c.Set(r.ns+"/g1/m0", []byte{0x81, 0xa1, 'a', 1}, -1)
	return err
}
func (r *rawZK) heartbeat(ctx context.Context) error {
	_, err := r.c.Set(r.ns+"/session", []byte("beat"), -1)
	return err
}
func (r *rawZK) lock(ctx context.Context) error {
	p, err := r.c.Create(r.ns+"/locks/x__lock__", []byte("me"), zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
	if err != nil {
		return err
	}
	kids, _, err := r.c.Children(r.ns + "/locks")
	if err != nil {
		return err
	}
	if len(kids) != 1 {
		return errors.New("raw zk: lock held")
	}
	return r.c.Delete(p, -1)
}
func (r *rawZK) close() { r.c.Close() }

// --- file

type rawFile struct {
	dir  string
	beat *os.File
}

func (r *rawFile) write(path string, data []byte) error {
	tmp := filepath.Join(r.dir, "tmp", "w-"+rnd())
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (r *rawFile) setup(ctx context.Context) error {
	for _, d := range []string{"tmp", "g1", "g200", "gj", "locks"} {
		if err := os.MkdirAll(filepath.Join(r.dir, d), 0o755); err != nil {
			return err
		}
	}
	for _, n := range []int{1, 200} {
		for i := range n {
			if err := r.write(filepath.Join(r.dir, fmt.Sprintf("g%d", n), fmt.Sprintf("m%d", i)), []byte("session ttl caps")); err != nil {
				return err
			}
		}
	}
	f, err := os.OpenFile(filepath.Join(r.dir, "session"), os.O_CREATE|os.O_RDWR, 0o644)
	r.beat = f
	return err
}
func (r *rawFile) join(ctx context.Context) error {
	return r.write(filepath.Join(r.dir, "gj", "self"), []byte("session ttl caps"))
}
func (r *rawFile) leave(ctx context.Context) error {
	return os.Remove(filepath.Join(r.dir, "gj", "self"))
}
func (r *rawFile) isUp(ctx context.Context) error {
	_, err := os.ReadFile(filepath.Join(r.dir, "g200", "m0"))
	return err
}
func (r *rawFile) list(ctx context.Context, n int) error {
	g := filepath.Join(r.dir, fmt.Sprintf("g%d", n))
	ents, err := os.ReadDir(g)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if _, err := os.ReadFile(filepath.Join(g, e.Name())); err != nil {
			return err
		}
	}
	if len(ents) != n {
		return fmt.Errorf("raw file: %d members, want %d", len(ents), n)
	}
	return nil
}
func (r *rawFile) setCaps(ctx context.Context) error {
	return r.write(filepath.Join(r.dir, "g1", "m0"), []byte("session ttl caps2"))
}
func (r *rawFile) heartbeat(ctx context.Context) error {
	_, err := r.beat.WriteAt([]byte(time.Now().Format(time.RFC3339Nano)), 0)
	return err
}

// flocked runs f holding an exclusive flock on the directory's lock file.
func (r *rawFile) flocked(f func() error) error {
	lf, err := os.OpenFile(filepath.Join(r.dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
	return f()
}

// lock does what muster's file lock does, by hand: under the flock, read
// the lock file and rewrite its first 1 KiB in place; once to take it,
// once to release it.
func (r *rawFile) lock(ctx context.Context) error {
	p := filepath.Join(r.dir, "locks", "x")
	rewrite := func() error {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		var b [3 << 10]byte
		if _, err := f.ReadAt(b[:], 0); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		_, err = f.WriteAt(b[:1<<10], 0)
		return err
	}
	if err := r.flocked(rewrite); err != nil {
		return err
	}
	return r.flocked(rewrite)
}
func (r *rawFile) close() {
	if r.beat != nil {
		r.beat.Close()
	}
}
