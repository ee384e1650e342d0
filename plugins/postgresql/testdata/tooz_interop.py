"""tooz's PostgreSQL driver against muster's locks (see interop_test.go).

argv: the database URL (tooz's form). Holds the tooz lock b"tooz-held"
until stdin closes, and tries b"muster-held", which muster holds.
"""
import sys

from tooz import coordination

url = sys.argv[1]
coord = coordination.get_coordinator(url, b"py-1")
coord.start()
held = coord.get_lock(b"tooz-held")
if not held.acquire(blocking=False):
    print("FAIL: tooz could not take tooz-held", flush=True)
    sys.exit(1)
print("locked", flush=True)
other = coord.get_lock(b"muster-held")
got = other.acquire(blocking=False)
print("tooz took muster-held while muster held it:", got, flush=True)
if got:
    other.release()
sys.stdin.read()
held.release()
coord.stop()
print("OK", flush=True)
