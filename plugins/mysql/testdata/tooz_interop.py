"""tooz side of plugins/mysql's interop test: argv = URL, lock name.

Holds tooz's MySQL lock (GET_LOCK(name, 0)) until stdin closes, then
releases it.
"""
import sys
from tooz import coordination

url, name = sys.argv[1], sys.argv[2]
c = coordination.get_coordinator(url, b"py-1")
c.start()
lock = c.get_lock(name)
if not lock.acquire(blocking=False):
    print("FAIL tooz could not take the free lock", flush=True)
    sys.exit(1)
print("locked", flush=True)
sys.stdin.read()  # until the Go side has tried the lock
lock.release()
c.stop()
print("OK", flush=True)
