"""Redis workload of the apps.redis test (standard library only).

    redis_client.py PORT load      write, read back, delete, reload, fork
    redis_client.py PORT memory    INFO memory and the MEMORY commands
    redis_client.py PORT purge     FLUSHALL, MEMORY PURGE: memory must drop

Strings of 1 byte to 1.5 MiB, hashes, lists, sets and sorted sets, from a
seeded generator, so every value read back is compared with what was
written.  Exits non-zero with a "FAIL:" line on the first mismatch.
"""
import random
import socket
import sys
import time


class Error(Exception):
    pass


class Redis:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.sock.makefile("rb", buffering=1 << 20)

    @staticmethod
    def encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, int):
                a = str(a).encode()
            elif isinstance(a, str):
                a = a.encode()
            out.append(b"$%d\r\n" % len(a))
            out.append(a)
            out.append(b"\r\n")
        return b"".join(out)

    def read(self):
        line = self.f.readline()
        if not line.endswith(b"\r\n"):
            raise Error("connection closed by the server")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return Error(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            if len(data) != n + 2:
                raise Error("short bulk reply")
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise Error("bad reply line %r" % line[:80])

    def call(self, *args):
        self.sock.sendall(self.encode(args))
        r = self.read()
        if isinstance(r, Error):
            raise r
        return r

    def pipeline(self, commands, chunk=500):
        """Send commands in pipelined chunks; return all replies."""
        replies = []
        for i in range(0, len(commands), chunk):
            part = commands[i:i + chunk]
            self.sock.sendall(b"".join(self.encode(c) for c in part))
            replies.extend(self.read() for _ in part)
        for c, r in zip(commands, replies):
            if isinstance(r, Error):
                raise Error("%s: %s" % (c[0], r))
        return replies

    def info(self, section):
        text = self.call("INFO", section).decode()
        out = {}
        for line in text.splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                out[k] = v
        return out


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def note(msg):
    print("-- " + msg, flush=True)


class Data:
    """The expected contents of the database, from a seeded generator."""

    def __init__(self, seed=20240501):
        rng = random.Random(seed)
        self.base = rng.randbytes(4 << 20)
        self.strings = {}
        for i in range(20000):
            r = rng.random()
            if r < 0.70:
                size = rng.randint(1, 100)
            elif r < 0.96:
                size = rng.randint(100, 4000)
            elif r < 0.999:
                size = rng.randint(4000, 64000)
            else:
                size = rng.randint(64000, 1500000)
            off = rng.randrange(len(self.base) - size)
            self.strings["str:%d" % i] = self.base[off:off + size]
        self.hashes = {}
        for i in range(600):
            n = 300 if i % 50 == 0 else rng.randint(1, 40)
            self.hashes["hash:%d" % i] = {
                b"f%d" % j: self.base[(i * 977 + j * 131) % 100000:][:rng.randint(0, 200)]
                for j in range(n)}
        self.lists = {}
        for i in range(400):
            n = 3000 if i % 40 == 0 else rng.randint(1, 120)
            self.lists["list:%d" % i] = [b"e%d-%d" % (i, j) * rng.randint(1, 8) for j in range(n)]
        self.sets = {}
        for i in range(400):
            if i % 2:
                members = {str(rng.randrange(10**6)).encode() for _ in range(rng.randint(1, 300))}
            else:
                members = {b"m%x" % rng.getrandbits(64) for _ in range(rng.randint(1, 300))}
            self.sets["set:%d" % i] = members
        self.zsets = {}
        for i in range(300):
            self.zsets["zset:%d" % i] = {b"z%d-%d" % (i, j): float(rng.randint(-10**6, 10**6)) / 8
                                         for j in range(rng.randint(1, 400))}
        self.counters = {"ctr:%d" % i: rng.randint(-1000, 1000) for i in range(500)}

    def total_bytes(self):
        return sum(len(v) for v in self.strings.values())

    def count(self):
        return (len(self.strings) + len(self.hashes) + len(self.lists) + len(self.sets) +
                len(self.zsets) + len(self.counters))


def write(r, d):
    cmds = [("SET", k, v) for k, v in d.strings.items()]
    r.pipeline(cmds)
    cmds = []
    for k, h in d.hashes.items():
        flat = []
        for f, v in h.items():
            flat += [f, v]
        cmds.append(("HSET", k, *flat))
    for k, items in d.lists.items():
        for j in range(0, len(items), 200):
            cmds.append(("RPUSH", k, *items[j:j + 200]))
    for k, s in d.sets.items():
        cmds.append(("SADD", k, *sorted(s)))
    for k, z in d.zsets.items():
        flat = []
        for m, sc in z.items():
            flat += [repr(sc), m]
        cmds.append(("ZADD", k, *flat))
    for k, v in d.counters.items():
        cmds += [("SET", k, 0), ("INCRBY", k, v)]
    r.pipeline(cmds, chunk=100)
    # Grow strings in place: APPEND (sds growth, realloc) and SETRANGE.
    cmds = []
    for i in range(0, len(d.strings), 7):
        k = "str:%d" % i
        extra = d.base[i:i + 50 + i % 3000]
        cmds.append(("APPEND", k, extra))
        d.strings[k] += extra
    for i in range(3, len(d.strings), 11):
        k = "str:%d" % i
        v = d.strings[k]
        at = len(v) + i % 100
        cmds.append(("SETRANGE", k, at, b"tail"))
        d.strings[k] = v + b"\0" * (at - len(v)) + b"tail"
    r.pipeline(cmds)


def verify(r, d, label):
    t0 = time.time()
    keys = list(d.strings)
    got = r.pipeline([("GET", k) for k in keys], chunk=1000)
    for k, v in zip(keys, got):
        if v != d.strings[k]:
            fail("%s: GET %s: %s bytes, expected %d" % (label, k, "no" if v is None else len(v),
                                                         len(d.strings[k])))
    keys = list(d.hashes)
    for k, v in zip(keys, r.pipeline([("HGETALL", k) for k in keys], chunk=100)):
        if dict(zip(v[0::2], v[1::2])) != d.hashes[k]:
            fail("%s: HGETALL %s differs" % (label, k))
    keys = list(d.lists)
    for k, v in zip(keys, r.pipeline([("LRANGE", k, 0, -1) for k in keys], chunk=100)):
        if v != d.lists[k]:
            fail("%s: LRANGE %s differs" % (label, k))
    keys = list(d.sets)
    for k, v in zip(keys, r.pipeline([("SMEMBERS", k) for k in keys], chunk=100)):
        if set(v) != d.sets[k]:
            fail("%s: SMEMBERS %s differs" % (label, k))
    keys = list(d.zsets)
    for k, v in zip(keys, r.pipeline([("ZRANGE", k, 0, -1, "WITHSCORES") for k in keys], chunk=100)):
        want = sorted(d.zsets[k].items(), key=lambda kv: (kv[1], kv[0]))
        have = [(m, float(s)) for m, s in zip(v[0::2], v[1::2])]
        if have != want:
            fail("%s: ZRANGE %s differs" % (label, k))
    keys = list(d.counters)
    for k, v in zip(keys, r.pipeline([("GET", k) for k in keys])):
        if int(v) != d.counters[k]:
            fail("%s: counter %s is %s, expected %d" % (label, k, v, d.counters[k]))
    size = r.call("DBSIZE")
    if size != d.count():
        fail("%s: DBSIZE %d, expected %d" % (label, size, d.count()))
    note("%s: %d keys verified (%.1f MB of strings) in %.1f s" %
         (label, size, d.total_bytes() / 1e6, time.time() - t0))


def delete_some(r, d):
    """UNLINK every third key of each kind (big values are freed by the
    lazy-free thread: frees from another thread than the allocating one)."""
    gone = []
    for table in (d.strings, d.hashes, d.lists, d.sets, d.zsets):
        for k in list(table)[::3]:
            gone.append(k)
            del table[k]
    r.pipeline([("UNLINK", k) for k in gone])
    if any(r.pipeline([("EXISTS", k) for k in gone], chunk=1000)):
        fail("a deleted key still exists")
    return len(gone)


def wait_for(r, what, cond, secs=60):
    for _ in range(secs * 10):
        if cond():
            return
        time.sleep(0.1)
    fail("timed out waiting for %s" % what)


def load(port):
    r = Redis(port)
    d = Data()
    t0 = time.time()
    write(r, d)
    note("wrote %d keys, %.1f MB of strings, in %.1f s" % (d.count(), d.total_bytes() / 1e6,
                                                              time.time() - t0))
    verify(r, d, "after writing")
    n = delete_some(r, d)
    note("unlinked %d keys" % n)
    verify(r, d, "after UNLINK")
    # DEBUG RELOAD: save an RDB, empty the database, load it back.
    if r.call("DEBUG", "RELOAD") != "OK":
        fail("DEBUG RELOAD did not answer OK")
    verify(r, d, "after DEBUG RELOAD")
    # BGSAVE: a forked child (brisk's fork handlers) writes the RDB while
    # the parent takes writes.
    r.call("BGSAVE")
    extra = {("post:%d" % i): d.base[i * 100:i * 100 + 1000 + i] for i in range(500)}
    r.pipeline([("SET", k, v) for k, v in extra.items()])
    d.strings.update(extra)
    wait_for(r, "BGSAVE", lambda: r.info("persistence")["rdb_bgsave_in_progress"] == "0")
    p = r.info("persistence")
    if p["rdb_last_bgsave_status"] != "ok":
        fail("BGSAVE failed: %s" % p)
    note("BGSAVE in a forked child: ok (%s s)" % p["rdb_last_bgsave_time_sec"])
    verify(r, d, "after BGSAVE")
    largest = max(d.strings, key=lambda k: len(d.strings[k]))
    with open("expected.txt", "w") as f:
        f.write("%d %d %s\n" % (d.total_bytes(), d.count(), largest))


def memory(port):
    r = Redis(port)
    with open("expected.txt") as f:
        data_bytes, nkeys, big = f.read().split()
    data_bytes, nkeys = int(data_bytes), int(nkeys)
    if r.call("DBSIZE") != nkeys:
        fail("DBSIZE %d, expected %d" % (r.call("DBSIZE"), nkeys))
    m = r.info("memory")
    fields = ["used_memory", "used_memory_rss", "allocator_allocated", "allocator_active",
              "allocator_resident", "mem_fragmentation_ratio", "allocator_frag_ratio",
              "mem_allocator"]
    note("INFO memory: " + ", ".join("%s=%s" % (k, m.get(k)) for k in fields))
    used = int(m["used_memory"])
    rss = int(m["used_memory_rss"])
    alloc = int(m.get("allocator_allocated", 0))
    active = int(m.get("allocator_active", 0))
    resident = int(m.get("allocator_resident", 0))
    if not data_bytes <= used <= 3 * data_bytes + (64 << 20):
        fail("used_memory %d is implausible for %d bytes of strings" % (used, data_bytes))
    if rss < used // 2:
        fail("used_memory_rss %d is less than half of used_memory %d" % (rss, used))
    # allocator_* come from mallctl("stats.*"): brisk's statistics when brisk
    # answers mallctl (0 would mean jemalloc answered for an empty heap).
    if not 0.8 * used <= alloc <= 2 * used + (64 << 20):
        fail("allocator_allocated %d is implausible (used_memory %d)" % (alloc, used))
    if not alloc <= active <= resident:
        fail("expected allocator_allocated <= allocator_active <= allocator_resident")
    stats = r.call("MEMORY", "MALLOC-STATS")
    if b"brisk statistics" not in stats:
        fail("MEMORY MALLOC-STATS is not brisk's malloc_stats_print: %r" % stats[:200])
    note("MEMORY MALLOC-STATS: brisk's statistics (%d bytes)" % len(stats))
    usage = r.call("MEMORY", "USAGE", big)
    strlen = r.call("STRLEN", big)
    if usage < strlen:
        fail("MEMORY USAGE %s = %d, less than its length %d" % (big, usage, strlen))
    note("MEMORY USAGE of the largest string (%d bytes): %d" % (strlen, usage))
    if r.call("MEMORY", "PURGE") != "OK":
        fail("MEMORY PURGE failed")
    doctor = r.call("MEMORY", "DOCTOR").decode()
    findings = [l.strip() for l in doctor.splitlines() if l.strip().startswith("*")]
    note("MEMORY DOCTOR: " + ("; ".join(f[:160] for f in findings) if findings else doctor.splitlines()[0][:160]))


def purge(port):
    r = Redis(port)
    before = r.info("memory")
    r.call("FLUSHALL", "SYNC")
    if r.call("MEMORY", "PURGE") != "OK":
        fail("MEMORY PURGE failed")
    time.sleep(0.3)
    after = r.info("memory")
    keys = ("used_memory", "used_memory_rss", "allocator_allocated", "allocator_active",
            "allocator_resident")
    note("after FLUSHALL + MEMORY PURGE: " + ", ".join(
        "%s %s -> %s" % (k, before[k], after[k]) for k in keys))
    if int(after["used_memory"]) > 8 << 20:
        fail("used_memory still %s after FLUSHALL" % after["used_memory"])
    if int(after["allocator_allocated"]) > 16 << 20:
        fail("allocator_allocated still %s after FLUSHALL" % after["allocator_allocated"])
    drop = int(before["allocator_resident"]) - int(after["allocator_resident"])
    if drop < (int(before["allocator_allocated"]) - int(after["allocator_allocated"])) // 2:
        fail("allocator_resident dropped by only %d bytes after FLUSHALL + MEMORY PURGE" % drop)
    rss_drop = int(before["used_memory_rss"]) - int(after["used_memory_rss"])
    if rss_drop < (int(before["used_memory"]) - int(after["used_memory"])) // 2:
        fail("RSS dropped by only %d bytes after FLUSHALL + MEMORY PURGE" % rss_drop)


def main():
    port, what = int(sys.argv[1]), sys.argv[2]
    {"load": load, "memory": memory, "purge": purge}[what](port)


if __name__ == "__main__":
    main()
