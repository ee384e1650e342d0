"""tooz side of plugins/redis's interop test: argv = URL, group."""
import sys
from tooz import coordination

url, group = sys.argv[1], sys.argv[2].encode()
c = coordination.get_coordinator(url, b"py-1")
c.start()  # beats once (30 s TTL): enough for this test
members = c.get_members(group).get()
if b"go-1" not in members:
    print("FAIL tooz does not list go-1:", members, flush=True)
    sys.exit(1)
caps = c.get_member_capabilities(group, b"go-1").get()
if caps != {"zone": "a"} and caps != {b"zone": b"a"}:
    print("FAIL capabilities of go-1:", caps, flush=True)
    sys.exit(1)
lock = c.get_lock("shared")  # a str name: tooz formats bytes as "b'...'"
if lock.acquire(blocking=False):
    print("FAIL tooz took the lock muster holds", flush=True)
    sys.exit(1)
c.join_group(group, b"").get()
print("joined", flush=True)
sys.stdin.read()  # until the Go side has listed us
c.leave_group(group).get()
c.stop()
print("OK", flush=True)
