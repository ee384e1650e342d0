"""tooz side of muster's benchmark harness (bench/report).

usage: /usr/bin/python3 tooz_bench.py URL MEMBER

Starts a tooz coordinator on URL as MEMBER, prints {"ready": true}, then
reads one JSON command a line from stdin and answers one JSON line each:
  {"op": "create", "group": G}
  {"op": "populate", "group": G, "n": N}        N more members join G
  {"op": "join", "group": G, "n": K}            K timed join_group (each left after)
  {"op": "members", "group": G, "n": K, "want": W}
  {"op": "heartbeat", "n": K}
  {"op": "lock", "name": L, "n": K}             K timed acquire(blocking=False)+release
  {"op": "throughput", "name": L, "clients": C, "seconds": S}   (a round: the
                                     coordinators stay for the next round of L)
  {"op": "quit"}
Timed answers are {"ns": [...]} (nanoseconds per call); throughput answers
{"ops": N, "seconds": S}; a failure is {"error": "..."}.

Debian's tooz 3.1 etcd3+http:// driver needs a shim (see the etcd plugin's
testdata/tooz_interop.py); this harness uses etcd3:// (python-etcd3, gRPC).
"""
import json
import sys
import threading
import time

from tooz import coordination


def coordinator(url, member):
    c = coordination.get_coordinator(url, member.encode())
    c.start(start_heart=False)
    return c


def timed(k, f):
    out = []
    for _ in range(k):
        t = time.perf_counter_ns()
        f()
        out.append(time.perf_counter_ns() - t)
    return out


def keep_alive(extra, lock, stop):
    """Heartbeats the populated members every 2 s: they are started without
    tooz's heart thread, and tooz's file driver drops a member whose file
    is older than its timeout (10 s) from get_members."""
    while not stop.wait(2):
        with lock:
            for x in extra:
                x.heartbeat()


def main():
    url, member = sys.argv[1], sys.argv[2]
    c = coordinator(url, member)
    extra = []
    extra_lock = threading.Lock()
    stop = threading.Event()
    beats = threading.Thread(target=keep_alive, args=(extra, extra_lock, stop), daemon=True)
    beats.start()
    pools = {}
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        try:
            if op == "quit":
                break
            elif op == "create":
                try:
                    c.create_group(req["group"].encode()).get()
                except coordination.GroupAlreadyExist:
                    pass
                resp = {"ok": True}
            elif op == "populate":
                g = req["group"].encode()
                for i in range(req["n"]):
                    x = coordinator(url, "%s-p%d" % (member, i))
                    x.join_group(g, capabilities=b"").get()
                    with extra_lock:
                        extra.append(x)
                resp = {"ok": True}
            elif op == "join":
                g = req["group"].encode()
                ns = []
                for _ in range(req["n"]):
                    t = time.perf_counter_ns()
                    c.join_group(g, capabilities=b"zone=a").get()
                    ns.append(time.perf_counter_ns() - t)
                    c.leave_group(g).get()
                resp = {"ns": ns}
            elif op == "members":
                g = req["group"].encode()

                def members():
                    ms = c.get_members(g).get()
                    if len(ms) < req["want"]:
                        raise RuntimeError("%d members, want %d" % (len(ms), req["want"]))
                resp = {"ns": timed(req["n"], members)}
            elif op == "heartbeat":
                resp = {"ns": timed(req["n"], c.heartbeat)}
            elif op == "lock":
                lk = c.get_lock(req["name"].encode())

                def lock():
                    if not lk.acquire(blocking=False):
                        raise RuntimeError("lock held")
                    lk.release()
                resp = {"ns": timed(req["n"], lock)}
            elif op == "throughput":
                resp = throughput(url, member, req, pools)
            else:
                resp = {"error": "unknown op %r" % op}
        except Exception as e:  # reported, not raised: the harness decides
            resp = {"error": "%s: %s" % (type(e).__name__, e)}
        print(json.dumps(resp), flush=True)
    stop.set()
    beats.join()
    for x in extra:
        x.stop()
    for cs in pools.values():
        for x in cs:
            x.stop()
    c.stop()


def throughput(url, member, req, pools):
    n = req["clients"]
    key = (req["name"], n)
    if key not in pools:  # kept for the next round of the same row
        pools[key] = [coordinator(url, "%s-t%d-%d" % (member, n, i)) for i in range(n)]
    cs = pools[key]
    counts = [0] * n
    errors = []
    start = threading.Barrier(n + 1)
    deadline = [0.0]

    def worker(i):
        lk = cs[i].get_lock(("%s-%d" % (req["name"], i)).encode())
        start.wait()
        k = 0
        try:
            while time.monotonic() < deadline[0]:
                if lk.acquire(blocking=False):
                    lk.release()
                    k += 1
        except Exception as e:
            errors.append("%s: %s" % (type(e).__name__, e))
        counts[i] = k

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    deadline[0] = time.monotonic() + req["seconds"]
    t0 = time.monotonic()
    start.wait()
    for t in ts:
        t.join()
    elapsed = time.monotonic() - t0
    if errors:
        return {"error": errors[0]}
    return {"ops": sum(counts), "seconds": elapsed}


if __name__ == "__main__":
    main()
