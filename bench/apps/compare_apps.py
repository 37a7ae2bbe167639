#!/usr/bin/env python3
"""Compare brisk with glibc, jemalloc, tcmalloc and mimalloc inside real servers.

For each server (Redis, PostgreSQL, memcached) and each allocator, starts the
server on 127.0.0.1 (a free port, a temporary directory) with the allocator
preloaded (glibc: no preload), applies the same load, checks that the load
succeeded and that the allocator's library is mapped in the server, records
the throughput and the server's memory, and stops it.  Runs are interleaved
run by run (repetition 1 runs every server under every allocator, the
allocator order rotated from one server and repetition to the next, then
repetition 2, ...).  Prints a markdown report with medians, ratios (Redis
against jemalloc, its own allocator; PostgreSQL and memcached against glibc)
and brisk's verdicts.

    bench/apps/compare_apps.py                 3 repetitions (about 3.5 minutes on 2 cores)
    bench/apps/compare_apps.py --quick         3 repetitions, smaller loads (about 2 minutes)
    bench/apps/compare_apps.py --smoke         1 repetition, tiny loads (under 90 s): checks
                                               the harness and its outputs

    --build-dir DIR     where libbrisk.so is (default build/release)
    --json PATH         write every run and the summaries as JSON
    --chart PATH        PNG chart (gnuplot): throughput and peak RSS ratios per server
    --report PATH       also write the markdown report to PATH

The loads:
  Redis       redis-benchmark (pipelined, 32 clients) in passes:
              a mix of 12 commands with 64-byte values, then SET/GET with 1 KiB
              values over the same keys, then SET with 16-byte values; a
              sentinel value read back, DBSIZE, no error replies (INFO stats)
  PostgreSQL  pgbench -i -s S, then pgbench -c 8 -j 2 -t N (a fixed number of
              transactions); every transaction done, none failed, row counts,
              balance sums equal history's deltas
  memcached   memcached -t 4; memcaslap (libmemcached-tools) for a fixed number
              of operations, mixed value sizes, 1% of gets verified; then a
              read-back check of our own and the server's stats
Every load is a fixed amount of work, so that the servers' memory is compared
on the same data.

Standard library only.  Progress goes to stderr, the report to stdout.
Exit status: 0, 1 when a run failed (the report lists it; with --smoke also
when an output is missing), 2 on a usage or set-up error.
"""

import argparse
import contextlib
import csv
import datetime
import io
import json
import math
import os
import platform
import random
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
sys.dont_write_bytecode = True          # importing compare must not write bench/__pycache__
sys.path.insert(0, BENCH)
import compare as C  # noqa: E402  (bench/compare.py: helpers for the report)

REPO = C.REPO
LIBDIR = C.LIBDIR
ALLOCATORS = C.ALLOCATOR_ORDER          # brisk, glibc, jemalloc, tcmalloc, mimalloc
SERVERS = ["redis", "postgres", "memcached"]
SERVER_TITLE = {"redis": "Redis", "postgres": "PostgreSQL", "memcached": "memcached"}
# The reference of each server's ratios and of brisk's verdict.  Redis is
# built with (and linked against) jemalloc; the others use the libc malloc.
BASELINE = {"redis": "jemalloc", "postgres": "glibc", "memcached": "glibc"}
UNIT = {"redis": "requests/s", "postgres": "TPS", "memcached": "ops/s"}
# A run during which other processes used more than this share of the CPUs
# is flagged in the report.
OTHER_CPU_WARN = 0.10

# Loads per mode.
MODES = {
    "default": {
        "reps": 3,
        # redis-benchmark passes: (requests per test, -d value size, -t tests)
        "redis_passes": [(60000, 64, "set,get,incr,lpush,rpop,sadd,hset,spop,zadd,zpopmin,"
                                      "lrange_100,mset"),
                         (60000, 1024, "set,get"),
                         (60000, 16, "set")],
        "redis_keyspace": 60000,
        "pg_scale": 5, "pg_clients": 8, "pg_tx_per_client": 1500,
        "mc_ops": 200000, "mc_concurrency": 16, "mc_window": "2k",
    },
    "quick": {
        "reps": 3,
        "redis_passes": [(25000, 64, "set,get,incr,lpush,rpop,sadd,hset,spop,zadd,zpopmin,"
                                     "lrange_100,mset"),
                         (25000, 1024, "set,get"),
                         (25000, 16, "set")],
        "redis_keyspace": 25000,
        "pg_scale": 2, "pg_clients": 8, "pg_tx_per_client": 600,
        "mc_ops": 80000, "mc_concurrency": 16, "mc_window": "1k",
    },
    "smoke": {
        "reps": 1,
        "redis_passes": [(2000, 64, "set,get,incr,lpush,rpop,sadd,hset,spop,zadd,zpopmin,"
                                    "lrange_100,mset"),
                         (2000, 1024, "set,get"),
                         (2000, 16, "set")],
        "redis_keyspace": 2000,
        "pg_scale": 1, "pg_clients": 4, "pg_tx_per_client": 200,
        "mc_ops": 20000, "mc_concurrency": 8, "mc_window": "1k",
    },
}

# memcaslap's key, value and command distribution (value sizes of 16 B to
# 64 KiB; 10% sets, 90% gets).
MEMCASLAP_CONFIG = """\
key
32 64 1
value
16 1024 0.7
1025 8192 0.25
8193 65536 0.05
cmd
0 0.1
1 0.9
"""

# What a server's log must not contain (as tests/apps/lib.sh check_log).
LOG_ALLOCATOR_ERROR = re.compile(r"(^|[^a-z_])brisk: ", re.M)
LOG_CRASH = re.compile(r"crashed by signal|terminated by signal|segmentation fault|stack trace|"
                       r"double free|corrupted|assertion", re.I)

log = C.log
fmt = C.fmt
mib = C.mib
md_table = C.md_table


class Failure(Exception):
    """A run failed: its load, a check or the server."""


class Interrupted(BaseException):
    """SIGTERM, SIGINT or SIGHUP: stop, cleaning up on the way out."""


def on_signal(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)


# ---------------------------------------------------------------------------
# Processes and /proc


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid):
    """VmHWM, VmRSS, RssAnon, RssFile, RssShmem of a process in bytes ({} if gone)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem", "Threads"):
                    v = rest.split()[0]
                    out[key] = int(v) * (1 if key == "Threads" else 1024)
    except (OSError, ValueError, IndexError):
        return {}
    return out


def children(pid):
    """The child processes of pid (/proc/PID/task/*/children)."""
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/children") as f:
                out += [int(x) for x in f.read().split()]
        except (OSError, ValueError):
            pass
    return out


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        for c in children(todo.pop()):
            out.append(c)
            todo.append(c)
    return out


def running(pid):
    """Alive and not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def mapped_files(pid):
    """The files mapped in a process (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            text = f.read()
    except OSError:
        return None
    files = set()
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/"):
            files.add(parts[5].replace(" (deleted)", ""))
    return files


def wait_gone(pid, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not running(pid):
            return True
        time.sleep(0.05)
    return not running(pid)


def stop_process(proc, seconds=10):
    """TERM, then KILL after `seconds`; reaps a Popen.  Returns the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(seconds)
        except subprocess.TimeoutExpired:
            log(f"compare_apps: process {proc.pid} ignored SIGTERM for {seconds} s: SIGKILL")
            with contextlib.suppress(OSError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
    return proc.returncode


def kill_pid(pid, seconds=10):
    """TERM, then KILL, a process we did not spawn (the postmaster)."""
    if not running(pid):
        return
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGTERM)
    if wait_gone(pid, seconds):
        return
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    wait_gone(pid, 5)


CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_busy_s():
    """(busy, steal): CPU seconds the whole machine spent busy (/proc/stat:
    user, nice, system, irq, softirq; not idle, iowait or steal), and those
    the hypervisor gave to others (steal; 0 where the VM does not report it)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]] + [0] * 8
    except (OSError, ValueError):
        return None, None
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / CLK_TCK, v[7] / CLK_TCK


def own_cpu_s():
    """CPU seconds of this process and its reaped children (clients, servers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def process_tree_cpu_s(pid):
    """utime + stime + cutime + cstime of a process we did not spawn (the
    postmaster: its own time and that of the backends it has reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return sum(int(x) for x in fields[11:15]) / CLK_TCK
    except (OSError, ValueError, IndexError):
        return 0.0


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return f.read().splitlines()[-n:]
    except OSError:
        return []


def run_client(cmd, timeout, what, env=None, cwd=None):
    """Runs a client command; returns (stdout, stderr, wall seconds).  Failure
    on a non-zero exit or a timeout."""
    t0 = time.monotonic()
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout, env=env, cwd=cwd, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise Failure(f"{what}: no answer after {timeout} s") from None
    wall = time.monotonic() - t0
    if r.returncode != 0:
        lines = (r.stdout.strip().splitlines()[-5:] + r.stderr.strip().splitlines()[-8:])
        raise Failure(f"{what} exited with status {r.returncode}: " + " | ".join(lines))
    return r.stdout, r.stderr, wall


def check_log(path, what):
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return
    for rx in (LOG_ALLOCATOR_ERROR, LOG_CRASH):
        m = rx.search(text)
        if m:
            line = text[text.rfind("\n", 0, m.start()) + 1:text.find("\n", m.start())]
            raise Failure(f"{what}'s log reports an allocator error or a crash: {line.strip()}")


def wait_ready(ready, proc_or_pid, log_path, what, timeout=60):
    """Polls ready() every 0.1 s; Failure if the server dies or is not ready."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if ready():
                return
        except (OSError, Failure):
            pass
        pid = proc_or_pid.pid if hasattr(proc_or_pid, "pid") else proc_or_pid
        if hasattr(proc_or_pid, "poll") and proc_or_pid.poll() is not None or not running(pid):
            raise Failure(f"{what} exited before it was ready: " + " | ".join(tail(log_path, 6)))
        time.sleep(0.1)
    raise Failure(f"{what} not ready after {timeout} s")


class Sampler(threading.Thread):
    """Polls /proc for a process and its descendants every `period` seconds:
    per process the highest VmHWM seen and the last VmRSS, the highest sum of
    RssAnon over the tree, and the first sight of every process (new_pid, e.g.
    to read its maps while it lives)."""

    def __init__(self, root, period=0.1, new_pid=None):
        super().__init__(daemon=True)
        self.root, self.period, self.new_pid = root, period, new_pid
        self.hwm = {}            # pid -> max VmHWM seen
        self.names = {}          # pid -> command line
        self.anon_sum_max = 0
        self.samples = 0
        self.errors = []
        self._halt = threading.Event()

    def sample(self):
        pids = [self.root] + descendants(self.root)
        anon = 0
        for pid in pids:
            st = proc_status(pid)
            if not st:
                continue
            if pid not in self.names:
                self.names[pid] = cmdline(pid)
                if self.new_pid:
                    try:
                        self.new_pid(pid)
                    except Failure as e:
                        self.errors.append(str(e))
            self.hwm[pid] = max(self.hwm.get(pid, 0), st.get("VmHWM", 0))
            anon += st.get("RssAnon", 0)
        self.anon_sum_max = max(self.anon_sum_max, anon)
        self.samples += 1

    def run(self):
        while not self._halt.is_set():
            try:
                self.sample()
            except Exception as e:  # noqa: BLE001 (a sampler must not die)
                self.errors.append(f"sampler: {e!r}")
            self._halt.wait(self.period)

    def stop(self):
        self._halt.set()
        self.join(5)


# ---------------------------------------------------------------------------
# The allocator in the server


def check_mapped(pid, alloc, ctx, what):
    """The preloaded library is mapped in the process; with no preload, no
    allocator library is (except what the program is linked against)."""
    files = mapped_files(pid)
    if not files or not running(pid):
        return None     # gone or exiting (a short-lived backend): nothing to prove
    if alloc["lib"]:
        want = os.path.realpath(alloc["lib"])
        # A process that is exiting can show part of its mappings: the kernel
        # writes /proc/PID/maps in pieces, and the exit may tear the address
        # space down between two of them (the low addresses listed, the
        # libraries above them not).  Ask again before calling it a failure.
        for _ in range(5):
            if want in files:
                return want
            time.sleep(0.05)
            files = mapped_files(pid)
            if not files or not running(pid):
                return None
        raise Failure(f"{what} (pid {pid}): {want} is not mapped (/proc/{pid}/maps)")
    others = {os.path.realpath(p) for p in ctx["allocator_libs"]} - ctx.get("linked", set())
    found = sorted(files & others)
    if found:
        raise Failure(f"{what} (pid {pid}) runs without a preload but maps {', '.join(found)}")
    return "no preload"


def linked_allocators(binary, libs):
    """The allocator libraries among a program's dependencies (ldd)."""
    out = C.capture(["ldd", binary]) or ""
    found = set()
    for line in out.splitlines():
        m = re.search(r"=>\s*(/\S+)", line)
        if m:
            real = os.path.realpath(m.group(1))
            if real in {os.path.realpath(p) for p in libs}:
                found.add(real)
    return found


def env_for(alloc, base_env, lib=None):
    env = dict(base_env)
    if alloc["lib"]:
        env["LD_PRELOAD"] = lib or alloc["lib"]
    return env


# ---------------------------------------------------------------------------
# Redis


class Resp:
    """A minimal RESP client."""

    def __init__(self, port, timeout=60):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.f = self.sock.makefile("rb")

    def close(self):
        with contextlib.suppress(OSError):
            self.f.close()
            self.sock.close()

    def cmd(self, *args):
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(parts))
        return self.read()

    def read(self):
        line = self.f.readline()
        if not line.endswith(b"\r\n"):
            raise Failure("Redis closed the connection")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise Failure("Redis error: " + rest.decode(errors="replace"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise Failure(f"unexpected RESP reply {line[:60]!r}")


def redis_info(conn, section):
    text = conn.cmd("INFO", section).decode()
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def run_redis(ctx, alloc, rd, stack):
    p = ctx["programs"]["redis"]
    load = ctx["load"]
    data = os.path.join(rd, "data")
    os.makedirs(data)
    log_path = os.path.join(rd, "redis.log")
    env = env_for(alloc, ctx["base_env"])
    for attempt in range(3):
        port = free_port()
        cmd = [p["server"], "--port", str(port), "--bind", "127.0.0.1", "--dir", data,
               "--save", "", "--appendonly", "no", "--protected-mode", "no",
               "--daemonize", "no"]
        with open(log_path, "w") as lf:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=lf,
                                    stderr=subprocess.STDOUT, env=env)
        stack.callback(stop_process, proc)

        def ready():
            c = Resp(port, timeout=2)
            try:
                return c.cmd("PING") == "PONG"
            finally:
                c.close()
        try:
            wait_ready(ready, proc, log_path, "redis-server")
            break
        except Failure:
            if proc.poll() is not None and "address already in use" in \
                    "\n".join(tail(log_path, 20)).lower() and attempt < 2:
                continue
            raise
    pid = proc.pid
    mapped = check_mapped(pid, alloc, ctx, "redis-server")

    conn = Resp(port)
    stack.callback(conn.close)
    # A sentinel value, read back after the load.
    sentinel = random.Random(7).randbytes(100000)
    conn.cmd("SET", "sentinel", sentinel)

    rps_time, requests, per_test = 0.0, 0, []
    t0 = time.monotonic()
    for n, size, tests in load["redis_passes"]:
        cmd = [p["benchmark"], "-h", "127.0.0.1", "-p", str(port), "--csv", "-n", str(n),
               "-c", "32", "-P", "16", "-r", str(load["redis_keyspace"]),
               "-d", str(size), "-t", tests]
        out, err, _ = run_client(cmd, ctx["timeout"], "redis-benchmark")
        if re.search(r"error|refused", out + err, re.I):
            raise Failure("redis-benchmark reported errors: "
                          + " | ".join((out + err).strip().splitlines()[-4:]))
        rows = [r for r in csv.reader(io.StringIO(out)) if len(r) >= 2 and r[0] != "test"]
        want = len(tests.split(","))
        if len(rows) < want:
            raise Failure(f"redis-benchmark -d {size} reported {len(rows)} of {want} tests: "
                          + " | ".join(out.strip().splitlines()[-4:]))
        for name, rps, *_ in rows:
            try:
                rps = float(rps)
            except ValueError:
                raise Failure(f"redis-benchmark: no number for {name}: {rps!r}") from None
            if rps <= 0:
                raise Failure(f"redis-benchmark: {name} at {rps} requests/s")
            per_test.append({"test": name, "value_bytes": size, "requests": n, "rps": rps})
            rps_time += n / rps
            requests += n
    load_s = time.monotonic() - t0

    # The load succeeded: the sentinel, the key count, no error replies.
    if conn.cmd("GET", "sentinel") != sentinel:
        raise Failure("the sentinel value read back differs")
    dbsize = conn.cmd("DBSIZE")
    # SET alone, n requests on random keys of a keyspace of r: r (1 - e^(-n/r))
    # distinct keys (MSET and INCR add more).
    r = load["redis_keyspace"]
    n_set = sum(n for n, _, tests in load["redis_passes"] if "set" in tests.split(","))
    expected = r * (1 - math.exp(-n_set / r))
    if dbsize < 0.9 * expected:
        raise Failure(f"DBSIZE {dbsize} after the load, expected at least {0.9 * expected:.0f}")
    stats = redis_info(conn, "stats")
    if int(stats.get("total_error_replies", "0")) != 0:
        raise Failure(f"Redis counted {stats['total_error_replies']} error replies")
    processed = int(stats.get("total_commands_processed", "0"))
    if processed < requests:
        raise Failure(f"Redis processed {processed} commands, fewer than the {requests} sent")
    memory = redis_info(conn, "memory")
    st = proc_status(pid)
    mapped = check_mapped(pid, alloc, ctx, "redis-server") or mapped

    # Clean stop.
    with contextlib.suppress(Failure, OSError):
        conn.cmd("SHUTDOWN", "NOSAVE")
    try:
        code = proc.wait(30)
    except subprocess.TimeoutExpired:
        raise Failure("redis-server did not exit after SHUTDOWN") from None
    if code != 0:
        raise Failure(f"redis-server exited with status {code}")
    check_log(log_path, "redis-server")
    return {
        "throughput": requests / rps_time,
        "peak_rss_bytes": st["VmHWM"], "final_rss_bytes": st["VmRSS"],
        "final_anon_bytes": st.get("RssAnon"),
        "load_s": load_s, "requests": requests, "tests": per_test, "dbsize": dbsize,
        "used_memory_bytes": int(memory.get("used_memory", 0)) or None,
        "mem_allocator": memory.get("mem_allocator"),
        "mapped": mapped, "server_pids_checked": 1,
        "memory_note": "VmHWM and VmRSS of redis-server",
    }


# ---------------------------------------------------------------------------
# memcached


class Memcache:
    def __init__(self, port, timeout=60):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.sock.makefile("rb")

    def close(self):
        with contextlib.suppress(OSError):
            self.f.close()
            self.sock.close()

    def line(self):
        line = self.f.readline()
        if not line.endswith(b"\r\n"):
            raise Failure("memcached closed the connection")
        return line[:-2]

    def version(self):
        self.sock.sendall(b"version\r\n")
        return self.line().startswith(b"VERSION")

    def set_many(self, items):
        self.sock.sendall(b"".join(b"set %s 0 0 %d\r\n%s\r\n" % (k, len(v), v)
                                   for k, v in items.items()))
        for k in items:
            reply = self.line()
            if reply != b"STORED":
                raise Failure(f"memcached: set {k.decode()}: {reply[:60]!r}")

    def get_many(self, keys):
        self.sock.sendall(b"get " + b" ".join(keys) + b"\r\n")
        out = {}
        while True:
            line = self.line()
            if line == b"END":
                return out
            parts = line.split()
            if parts[0] != b"VALUE":
                raise Failure(f"memcached: unexpected reply {line[:60]!r}")
            data = self.f.read(int(parts[3]) + 2)
            out[parts[1]] = data[:-2]

    def delete_many(self, keys):
        self.sock.sendall(b"".join(b"delete %s\r\n" % k for k in keys))
        for k in keys:
            reply = self.line()
            if reply != b"DELETED":
                raise Failure(f"memcached: delete {k.decode()}: {reply[:60]!r}")

    def stats(self):
        self.sock.sendall(b"stats\r\n")
        out = {}
        while True:
            line = self.line()
            if line == b"END":
                return out
            parts = line.decode().split()
            if len(parts) >= 3 and parts[0] == "STAT":
                out[parts[1]] = parts[2]


def memcached_verify(port):
    """Stores 400 values of 1 B to 200 KiB, reads them back, deletes them."""
    rng = random.Random(11)
    base = rng.randbytes(1 << 18)
    items = {}
    for i in range(400):
        size = rng.choice([rng.randint(1, 500), rng.randint(500, 10000), rng.randint(1, 200000)])
        off = rng.randrange(len(base) - size)
        items[b"verify:%d" % i] = base[off:off + size]
    c = Memcache(port)
    try:
        for chunk in range(0, 400, 50):
            part = dict(list(items.items())[chunk:chunk + 50])
            c.set_many(part)
        got = {}
        for chunk in range(0, 400, 100):
            got.update(c.get_many(list(items)[chunk:chunk + 100]))
        bad = [k for k in items if got.get(k) != items[k]]
        if bad:
            raise Failure(f"memcached: {len(bad)} of {len(items)} values read back differ "
                          f"(first {bad[0].decode()})")
        c.delete_many(list(items))
        if c.get_many(list(items)[:10]):
            raise Failure("memcached: deleted keys are still there")
        return c.stats()
    finally:
        c.close()


def run_memcached(ctx, alloc, rd, stack):
    p = ctx["programs"]["memcached"]
    load = ctx["load"]
    log_path = os.path.join(rd, "memcached.log")
    env = env_for(alloc, ctx["base_env"])
    user = ["-u", ctx["memcached_user"]] if ctx["memcached_user"] else []
    for attempt in range(3):
        port = free_port()
        cmd = [p["server"], "-p", str(port), "-U", "0", "-l", "127.0.0.1", "-t", "4",
               "-m", "1024", "-c", "1024"] + user
        with open(log_path, "w") as lf:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=lf,
                                    stderr=subprocess.STDOUT, env=env)
        stack.callback(stop_process, proc)

        def ready():
            c = Memcache(port, timeout=2)
            try:
                return c.version()
            finally:
                c.close()
        try:
            wait_ready(ready, proc, log_path, "memcached")
            break
        except Failure:
            if proc.poll() is not None and "address already in use" in \
                    "\n".join(tail(log_path, 20)).lower() and attempt < 2:
                continue
            raise
    pid = proc.pid
    mapped = check_mapped(pid, alloc, ctx, "memcached")
    threads = proc_status(pid).get("Threads")

    cfg = os.path.join(rd, "memcaslap.cfg")
    with open(cfg, "w") as f:
        f.write(MEMCASLAP_CONFIG)
    conc = load["mc_concurrency"]
    cmd = [p["slap"], "-s", f"127.0.0.1:{port}", "-T", "2", "-c", str(conc),
           "-x", str(load["mc_ops"]), "-w", load["mc_window"], "-F", cfg, "-v", "0.01"]
    t0 = time.monotonic()
    out, err, _ = run_client(cmd, ctx["timeout"], os.path.basename(p["slap"]), cwd=rd)
    load_s = time.monotonic() - t0
    text = out + err
    m = re.search(r"^Run time:\s*([0-9.]+)s\s+Ops:\s*(\d+)\s+TPS:\s*(\d+)", text, re.M)
    if not m:
        raise Failure("memcaslap printed no summary: " + " | ".join(text.strip().splitlines()[-4:]))
    run_s, ops, tps = float(m.group(1)), int(m.group(2)), int(m.group(3))
    counts = {k: int(v) for k, v in re.findall(r"^(\w+):\s*(\d+)\s*$", text, re.M)}
    for k in ("verify_misses", "verify_failed"):
        if k not in counts:
            raise Failure(f"memcaslap printed no {k}")
        if counts[k]:
            raise Failure(f"memcaslap: {k} {counts[k]}")
    if ops != load["mc_ops"] or tps <= 0:
        raise Failure(f"memcaslap ran {ops} of {load['mc_ops']} operations ({tps} TPS)")
    if counts.get("cmd_get", 0) + counts.get("cmd_set", 0) != ops:
        raise Failure(f"memcaslap: cmd_get {counts.get('cmd_get')} + cmd_set "
                      f"{counts.get('cmd_set')} != {ops} operations")

    stats = memcached_verify(port)
    cmd_get = int(stats.get("cmd_get", 0))
    if cmd_get < counts.get("cmd_get", 0):
        raise Failure(f"memcached counted {cmd_get} gets, memcaslap sent {counts.get('cmd_get')}")
    st = proc_status(pid)
    mapped = check_mapped(pid, alloc, ctx, "memcached") or mapped

    code = stop_process(proc, 30)
    if code != 0:
        raise Failure(f"memcached exited with status {code} after SIGTERM")
    check_log(log_path, "memcached")
    return {
        "throughput": float(tps),
        "memcaslap_tps": tps, "ops": ops, "run_s": run_s, "load_s": load_s,
        "cmd_get": counts.get("cmd_get"), "cmd_set": counts.get("cmd_set"),
        "get_misses": counts.get("get_misses"),
        "curr_items": int(stats.get("curr_items", 0)), "evictions": int(stats.get("evictions", 0)),
        "server_bytes": int(stats.get("bytes", 0)), "server_threads": threads,
        "peak_rss_bytes": st["VmHWM"], "final_rss_bytes": st["VmRSS"],
        "final_anon_bytes": st.get("RssAnon"),
        "mapped": mapped, "server_pids_checked": 1,
        "memory_note": "VmHWM and VmRSS of memcached",
    }


# ---------------------------------------------------------------------------
# PostgreSQL


PG_CONF = """
# bench/apps/compare_apps.py
port = {port}
listen_addresses = '127.0.0.1'
unix_socket_directories = '{sock}'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 128MB
huge_pages = off
max_connections = 30
max_wal_size = 1GB
autovacuum = off
log_min_messages = warning
log_line_prefix = '%m [%p] '
"""


def pg_setup(ctx):
    """initdb once, with no preload, into a template every run copies."""
    p = ctx["programs"]["postgres"]
    tpl = os.path.join(ctx["work"], "pg-template")
    os.makedirs(tpl)
    if os.geteuid() == 0:
        shutil.chown(tpl, ctx["pg_user"])
    log_path = os.path.join(ctx["work"], "initdb.log")
    cmd = ctx["as_user"] + [p["initdb"], "-D", os.path.join(tpl, "data"), "-U", "bench",
                            "--auth=trust", "--no-locale", "-E", "UTF8"]
    try:
        out, err, wall = run_client(cmd, 180, "initdb", env=ctx["base_env"], cwd=ctx["work"])
    except Failure as e:
        raise Failure(f"{e} (template cluster)") from None
    with open(log_path, "w") as f:
        f.write(out + err)
    log(f"compare_apps: PostgreSQL template cluster: initdb in {wall:.1f} s")
    return os.path.join(tpl, "data")


def run_postgres(ctx, alloc, rd, stack):
    p = ctx["programs"]["postgres"]
    load = ctx["load"]
    as_user = ctx["as_user"]
    if os.geteuid() == 0:
        shutil.chown(rd, ctx["pg_user"])
    data = os.path.join(rd, "data")
    sock = os.path.join(rd, "sock")
    os.makedirs(sock)
    if os.geteuid() == 0:
        shutil.chown(sock, ctx["pg_user"])
    run_client(["cp", "-a", ctx["pg_template"], data], 120, "cp of the template cluster")
    lib = ctx["pg_libs"].get(alloc["name"])
    libpath = lib or alloc["lib"]
    # The preload goes after runuser (env): the server and pg_ctl get it,
    # runuser does not.
    preload = ["env", f"LD_PRELOAD={libpath}"] if libpath else []
    log_path = os.path.join(rd, "server.log")
    conf = os.path.join(data, "postgresql.conf")
    with open(conf) as f:
        conf_text = f.read()
    pg_ctl = as_user + [p["pg_ctl"]]

    def immediate_stop():
        if os.path.exists(os.path.join(data, "postmaster.pid")):
            subprocess.run(pg_ctl + ["stop", "-D", data, "-m", "immediate", "-w", "-t", "20"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env=ctx["base_env"], cwd=rd, timeout=60)
    stack.callback(immediate_stop)
    for attempt in range(3):
        port = free_port()
        with open(conf, "w") as f:
            f.write(conf_text + PG_CONF.format(port=port, sock=sock))
        try:
            run_client(as_user + preload + [p["pg_ctl"], "start", "-D", data, "-l", log_path,
                                            "-w", "-t", "60"], 90,
                       "pg_ctl start", env=ctx["base_env"], cwd=rd)
            break
        except Failure:
            if "already in use" in "\n".join(tail(log_path, 20)) and attempt < 2:
                continue
            raise Failure("pg_ctl start failed: " + " | ".join(tail(log_path, 6))) from None
    with open(os.path.join(data, "postmaster.pid")) as f:
        pm = int(f.readline())
    stack.callback(kill_pid, pm)
    checked = {}

    def check(pid):
        r = check_mapped(pid, dict(alloc, lib=libpath), ctx, f"postgres process {pid}")
        if r:
            checked[pid] = r
    check(pm)
    kids = children(pm)
    if not kids:
        raise Failure("the postmaster has no child processes")
    for c in kids:
        check(c)

    # Sample the postmaster and its children (backends come and go).
    sampler = Sampler(pm, 0.1, check)
    sampler.start()
    stack.callback(sampler.stop)

    client_env = dict(ctx["base_env"])
    conn = ["-h", "127.0.0.1", "-p", str(port), "-U", "bench"]
    scale, clients, per_client = load["pg_scale"], load["pg_clients"], load["pg_tx_per_client"]
    _, _, init_s = run_client([p["pgbench"]] + conn + ["-i", "-s", str(scale), "-q", "postgres"],
                              ctx["timeout"], "pgbench -i", env=client_env)
    t0 = time.monotonic()
    out, err, _ = run_client([p["pgbench"]] + conn + ["-c", str(clients), "-j", "2", "-t",
                                                        str(per_client), "postgres"],
                             ctx["timeout"], "pgbench", env=client_env)
    load_s = time.monotonic() - t0
    text = out + err
    m = re.search(r"^tps = ([0-9.]+) \(without initial connection time\)", text, re.M)
    tx = re.search(r"^number of transactions actually processed: (\d+)", text, re.M)
    failed = re.search(r"^number of failed transactions: (\d+)", text, re.M)
    if not m or not tx:
        raise Failure("pgbench printed no tps: " + " | ".join(text.strip().splitlines()[-4:]))
    if not failed:
        raise Failure("pgbench printed no 'number of failed transactions'")
    if int(failed.group(1)) != 0:
        raise Failure(f"pgbench: {failed.group(1)} failed transactions")
    tps, ntx = float(m.group(1)), int(tx.group(1))
    if ntx != clients * per_client:
        raise Failure(f"pgbench processed {ntx} of {clients * per_client} transactions")

    def sql(q):
        out, _, _ = run_client([p["psql"], "-X", "-q", "-v", "ON_ERROR_STOP=1"] + conn
                               + ["-d", "postgres", "-At", "-c", q], 120, "psql", env=client_env)
        return out.strip()
    counts = sql("SELECT (SELECT count(*) FROM pgbench_accounts) || ' ' || "
                 "(SELECT count(*) FROM pgbench_tellers) || ' ' || "
                 "(SELECT count(*) FROM pgbench_branches) || ' ' || "
                 "(SELECT count(*) FROM pgbench_history)")
    want = f"{scale * 100000} {scale * 10} {scale} {ntx}"
    if counts != want:
        raise Failure(f"row counts (accounts tellers branches history) {counts!r}, expected {want}")
    sums = sql("SELECT (SELECT sum(abalance) FROM pgbench_accounts) || ' ' || "
               "(SELECT sum(tbalance) FROM pgbench_tellers) || ' ' || "
               "(SELECT sum(bbalance) FROM pgbench_branches) || ' ' || "
               "(SELECT coalesce(sum(delta), 0) FROM pgbench_history)").split()
    if len(set(sums)) != 1:
        raise Failure(f"balances disagree: accounts, tellers, branches, history deltas = {sums}")

    # Memory: wait for the client backends to exit (psql's last one may still
    # be going), stop the sampler, take one last sample, then the processes left.
    end = time.monotonic() + 5
    while time.monotonic() < end and any(
            cmdline(c).startswith("postgres: bench ") for c in children(pm)):
        time.sleep(0.05)
    sampler.stop()
    sampler.sample()
    if sampler.errors:
        raise Failure(sampler.errors[0])
    left = [pm] + descendants(pm)
    final = {pid: proc_status(pid) for pid in left}
    final = {pid: st for pid, st in final.items() if st}
    pm_hwm = sampler.hwm.get(pm, 0)
    child_hwm = {pid: v for pid, v in sampler.hwm.items() if pid != pm}
    top_child = max(child_hwm, key=child_hwm.get) if child_hwm else None
    pm_rss = final.get(pm, {}).get("VmRSS", 0)
    child_rss = {pid: st.get("VmRSS", 0) for pid, st in final.items() if pid != pm}
    top_final = max(child_rss, key=child_rss.get) if child_rss else None
    if not running(pm):
        raise Failure("the postmaster died during the load")
    check(pm)

    untracked_cpu_s = process_tree_cpu_s(pm)     # the postmaster is not our child

    # Clean stop.
    run_client(pg_ctl + ["stop", "-D", data, "-m", "fast", "-w", "-t", "60"], 90, "pg_ctl stop",
               env=ctx["base_env"], cwd=rd)
    for pid in left:
        if not wait_gone(pid, 20):
            raise Failure(f"server process {pid} still running after pg_ctl stop")
    if "database system is shut down" not in "\n".join(tail(log_path, 40)):
        raise Failure("the server log does not show a clean shutdown")
    check_log(log_path, "postgres")
    return {
        "throughput": tps, "transactions": ntx, "init_s": init_s, "load_s": load_s,
        "untracked_cpu_s": untracked_cpu_s,
        "peak_rss_bytes": pm_hwm + (child_hwm[top_child] if top_child else 0),
        "final_rss_bytes": pm_rss + (child_rss[top_final] if top_final else 0),
        "postmaster_hwm_bytes": pm_hwm,
        "max_child_hwm_bytes": child_hwm.get(top_child),
        "max_child": sampler.names.get(top_child),
        "peak_anon_sum_bytes": sampler.anon_sum_max,
        "final_anon_bytes": sum(st.get("RssAnon", 0) for st in final.values()),
        "processes_seen": len(sampler.names), "samples": sampler.samples,
        "final_processes": [{"pid": pid, "command": sampler.names.get(pid) or cmdline(pid),
                             "VmRSS": st.get("VmRSS"), "RssAnon": st.get("RssAnon"),
                             "RssShmem": st.get("RssShmem")} for pid, st in final.items()],
        "peak_hwm_processes": sorted(({"command": sampler.names.get(pid), "VmHWM": v}
                                      for pid, v in sampler.hwm.items()),
                                     key=lambda x: -x["VmHWM"])[:12],
        "mapped": checked.get(pm), "server_pids_checked": len(checked),
        "memory_note": "postmaster + the largest child (VmHWM sampled every 0.1 s)",
    }


RUNNERS = {"redis": run_redis, "postgres": run_postgres, "memcached": run_memcached}


def run_one(ctx, server, alloc, rep, seq):
    rd = os.path.join(ctx["work"], f"{seq:03d}-{server}-{alloc['name']}")
    os.makedirs(rd)
    os.chmod(rd, 0o755)
    rec = {"server": server, "allocator": alloc["name"], "rep": rep,
           "load1": os.getloadavg()[0]}
    t0 = time.monotonic()
    (busy0, steal0), own0 = machine_busy_s(), own_cpu_s()
    try:
        with contextlib.ExitStack() as stack:
            rec.update(RUNNERS[server](ctx, alloc, rd, stack))
        rec["ok"] = True
    except Failure as e:
        rec["ok"] = False
        rec["failure"] = str(e)
        logs = [os.path.join(rd, n) for n in ("redis.log", "memcached.log", "server.log")]
        rec["log_tail"] = [line for path in logs for line in tail(path, 8)]
    rec["wall_s"] = time.monotonic() - t0
    # CPU time the machine spent on other processes during the run: the
    # machine's busy time less this driver's, its clients' and its servers'.
    (busy1, steal1), own1 = machine_busy_s(), own_cpu_s()
    if busy0 is not None and busy1 is not None and rec["wall_s"] > 0:
        ours = own1 - own0 + rec.get("untracked_cpu_s", 0.0)
        cpu_wall = rec["wall_s"] * (os.cpu_count() or 1)
        rec["cpu_s"] = ours
        rec["other_cpu_share"] = max(0.0, busy1 - busy0 - ours) / cpu_wall
        rec["steal_share"] = (steal1 - steal0) / cpu_wall
    if rec["ok"] or not ctx["args"].keep_work:
        shutil.rmtree(rd, ignore_errors=True)
    else:
        rec["work_dir"] = rd
    return rec


# ---------------------------------------------------------------------------
# Statistics and verdicts


def summarize(runs, servers, names):
    summary = {}
    for s in servers:
        summary[s] = {}
        for a in names:
            rs = [r for r in runs if r["server"] == s and r["allocator"] == a]
            ok = [r for r in rs if r["ok"]]
            d = {"runs": len(rs), "ok": len(ok), "failed": len(rs) - len(ok)}
            if ok:
                tp = [r["throughput"] for r in ok]
                d["throughput"] = statistics.median(tp)
                d["spread"] = (max(tp) - min(tp)) / d["throughput"] if d["throughput"] else None
                for key in ("peak_rss_bytes", "final_rss_bytes", "final_anon_bytes",
                            "peak_anon_sum_bytes", "used_memory_bytes", "init_s"):
                    vals = [r[key] for r in ok if r.get(key) is not None]
                    d[key] = statistics.median(vals) if vals else None
                other = [r["other_cpu_share"] for r in ok if r.get("other_cpu_share") is not None]
                d["other_cpu_max"] = max(other) if other else None
                peaks = [r["peak_rss_bytes"] for r in ok]
                d["peak_rss_spread"] = (max(peaks) - min(peaks)) / d["peak_rss_bytes"] \
                    if d["peak_rss_bytes"] else None
                finals = [r["final_rss_bytes"] for r in ok]
                d["final_rss_spread"] = (max(finals) - min(finals)) / d["final_rss_bytes"] \
                    if d["final_rss_bytes"] else None
            summary[s][a] = d
        base = summary[s].get(BASELINE[s], {})
        for a in names:
            d = summary[s][a]
            for key, ratio in (("throughput", "throughput_ratio"),
                               ("peak_rss_bytes", "peak_rss_ratio"),
                               ("final_rss_bytes", "final_rss_ratio"),
                               ("peak_anon_sum_bytes", "peak_anon_ratio"),
                               ("final_anon_bytes", "final_anon_ratio")):
                d[ratio] = d[key] / base[key] if d.get(key) and base.get(key) else None
    return summary


def judge(summary, servers, names, skipped_pairs):
    """brisk's verdict per server: [(target, measured, verdict, note)]."""
    out = []
    for s in servers:
        base = BASELINE[s]
        target = (f"{SERVER_TITLE[s]}: throughput >= {base}'s, peak and final RSS no higher")
        if "brisk" not in names:
            out.append((target, "brisk not run", None, ""))
            continue
        if base not in names or (s, base) in skipped_pairs:
            out.append((target, f"{base} not run", None, ""))
            continue
        b, ref = summary[s]["brisk"], summary[s][base]
        if b["failed"] or not b["ok"]:
            out.append((target, f"brisk failed {b['failed']} of {b['runs']} runs", False, ""))
            continue
        if not ref["ok"]:
            out.append((target, f"{base} failed every run", None, ""))
            continue
        tr, pr, fr = b["throughput_ratio"], b["peak_rss_ratio"], b["final_rss_ratio"]
        measured = (f"throughput {tr:.3f}x, peak RSS {pr:.3f}x, final RSS {fr:.3f}x "
                    f"({base} = 1)")
        ok = tr >= 1.0 and pr <= 1.0 and fr <= 1.0
        notes = []
        single = min(b["ok"], ref["ok"]) < 2
        # A miss smaller than the run-to-run spread of either side is noted.
        for label, ratio, spread_key, bad in (
                ("throughput", tr, "spread", tr < 1.0),
                ("peak RSS", pr, "peak_rss_spread", pr > 1.0),
                ("final RSS", fr, "final_rss_spread", fr > 1.0)):
            if not bad:
                continue
            gap = abs(ratio - 1.0)
            if single:
                notes.append(f"{label} {gap * 100:.1f}% worse")
                continue
            noise = max(b.get(spread_key) or 0, ref.get(spread_key) or 0)
            notes.append(f"{label} {gap * 100:.1f}% "
                         + ("worse, within" if gap <= noise else "worse, beyond")
                         + f" the run-to-run spread ({noise * 100:.1f}%)")
        if single and notes:
            notes.append("one run: no spread to judge the gaps by")
        out.append((target, measured, ok, "; ".join(notes)))
    return out


# ---------------------------------------------------------------------------
# Report


def render_report(ctx):
    a = ctx["args"]
    m = ctx["machine"]
    out = ["# brisk in servers: Redis, PostgreSQL, memcached", ""]
    if a.mode == "smoke":
        out += ["**Smoke run** (one repetition, tiny loads): checks that the harness works; "
                "the numbers are not a measurement.", ""]
    out.append(f"- date: {ctx['date']}")
    out.append(f"- machine: {m['uname']}; CPU: {m['cpu_model']}, {m['cpus_online']} CPUs online, "
               f"{m['cpus_usable']} usable; memory {m['memory_bytes'] / (1 << 30):.1f} GiB; "
               f"{m['glibc']}; transparent hugepages: {m.get('thp') or 'unknown'}")
    out.append("- load average (1, 5, 15 minutes): %s at the start, %s at the end" % (
        " ".join("%.2f" % x for x in m["load_average_start"]),
        " ".join("%.2f" % x for x in ctx["load_average_end"])))
    out.append(f"- command: `{ctx['command']}`")
    load = ctx["load"]
    out.append(f"- mode: {a.mode}; {a.reps} repetition{'s' if a.reps != 1 else ''} per server and "
               "allocator, interleaved (each repetition runs every server under every "
               "allocator, the allocator order rotated from one server and repetition to "
               "the next)")
    out.append(f"- total time: {ctx['elapsed_s']:.0f} s")
    out.append("")
    shares = [r["other_cpu_share"] for r in ctx["runs"] if r.get("other_cpu_share") is not None]
    steal = [r.get("steal_share") or 0 for r in ctx["runs"]]
    if shares:
        out.insert(-1, "- CPU time of other processes during the runs (the machine's busy time "
                   "less this driver's, its clients' and its servers'), as a share of all CPUs: "
                   f"median {statistics.median(shares) * 100:.0f}%, max {max(shares) * 100:.0f}%"
                   + "; time stolen by the hypervisor (steal): "
                   + (f"max {max(steal) * 100:.0f}%" if any(steal) else
                      "none reported (a VM may not report it: host contention then shows "
                      "only in the `spread` column)"))
    disturbed = [r for r in ctx["runs"] if (r.get("other_cpu_share") or 0) > OTHER_CPU_WARN]
    # The per-run measurement decides; the load average (which lags by a
    # minute or more) only when there is none.
    busy = bool(disturbed) if shares else m["load_average_start"][0] > 0.5 * m["cpus_usable"]
    if busy and a.mode != "smoke":
        out += [f"**Warning: the machine was busy**: in {len(disturbed)} of "
                f"{len(ctx['runs'])} runs other processes used more than "
                f"{OTHER_CPU_WARN * 100:.0f}% of the CPUs (column `other CPU`, the most over "
                "an allocator's runs).  Those throughputs are not comparable; run again on an "
                "idle machine.  RSS depends little on the load." if shares else
                f"**Warning: the machine was busy** (1-minute load average "
                f"{m['load_average_start'][0]:.2f} on {m['cpus_usable']} CPUs at the start): "
                "the throughputs are noisy.", ""]

    out += ["## Allocators", ""]
    rows = [[al["name"], f"`{al['lib']}`" if al["lib"] else "(none: the libc malloc)",
             al["version"] or "?", al["options"]] for al in ctx["allocators"]]
    out.append(md_table(["allocator", "LD_PRELOAD", "version", "options"], rows))
    for name, why in ctx["skipped"]:
        out.append(f"\nSkipped: **{name}**: {why}.")
    out.append("")

    out += ["## Servers and loads", ""]
    rows = []
    for s in ctx["servers"]:
        rows.append([SERVER_TITLE[s], ctx["versions"].get(s, "?"), ctx["load_text"][s],
                     ctx["check_text"][s]])
    out.append(md_table(["server", "version", "load", "checks of every run"], rows))
    out.append("")
    for s, name, why in ctx["skipped_pairs_why"]:
        out.append(f"- {SERVER_TITLE[s]} under **{name}**: not run: {why}")
    for note in ctx["notes"]:
        out.append(f"- {note}")
    if ctx["skipped_pairs_why"] or ctx["notes"]:
        out.append("")
    for s, why in ctx["skipped_servers"]:
        out.append(f"Skipped: **{SERVER_TITLE.get(s, s)}**: {why}.")
        out.append("")

    out += ["## brisk's targets", ""]
    rows = []
    for target, measured, verdict, note in ctx["verdicts"]:
        v = {True: "met", False: "**NOT met**", None: "not judged"}[verdict]
        rows.append([target, measured, v + (f" ({note})" if note else "")])
    out.append(md_table(["target", "measured (medians)", "verdict"], rows))
    out.append("")
    if a.mode == "smoke":
        out += ["(Smoke run: the verdicts above mean nothing.)", ""]

    out += ["## Results (medians over the repetitions)", "",
            "`throughput`: Redis, requests per second over all redis-benchmark tests (total "
            "requests / the sum of each test's requests / its rate); PostgreSQL, pgbench's "
            "TPS without the initial connection time; memcached, memcaslap's operations per "
            "second.  `spread`: (max - min) / median of the throughput.  `peak RSS`: VmHWM "
            "of the server process (PostgreSQL: the postmaster's plus the largest of its "
            "children's, backends included, sampled from /proc every 0.1 s while they live; "
            "it counts the shared buffers each touched).  `final RSS`: VmRSS after the load, "
            "before the shutdown (PostgreSQL: the postmaster's plus the largest remaining "
            "child's; the pgbench backends have exited).  `anon`: PostgreSQL only, RssAnon "
            "summed over all server processes (private memory, no shared buffers): the "
            "highest sum sampled, and the sum after the load.  `other CPU`: the most CPU time "
            "other processes of the machine took during one of the allocator's runs, as a "
            "share of all CPUs.", ""]
    for s in ctx["servers"]:
        base = BASELINE[s]
        out += [f"### {SERVER_TITLE[s]} (ratios against {base})", ""]
        header = ["allocator", f"{UNIT[s]}", f"vs {base}", "spread", "peak RSS MiB",
                  f"vs {base}", "final RSS MiB", f"vs {base}"]
        if s == "postgres":
            header += ["peak anon MiB", f"vs {base}", "final anon MiB", "pgbench -i s"]
        if s == "memcached":
            header += ["final anon MiB"]
        header += ["other CPU", "ok runs"]
        rows = []
        for al in ctx["allocator_names"]:
            d = ctx["summary"][s][al]
            label = f"**{al}**" if al == "brisk" else al
            if (s, al) in ctx["skipped_pairs"]:
                rows.append([label, "not run"] + [""] * (len(header) - 2))
                continue
            if not d["ok"]:
                rows.append([label, "FAILED"] + [""] * (len(header) - 3) + [f"0/{d['runs']}"])
                continue
            row = [label, fmt(d["throughput"], ",.0f"), fmt(d["throughput_ratio"], ".3f"),
                   fmt(d["spread"] * 100 if d["spread"] is not None else None, ".1f") + "%",
                   fmt(mib(d["peak_rss_bytes"]), ".1f"), fmt(d["peak_rss_ratio"], ".3f"),
                   fmt(mib(d["final_rss_bytes"]), ".1f"), fmt(d["final_rss_ratio"], ".3f")]
            if s == "postgres":
                row += [fmt(mib(d["peak_anon_sum_bytes"]), ".1f"), fmt(d["peak_anon_ratio"], ".3f"),
                        fmt(mib(d["final_anon_bytes"]), ".1f"), fmt(d["init_s"], ".2f")]
            if s == "memcached":
                row += [fmt(mib(d["final_anon_bytes"]), ".1f")]
            row.append(fmt(d["other_cpu_max"] * 100 if d.get("other_cpu_max") is not None
                           else None, ".0f") + ("%" if d.get("other_cpu_max") is not None else ""))
            row.append(f"{d['ok']}/{d['runs']}")
            rows.append(row)
        out.append(md_table(header, rows, ["---"] + ["---:"] * (len(header) - 1)))
        out.append("")
        proven = [r for r in ctx["runs"] if r["server"] == s and r["ok"]]
        if proven:
            n_proc = sum(r.get("server_pids_checked", 0) for r in proven)
            out.append(f"Allocator checked in /proc/PID/maps in every successful run: "
                       f"{n_proc} server process{'es' if n_proc != 1 else ''} over "
                       f"{len(proven)} run{'s' if len(proven) != 1 else ''} (the preloaded "
                       "library mapped; with no preload, no other allocator's library).")
            out.append("")

    failed = [r for r in ctx["runs"] if not r["ok"]]
    if failed:
        out += ["## Failed runs", ""]
        for r in failed:
            out.append(f"- {SERVER_TITLE[r['server']]} under {r['allocator']} (repetition "
                       f"{r['rep']}): {r['failure']}"
                       + (f" (kept: `{r['work_dir']}`)" if r.get("work_dir") else ""))
            for line in r.get("log_tail", []):
                out.append(f"    {line}")
        out.append("")
    if ctx.get("outputs"):
        out.append("Outputs: " + ", ".join(f"{k} `{v}`" for k, v in ctx["outputs"].items())
                   + (" (temporary: removed when the smoke check ends)"
                      if ctx.get("temporary_outputs") else ""))
        out.append("")
    return "\n".join(out)


def render_chart(path, ctx):
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        return "gnuplot not found (apt-get install gnuplot-nox)"
    names = ctx["allocator_names"]
    q = C.gnuplot_string
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for ratio in ("throughput_ratio", "peak_rss_ratio"):
            fn = os.path.join(tmp, ratio + ".dat")
            with open(fn, "w") as f:
                f.write("server " + " ".join(q(n) for n in names) + "\n")
                for s in ctx["servers"]:
                    vals = [ctx["summary"][s][n].get(ratio) for n in names]
                    f.write(q(f"{SERVER_TITLE[s]} (x {BASELINE[s]})") + " "
                            + " ".join("?" if v is None else "%.4f" % v for v in vals) + "\n")
            files[ratio] = fn
        terminals = C.capture([gnuplot, "-e", "set terminal"]) or ""
        term = "pngcairo size 1100,900 font ',10'" if "pngcairo" in terminals \
            else "png size 1100,900"
        tmp_png = path + ".tmp"
        title = (f"brisk in servers ({ctx['args'].mode}, {ctx['date'][:10]}): ratio to each "
                 "server's reference allocator")
        script = f"""
set terminal {term}
set output {q(tmp_png)}
set datafile missing "?"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key outside right top vertical
set grid ytics
set yrange [0:*]
set offsets 0, 0, graph 0.08, 0
set multiplot layout 2,1 title {q(title)}
set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead dashtype 2 linewidth 1.5
set ylabel "throughput (higher is better)"
plot for [i=2:{len(names) + 1}] {q(files['throughput_ratio'])} using i:xtic(1) title columnheader(i)
set ylabel "peak RSS (lower is better)"
plot for [i=2:{len(names) + 1}] {q(files['peak_rss_ratio'])} using i:xtic(1) title columnheader(i)
unset multiplot
set output
"""
        r = subprocess.run([gnuplot], input=script, text=True, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        if r.returncode != 0 or not os.path.isfile(tmp_png):
            return "gnuplot failed: " + r.stderr.strip()[-500:]
        os.replace(tmp_png, path)
    return None


# ---------------------------------------------------------------------------
# Set-up


def find_programs(servers):
    """{server: {role: path}} and [(server, why)] for the servers that cannot run."""
    progs, skipped = {}, []
    w = shutil.which
    if "redis" in servers:
        s, b = w("redis-server"), w("redis-benchmark")
        if s and b:
            progs["redis"] = {"server": s, "benchmark": b}
        else:
            skipped.append(("redis", "redis-server or redis-benchmark is not installed "
                                     "(apt-get install redis-server redis-tools)"))
    if "memcached" in servers:
        s, slap = w("memcached"), w("memcaslap") or w("memaslap")
        if s and slap:
            progs["memcached"] = {"server": s, "slap": slap}
        else:
            skipped.append(("memcached", "memcached or memcaslap is not installed "
                                         "(apt-get install memcached libmemcached-tools)"))
    if "postgres" in servers:
        bindir = None
        pgc = w("pg_config")
        cand = []
        if pgc:
            out = C.capture([pgc, "--bindir"])
            if out:
                cand.append(out.strip())

        def version_key(d):
            return [int(x) if x.isdigit() else 0 for x in re.split(r"[/.]", d)]
        import glob
        cand += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version_key, reverse=True)
        for d in cand:
            if all(os.access(os.path.join(d, x), os.X_OK)
                   for x in ("initdb", "pg_ctl", "postgres", "pgbench", "psql")):
                bindir = d
                break
        if bindir:
            progs["postgres"] = {x: os.path.join(bindir, x)
                                 for x in ("initdb", "pg_ctl", "postgres", "pgbench", "psql")}
        else:
            skipped.append(("postgres", "PostgreSQL is not installed (apt-get install postgresql)"))
    return progs, skipped


def first_line(cmd):
    out = C.capture(cmd)
    return out.strip().splitlines()[0] if out and out.strip() else None


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Compare brisk with glibc, jemalloc, tcmalloc and mimalloc inside "
                    "Redis, PostgreSQL and memcached.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="smaller loads (about 2 minutes on 2 cores)")
    mode.add_argument("--smoke", dest="mode", action="store_const", const="smoke",
                      help="one repetition, tiny loads (under 90 s); checks the outputs")
    p.add_argument("--build-dir", default="build/release",
                   help="build directory with libbrisk.so (default build/release; relative "
                        "paths from the current directory, else from the repository)")
    p.add_argument("--reps", type=int, help="repetitions (default 3; 1 with --smoke)")
    p.add_argument("--servers", help="comma-separated servers (default: %s)" % ",".join(SERVERS))
    p.add_argument("--allocators", help="comma-separated allocators (default: %s)"
                   % ",".join(ALLOCATORS))
    p.add_argument("--lib", action="append", default=[], metavar="NAME=PATH",
                   help="library to preload for allocator NAME instead of the default")
    p.add_argument("--timeout", type=int, default=300,
                   help="seconds for each client command (default 300)")
    p.add_argument("--json", help="write the data as JSON to this path")
    p.add_argument("--chart", help="render a PNG chart to this path (gnuplot)")
    p.add_argument("--report", help="also write the markdown report to this path")
    p.add_argument("--keep-work", action="store_true",
                   help="keep the directory of a failed run (its logs and data)")
    args = p.parse_args(argv)
    args.mode = args.mode or "default"
    args.reps = args.reps or MODES[args.mode]["reps"]
    if args.reps < 1:
        p.error("--reps must be at least 1")
    return args


def describe_loads(load, ctx):
    passes = "; ".join(f"{tests.replace(',', ' ')} with {size}-byte values, "
                       f"{n:,} requests per test" for n, size, tests in load["redis_passes"])
    return {
        "redis": (f"`redis-benchmark --csv -c 32 -P 16 -r {load['redis_keyspace']}` "
                  f"in passes: {passes}"),
        "postgres": (f"`pgbench -i -s {load['pg_scale']}`, then `pgbench -c {load['pg_clients']} "
                     f"-j 2 -t {load['pg_tx_per_client']}` (TPC-B, "
                     f"{load['pg_clients'] * load['pg_tx_per_client']:,} transactions); "
                     "fsync off, shared_buffers 128MB, "
                     "autovacuum off; the cluster is a copy of one initdb made without "
                     "preload"),
        "memcached": (f"`memcached -t 4 -m 1024`; `{os.path.basename(ctx['slap'] or 'memcaslap')}"
                      f" -T 2 -c {load['mc_concurrency']} -w {load['mc_window']} "
                      f"-x {load['mc_ops']} -v 0.01` ({load['mc_ops']:,} operations) with "
                      "keys of 32-64 B and values "
                      "of 16 B-1 KiB (70%), 1-8 KiB (25%), 8-64 KiB (5%), 10% sets; then 400 "
                      "values of 1 B-200 KiB stored, read back and deleted"),
    }, {
        "redis": ("every test reported a rate; no error in its output; a 100 kB sentinel "
                  "read back; DBSIZE at least 90% of the distinct keys SET must have made; "
                  "`total_error_replies` 0; commands processed >= requests sent; exit 0 "
                  "after SHUTDOWN"),
        "postgres": ("every transaction processed, `number of failed transactions: 0`; "
                     "row counts of accounts, tellers, "
                     "branches and history (= transactions processed); balance sums equal "
                     "history's deltas; clean `pg_ctl stop -m fast`"),
        "memcached": ("memcaslap's summary: every operation done (gets + sets), "
                      "`verify_misses` and `verify_failed` 0; our values "
                      "read back equal, deleted keys gone; the server counted at least "
                      "memcaslap's gets; exit 0 after SIGTERM"),
    }


def main(argv):
    args = parse_args(argv)
    t_start = time.monotonic()
    date = datetime.datetime.now(datetime.timezone.utc).astimezone().strftime(
        "%Y-%m-%d %H:%M:%S %Z")
    build = C.resolve_build_dir(args.build_dir)
    brisk_lib = os.path.join(build, "libbrisk.so")
    if not os.path.isfile(brisk_lib):
        log(f"compare_apps: {brisk_lib} not found; build it with: cmake -S {REPO} -B {build} "
            f"-G Ninja -DCMAKE_BUILD_TYPE=Release && cmake --build {build} --target brisk")
        return 2
    servers = args.servers.split(",") if args.servers else SERVERS
    for s in servers:
        if s not in SERVERS:
            log(f"compare_apps: unknown server {s!r} (known: {', '.join(SERVERS)})")
            return 2
    wanted = args.allocators.split(",") if args.allocators else ALLOCATORS
    for a in wanted:
        if a not in ALLOCATORS:
            log(f"compare_apps: unknown allocator {a!r} (known: {', '.join(ALLOCATORS)})")
            return 2
    libs = dict(C.BASELINES)
    libs["brisk"] = brisk_lib
    for spec in args.lib:
        name, sep, path = spec.partition("=")
        if not sep or name not in libs or name == "glibc":
            log(f"compare_apps: bad --lib {spec!r} (NAME=PATH, NAME one of brisk, jemalloc, "
                "tcmalloc, mimalloc)")
            return 2
        libs[name] = os.path.abspath(path)

    base_env = dict(os.environ)
    base_env.pop("LD_PRELOAD", None)
    base_env["LC_ALL"] = "C"
    allocators, skipped = [], []
    for name in ALLOCATORS:
        if name not in wanted:
            continue
        lib = libs[name]
        if lib and not os.path.isfile(lib):
            skipped.append((name, f"{lib} is missing (scripts/deps.sh installs it)"))
            log(f"compare_apps: skipping {name}: {lib} is missing")
            continue
        version = (C.brisk_version() if name == "brisk" else
                   " ".join(platform.libc_ver()) if name == "glibc" else C.package_version(lib))
        allocators.append({"name": name, "lib": lib, "version": version,
                           "options": C.allocator_options(name, base_env)})
    names = [al["name"] for al in allocators]
    if not allocators:
        log("compare_apps: no allocator to run")
        return 2

    progs, skipped_servers = find_programs(servers)
    for s, why in skipped_servers:
        log(f"compare_apps: skipping {s}: {why}")
    servers = [s for s in servers if s in progs]
    if not servers:
        log("compare_apps: no server to run")
        return 2

    load = MODES[args.mode]
    ctx = {"args": args, "load": load, "programs": progs, "base_env": base_env,
           "timeout": args.timeout, "date": date,
           "allocator_libs": [l_ for l_ in libs.values() if l_],
           "skipped_pairs": set(), "skipped_pairs_why": [], "notes": []}
    ctx["slap"] = progs.get("memcached", {}).get("slap")
    ctx["load_text"], ctx["check_text"] = describe_loads(load, ctx)
    versions = {}
    if "redis" in progs:
        versions["redis"] = first_line([progs["redis"]["server"], "--version"])
        linked = linked_allocators(progs["redis"]["server"], ctx["allocator_libs"])
        ctx["redis_linked"] = linked
        if any("jemalloc" in x for x in linked) and "glibc" in names:
            why = ("Debian's redis-server is linked against libjemalloc.so.2 (ldd), so with no "
                   "preload it runs jemalloc, its own default allocator: a \"glibc\" row would "
                   "be a second jemalloc row (and the jemalloc row, which preloads the same "
                   "library, is Redis's default)")
            ctx["skipped_pairs"].add(("redis", "glibc"))
            log("compare_apps: Redis is not run under glibc: redis-server is linked against "
                "libjemalloc (its glibc row would be jemalloc)")
            ctx["skipped_pairs_why"].append(("redis", "glibc", why))
        imports = C.capture(["nm", "-D", "--undefined-only", progs["redis"]["server"]]) or ""
        je_api = sorted({ln.split()[-1].split("@")[0] for ln in imports.splitlines()
                         if ln.split() and ln.split()[-1].split("@")[0] in (
                             "mallctl", "nallocx", "malloc_stats_print", "mallocx", "rallocx",
                             "xallocx", "sallocx", "dallocx", "sdallocx")})
        if je_api and linked:
            ctx["notes"].append(
                "Redis imports jemalloc's own API (" + ", ".join(f"`{x}`" for x in je_api)
                + "): brisk defines it, so under brisk everything binds to libbrisk.so; "
                "under tcmalloc and mimalloc those calls still go to libjemalloc.so.2 (its "
                "statistics then describe an empty heap, and `INFO memory` shows them), "
                "while malloc and free go to the preloaded library.")
    if "postgres" in progs:
        versions["postgres"] = first_line([progs["postgres"]["postgres"], "--version"])
    if "memcached" in progs:
        versions["memcached"] = (first_line([progs["memcached"]["server"], "-V"]) or "?") + \
            "; " + (first_line([progs["memcached"]["slap"], "-V"]) or "?")
    ctx["versions"] = versions
    ctx["linked"] = set()

    # Users: PostgreSQL and memcached refuse to run as root.
    root = os.geteuid() == 0
    ctx["memcached_user"] = None
    ctx["as_user"] = []
    ctx["pg_user"] = None
    if root:
        import pwd
        users = {u.pw_name for u in pwd.getpwall()}
        ctx["memcached_user"] = "memcache" if "memcache" in users else "nobody"
        ctx["pg_user"] = "postgres" if "postgres" in users else "nobody"
        if shutil.which("runuser"):
            ctx["as_user"] = ["runuser", "-u", ctx["pg_user"], "--"]
        else:
            gid = pwd.getpwnam(ctx["pg_user"]).pw_gid
            ctx["as_user"] = ["setpriv", f"--reuid={ctx['pg_user']}", f"--regid={gid}",
                              "--init-groups", "--"]
        ctx["notes"].append(f"Running as root: PostgreSQL runs as `{ctx['pg_user']}` "
                            f"(`{' '.join(ctx['as_user'])}`), memcached with "
                            f"`-u {ctx['memcached_user']}`; Redis as root.")

    machine = C.machine_info(None)
    ctx["machine"] = machine
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)

    work = tempfile.mkdtemp(prefix="brisk-appbench.", dir=os.environ.get("TMPDIR") or "/tmp")
    os.chmod(work, 0o755)
    ctx["work"] = work
    runs = []
    interrupted = None
    try:
        if "postgres" in servers:
            # libbrisk.so (or a --lib) where the server user can read it.
            ctx["pg_libs"] = {}
            libdir = os.path.join(work, "lib")
            os.makedirs(libdir)
            os.chmod(libdir, 0o755)
            for al in allocators:
                if al["lib"] and root and not al["lib"].startswith("/usr/"):
                    dst = os.path.join(libdir, al["name"] + "-" + os.path.basename(
                        os.path.realpath(al["lib"])))
                    shutil.copyfile(os.path.realpath(al["lib"]), dst)
                    os.chmod(dst, 0o755)
                    ctx["pg_libs"][al["name"]] = dst
            try:
                ctx["pg_template"] = pg_setup(ctx)
            except Failure as e:
                log(f"compare_apps: skipping postgres: {e}")
                skipped_servers.append(("postgres", str(e)))
                servers.remove("postgres")
        ctx["servers"] = servers
        pairs = {s: [al for al in allocators if (s, al["name"]) not in ctx["skipped_pairs"]]
                 for s in servers}
        total = args.reps * sum(len(v) for v in pairs.values())
        if not total:
            log("compare_apps: nothing to run (see the skipped servers and allocators above)")
            return 2
        log(f"compare_apps: {', '.join(servers)} x {', '.join(names)} x {args.reps} "
            f"repetition{'s' if args.reps != 1 else ''} = {total} runs ({args.mode})")
        seq = 0
        for rep in range(1, args.reps + 1):
            for si, s in enumerate(servers):
                als = pairs[s]
                if not als:
                    continue
                k = (rep - 1 + si) % len(als)
                for al in als[k:] + als[:k]:
                    seq += 1
                    ctx["linked"] = ctx.get("redis_linked", set()) if s == "redis" else set()
                    r = run_one(ctx, s, al, rep, seq)
                    runs.append(r)
                    if r["ok"]:
                        log(f"[{seq:2d}/{total}] rep {rep} {s:9s} {al['name']:8s} "
                            f"{r['throughput']:12,.0f} {UNIT[s]:10s} peak RSS "
                            f"{mib(r['peak_rss_bytes']):7.1f} MiB, final "
                            f"{mib(r['final_rss_bytes']):7.1f} MiB ({r['wall_s']:.1f} s, "
                            f"other processes {r.get('other_cpu_share', 0) * 100:.0f}% "
                            "of the CPUs)")
                    else:
                        log(f"[{seq:2d}/{total}] rep {rep} {s:9s} {al['name']:8s} FAILED: "
                            f"{r['failure']}")
    except Interrupted as e:
        interrupted = str(e)
        log(f"compare_apps: interrupted ({interrupted}): cleaning up")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        if not args.keep_work or all(r["ok"] for r in runs):
            shutil.rmtree(work, ignore_errors=True)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
    if interrupted:
        return 130

    ctx["servers"] = servers
    ctx["skipped_servers"] = skipped_servers
    ctx["allocators"] = allocators
    ctx["allocator_names"] = names
    ctx["skipped"] = skipped
    ctx["runs"] = runs
    ctx["summary"] = summarize(runs, servers, names)
    ctx["verdicts"] = judge(ctx["summary"], servers, names, ctx["skipped_pairs"])
    ctx["command"] = " ".join(shlex.quote(x) for x in [sys.argv[0]] + argv)
    ctx["load_average_end"] = list(os.getloadavg())
    ctx["elapsed_s"] = time.monotonic() - t_start
    ctx["outputs"] = {}

    smoke_dir = None
    if args.mode == "smoke" and not (args.json and args.chart):
        smoke_dir = tempfile.mkdtemp(prefix="brisk-appbench-smoke.")
        ctx["temporary_outputs"] = True
        args.json = args.json or os.path.join(smoke_dir, "apps.json")
        if shutil.which("gnuplot"):
            args.chart = args.chart or os.path.join(smoke_dir, "apps.png")
    chart_error = None
    if args.chart:
        chart_error = render_chart(args.chart, ctx)
        if chart_error:
            log(f"compare_apps: no chart: {chart_error}")
        else:
            ctx["outputs"]["chart"] = args.chart
    if args.json:
        ctx["outputs"]["JSON"] = args.json
    report = render_report(ctx)
    if args.json:
        data = {
            "date": date, "command": ctx["command"], "mode": args.mode,
            "repetitions": args.reps, "machine": machine,
            "load_average_end": ctx["load_average_end"], "elapsed_s": ctx["elapsed_s"],
            "load": {k: v for k, v in load.items() if k != "reps"},
            "baselines": {s: BASELINE[s] for s in servers},
            "units": {s: UNIT[s] for s in servers},
            "versions": versions,
            "allocators": [{k: al[k] for k in ("name", "lib", "version", "options")}
                           for al in allocators],
            "skipped": [{"name": n_, "why": w_} for n_, w_ in skipped],
            "skipped_servers": [{"server": s_, "why": w_} for s_, w_ in skipped_servers],
            "skipped_pairs": [{"server": s_, "allocator": n_, "why": w_}
                              for s_, n_, w_ in ctx["skipped_pairs_why"]],
            "notes": ctx["notes"],
            "servers": servers, "runs": runs, "summary": ctx["summary"],
            "verdicts": [{"target": t, "measured": m_, "met": v, "note": n_}
                         for t, m_, v, n_ in ctx["verdicts"]],
        }
        C.write_json(args.json, data)
    smoke = (lambda: smoke_check(report, args, servers, names, ctx, chart_error))
    return C.finish("compare_apps", args, report, ctx["elapsed_s"], runs, smoke, smoke_dir)


def smoke_check(report, args, servers, names, ctx, chart_error):
    problems = []
    for s in servers:
        if f"### {SERVER_TITLE[s]}" not in report:
            problems.append(f"no table for {s}")
        for n in names:
            if (s, n) in ctx["skipped_pairs"]:
                continue
            section = re.split(r"\n##", report.split(f"### {SERVER_TITLE[s]}", 1)[-1], 1)[0]
            if not re.search(r"^\| (\*\*)?%s(\*\*)? \| [0-9,]+ \|" % re.escape(n), section,
                             re.M):
                problems.append(f"no throughput for {s} under {n}")
    try:
        with open(args.json) as f:
            data = json.load(f)
        expected = sum(1 for s in servers for n in names if (s, n) not in ctx["skipped_pairs"])
        if len(data["runs"]) != expected * args.reps:
            problems.append("JSON: wrong number of runs")
        for s in servers:
            for n in names:
                if (s, n) not in ctx["skipped_pairs"] and \
                        not data["summary"][s][n].get("peak_rss_bytes"):
                    problems.append(f"JSON: no peak RSS for {s} under {n}")
    except (OSError, ValueError, KeyError) as e:
        problems.append(f"JSON unreadable: {e}")
    if args.chart:
        if chart_error:
            problems.append("chart: " + chart_error)
        else:
            with open(args.chart, "rb") as f:
                if f.read(8) != b"\x89PNG\r\n\x1a\n":
                    problems.append("chart is not a PNG")
    return problems


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
