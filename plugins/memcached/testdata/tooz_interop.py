"""tooz side of the memcached interop test.

argv: URL GROUP TOOZ_MEMBER MUSTER_MEMBER LOCK
Joins GROUP as TOOZ_MEMBER with capabilities {"lang": "python"}, waits
until tooz lists MUSTER_MEMBER, prints its capabilities as JSON, checks
that LOCK (held by muster) cannot be taken, then heartbeats until stdin
closes.
"""
import json
import sys
import threading
import time

from tooz import coordination

url, group, me, other, lock = sys.argv[1:6]
c = coordination.get_coordinator(url, me.encode())
c.start()
try:
    c.create_group(group.encode()).get()
except coordination.GroupAlreadyExist:
    pass
c.join_group(group.encode(), capabilities={"lang": "python"}).get()

deadline = time.time() + 20
while True:
    members = c.get_members(group.encode()).get()
    if other.encode() in members:
        break
    if time.time() > deadline:
        print("muster member not listed: %r" % members, flush=True)
        sys.exit(1)
    c.heartbeat()
    time.sleep(0.2)
caps = c.get_member_capabilities(group.encode(), other.encode()).get()
l = c.get_lock(lock.encode())
got = l.acquire(blocking=False)
print(json.dumps({"caps": caps, "lock_taken": bool(got)}), flush=True)

stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
while not stop.is_set():
    c.heartbeat()
    time.sleep(0.5)
c.leave_group(group.encode()).get()
c.stop()
