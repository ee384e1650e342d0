"""tooz side of the ZooKeeper interop test.

usage: tooz_interop.py URL GROUP

Joins GROUP as member "tooz-1" with capabilities, prints "joined", then
reads commands from stdin, one a line, and answers one JSON line each:
  members        -> {"members": {id: capabilities}}
  trylock NAME   -> {"acquired": bool}   (non-blocking, kept if taken)
  unlock NAME    -> {"released": bool}
  quit
"""
import json
import sys

from tooz import coordination


def plain(v):
    if isinstance(v, bytes):
        return {"bytes": v.hex()}
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v


def main():
    url, group = sys.argv[1], sys.argv[2]
    c = coordination.get_coordinator(url, b"tooz-1")
    c.start()
    try:
        c.create_group(group.encode()).get()
    except coordination.GroupAlreadyExist:
        pass
    c.join_group(group.encode(), {"lang": "python", "slots": 3}).get()
    print("joined", flush=True)
    locks = {}
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "quit":
            break
        if cmd[0] == "members":
            out = {}
            for m in c.get_members(group.encode()).get():
                caps = c.get_member_capabilities(group.encode(), m).get()
                out[m.decode()] = plain(caps)
            print(json.dumps({"members": out}), flush=True)
        elif cmd[0] == "trylock":
            lk = locks.setdefault(cmd[1], c.get_lock(cmd[1].encode()))
            print(json.dumps({"acquired": bool(lk.acquire(blocking=False))}), flush=True)
        elif cmd[0] == "unlock":
            lk = locks.get(cmd[1])
            print(json.dumps({"released": bool(lk and lk.release())}), flush=True)
    c.stop()


if __name__ == "__main__":
    main()
