"""memcached workload of the apps.memcached test (standard library only).

    memcached_client.py PORT [CONNECTIONS [FIRST_SEED]]

CONNECTIONS threads (default 8), each with its own connection and key
space, store values of 1 byte to 400 KiB from a seeded generator, read
them back with single and multi-key gets and compare, then exercise
append/prepend, incr/decr, cas, touch and delete; finally the server's
"stats" must count exactly the items added (key spaces are per seed: a
second run takes other seeds).  Exits non-zero with a "FAIL:"
line on the first mismatch.
"""
import random
import socket
import sys
import threading
import time

KEYS_PER_CONN = 2500


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.sock.makefile("rb", buffering=1 << 20)

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        line = self.f.readline()
        if not line.endswith(b"\r\n"):
            raise RuntimeError("connection closed by the server")
        return line[:-2]

    def values(self):
        """Read VALUE blocks up to END: {key: (flags, data, cas)}."""
        out = {}
        while True:
            line = self.line()
            if line == b"END":
                return out
            parts = line.split()
            if parts[0] != b"VALUE":
                raise RuntimeError("unexpected reply %r" % line[:80])
            n = int(parts[3])
            data = self.f.read(n + 2)
            out[parts[1]] = (int(parts[2]), data[:-2], int(parts[4]) if len(parts) > 4 else None)


def make_values(seed):
    rng = random.Random(seed)
    base = rng.randbytes(1 << 20)
    vals = {}
    for i in range(KEYS_PER_CONN):
        r = rng.random()
        if r < 0.75:
            size = rng.randint(1, 300)
        elif r < 0.97:
            size = rng.randint(300, 8000)
        elif r < 0.995:
            size = rng.randint(8000, 100000)
        else:
            size = rng.randint(100000, 400000)
        off = rng.randrange(len(base) - size)
        vals[b"c%d:k%d" % (seed, i)] = (rng.randrange(1 << 16), base[off:off + size])
    return vals


errors = []


def worker(port, seed, result):
    try:
        result[seed] = run(port, seed)
    except Exception as e:  # reported by main
        errors.append("connection %d: %s" % (seed, e))


def run(port, seed):
    c = Conn(port)
    vals = make_values(seed)
    keys = list(vals)
    # set, in pipelined batches of 100
    for i in range(0, len(keys), 100):
        batch = keys[i:i + 100]
        c.send(b"".join(b"set %s %d 0 %d\r\n%s\r\n" % (k, vals[k][0], len(vals[k][1]), vals[k][1])
                        for k in batch))
        for k in batch:
            r = c.line()
            if r != b"STORED":
                raise RuntimeError("set %s: %r" % (k, r))
    # single gets
    for i in range(0, len(keys), 100):
        batch = keys[i:i + 100]
        c.send(b"".join(b"get %s\r\n" % k for k in batch))
        for k in batch:
            got = c.values()
            if got.get(k, (None, None))[:2] != vals[k]:
                raise RuntimeError("get %s: wrong value" % k)
    # multi-gets of 50 keys, with cas values
    cas = {}
    for i in range(0, len(keys), 50):
        batch = keys[i:i + 50]
        c.send(b"gets " + b" ".join(batch) + b"\r\n")
        got = c.values()
        for k in batch:
            if got.get(k, (None, None))[:2] != vals[k]:
                raise RuntimeError("gets %s: wrong value" % k)
            cas[k] = got[k][2]
    # append / prepend (grow items: new allocations in the slabs)
    for k in keys[0::5]:
        flags, v = vals[k]
        c.send(b"append %s 0 0 7\r\n+append\r\nprepend %s 0 0 8\r\nprepend+\r\n" % (k, k))
        if c.line() != b"STORED" or c.line() != b"STORED":
            raise RuntimeError("append/prepend %s" % k)
        vals[k] = (flags, b"prepend+" + v + b"+append")
    # cas: the first succeeds, the second (stale cas) must fail
    for k in keys[1::9]:
        flags, v = vals[k]
        if k in cas and keys.index(k) % 5 != 0:
            new = v[::-1]
            c.send(b"cas %s %d 0 %d %d\r\n%s\r\n" % (k, flags, len(new), cas[k], new))
            if c.line() != b"STORED":
                raise RuntimeError("cas %s did not store" % k)
            c.send(b"cas %s %d 0 1 %d\r\nx\r\n" % (k, flags, cas[k]))
            if c.line() != b"EXISTS":
                raise RuntimeError("stale cas %s was not refused" % k)
            vals[k] = (flags, new)
    # counters
    for j in range(200):
        k = b"c%d:ctr%d" % (seed, j)
        c.send(b"set %s 0 0 4\r\n1000\r\nincr %s %d\r\ndecr %s 7\r\n" % (k, k, j * 13, k))
        if c.line() != b"STORED":
            raise RuntimeError("set counter")
        if int(c.line()) != 1000 + j * 13 or int(c.line()) != 993 + j * 13:
            raise RuntimeError("incr/decr %s" % k)
        vals[k] = (0, b"%d" % (993 + j * 13))
    # touch and delete
    for k in keys[2::4]:
        c.send(b"touch %s 3600\r\n" % k)
        if c.line() != b"TOUCHED":
            raise RuntimeError("touch %s" % k)
    deleted = keys[3::7]
    for i in range(0, len(deleted), 100):
        batch = deleted[i:i + 100]
        c.send(b"".join(b"delete %s\r\n" % k for k in batch))
        for k in batch:
            if c.line() != b"DELETED":
                raise RuntimeError("delete %s" % k)
            del vals[k]
    # read everything back, and the deleted keys must be gone
    all_keys = list(vals)
    for i in range(0, len(all_keys), 50):
        batch = all_keys[i:i + 50]
        c.send(b"get " + b" ".join(batch) + b"\r\n")
        got = c.values()
        for k in batch:
            have = got.get(k, (None, None))[:2]
            if b":ctr" in k and have[1] is not None:
                # decr may leave the number space-padded (the protocol says so)
                have = (have[0], have[1].rstrip(b" "))
            if have != vals[k]:
                raise RuntimeError("final get %s: %s" % (k, "missing" if k not in got else "wrong value"))
    for i in range(0, len(deleted), 50):
        c.send(b"get " + b" ".join(deleted[i:i + 50]) + b"\r\n")
        if c.values():
            raise RuntimeError("a deleted key is still there")
    return len(vals), sum(len(v[1]) for v in vals.values())


def stats(port):
    c = Conn(port)
    c.send(b"stats\r\n")
    out = {}
    while True:
        line = c.line()
        if line == b"END":
            return out
        _, k, v = line.decode().split(" ", 2)
        out[k] = v


def main():
    port = int(sys.argv[1])
    nconn = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    first = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    t0 = time.time()
    before = int(stats(port)["curr_items"])
    result = {}
    threads = [threading.Thread(target=worker, args=(port, s, result))
               for s in range(first, first + nconn)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors or len(result) != nconn:
        for e in errors:
            print("FAIL: " + e, file=sys.stderr)
        sys.exit(1)
    items = sum(n for n, _ in result.values())
    data = sum(b for _, b in result.values())
    st = stats(port)
    print("-- %d connections: %d items (%.1f MB) stored and verified in %.1f s" %
          (nconn, items, data / 1e6, time.time() - t0))
    print("-- stats: curr_items %s, curr_connections %s, threads %s, evictions %s, bytes %s, "
          "get_hits %s, get_misses %s, cmd_set %s" %
          (st["curr_items"], st["curr_connections"], st["threads"], st["evictions"], st["bytes"],
           st["get_hits"], st["get_misses"], st["cmd_set"]))
    if int(st["curr_items"]) - before != items:
        print("FAIL: the server counts %s items, expected %d + %d" % (st["curr_items"], before, items),
              file=sys.stderr)
        sys.exit(1)
    if int(st["evictions"]) != 0:
        print("FAIL: %s evictions (the test sizes memory to avoid them)" % st["evictions"], file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
