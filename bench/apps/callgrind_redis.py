#!/usr/bin/env python3
"""Instructions a Redis server executes for a fixed load, per allocator.

Throughput on a 2-core machine moves by 10-50% from run to run (the server
and redis-benchmark share the cores); instruction counts do not.  This runs
redis-server under `valgrind --tool=callgrind` once per allocator (brisk by
LD_PRELOAD of the build's libbrisk.so, jemalloc, tcmalloc and mimalloc the
same way; Debian's redis-server is linked against jemalloc, so the jemalloc
row is its default), sends the same redis-benchmark load to each, and
reports the instructions of the whole server and of the allocator's
library, in total and per request.  The allocator's share is what the
allocator costs Redis; the total includes Redis's own work, which is the
same under every allocator.

    bench/apps/callgrind_redis.py                        # brisk and jemalloc, ~1 minute
    bench/apps/callgrind_redis.py --allocators brisk,jemalloc,tcmalloc,mimalloc

Each run checks that every benchmark test reported a rate and that the
server exited cleanly after SHUTDOWN.  Exit status 1 if a run failed, 2 on
a set-up error; with --smoke (200 requests per test, for ctest) 77 when a
tool is missing.
"""

import argparse
import collections
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(HERE))
import compare as C  # noqa: E402  (bench/compare.py: the allocators' libraries)

TESTS = "set,get,incr,lpush,lpop,hset"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ping(port):
    return subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True,
                          text=True).stdout.strip() == "PONG"


def by_object(path):
    """Self cost (instructions) per ELF object in a callgrind output file."""
    names, totals = {}, collections.Counter()
    obj, after_calls = None, False
    with open(path) as f:
        for line in f:
            if line.startswith("ob="):
                m = re.match(r"\((\d+)\)(?: (.*))?", line[3:].strip())
                if m:
                    if m.group(2):
                        names[m.group(1)] = m.group(2)
                    obj = names.get(m.group(1), "?")
                else:
                    obj = line[3:].strip()
            elif line.startswith("cob="):
                m = re.match(r"\((\d+)\) (.*)", line[4:].strip())
                if m:
                    names[m.group(1)] = m.group(2)
            elif line.startswith("calls="):
                after_calls = True          # the next cost line is a call's inclusive cost
            elif line[:1].isdigit() or line[:1] in "+-*":
                if after_calls:
                    after_calls = False
                    continue
                parts = line.split()
                if obj is not None and len(parts) >= 2:
                    totals[obj] += int(parts[1])
    return totals


def run_one(name, lib, requests, clients, work):
    port = free_port()
    out = os.path.join(work, name + ".callgrind.%p")   # %p: a forked child writes its own
    log = open(os.path.join(work, name + ".log"), "w")
    env = dict(os.environ)
    cmd = ["valgrind", "--tool=callgrind", "--trace-children=yes",
           "--callgrind-out-file=" + out, "env"]
    if lib:
        cmd.append("LD_PRELOAD=" + lib)
    cmd += ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", work]
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        for _ in range(300):
            if ping(port):
                break
            if server.poll() is not None:
                raise RuntimeError("redis-server exited at start")
            time.sleep(0.2)
        else:
            raise RuntimeError("redis-server did not answer PING")
        bench = subprocess.run(["redis-benchmark", "-p", str(port), "-q", "-n", str(requests),
                                "-c", str(clients), "-r", "10000", "-d", "64", "-t", TESTS,
                                "--csv"], capture_output=True, text=True, timeout=1800)
        rates = [l for l in bench.stdout.splitlines() if l.startswith('"') and "test" not in l]
        if bench.returncode != 0 or len(rates) != len(TESTS.split(",")):
            raise RuntimeError("redis-benchmark: %s" % (bench.stdout + bench.stderr)[-500:])
        subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True)
        if server.wait(timeout=120) != 0:
            raise RuntimeError("redis-server exited with status %d" % server.returncode)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        log.close()
    totals = by_object(out.replace("%p", str(server.pid)))   # env execs: same pid
    total = sum(totals.values())
    alloc = sum(v for k, v in totals.items() if os.path.realpath(k) == os.path.realpath(lib))
    if alloc == 0:
        raise RuntimeError("no instructions in %s: was it preloaded?" % lib)
    return total, alloc


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--allocators", default="brisk,jemalloc",
                    help="comma-separated (brisk, jemalloc, tcmalloc, mimalloc; default brisk,jemalloc)")
    ap.add_argument("--build-dir", default=os.path.join(C.REPO, "build", "release"))
    ap.add_argument("--lib", action="append", default=[], metavar="NAME=PATH",
                    help="library to preload for allocator NAME instead of the default")
    ap.add_argument("--requests", type=int, default=5000, help="requests per test (default 5000)")
    ap.add_argument("--clients", type=int, default=4, help="redis-benchmark clients (default 4)")
    ap.add_argument("--smoke", action="store_true",
                    help="200 requests per test; exit 77 (skip) when a tool is missing")
    args = ap.parse_args()
    if args.smoke:
        args.requests = 200
    for tool in ("valgrind", "redis-server", "redis-benchmark", "redis-cli"):
        if not shutil.which(tool):
            print("callgrind_redis: %s not found (scripts/deps.sh installs it)" % tool,
                  file=sys.stderr)
            return 77 if args.smoke else 2
    libs = dict(C.BASELINES)
    libs["brisk"] = os.path.join(args.build_dir, "libbrisk.so")
    for spec in args.lib:
        name, _, path = spec.partition("=")
        libs[name] = path
    names = [a for a in args.allocators.split(",") if a]
    for a in names:
        if a not in libs or a == "glibc":
            print("callgrind_redis: unknown allocator %r (glibc: Redis is linked against "
                  "jemalloc, so it cannot run glibc's malloc)" % a, file=sys.stderr)
            return 2
        if not os.path.exists(libs[a]):
            print("callgrind_redis: %s: %s not found" % (a, libs[a]), file=sys.stderr)
            return 2
    nreq = args.requests * len(TESTS.split(","))
    print("redis-server under callgrind: redis-benchmark -c %d -r 10000 -d 64 -t %s, "
          "%d requests per test (%d in all)\n" % (args.clients, TESTS, args.requests, nreq))
    print("| allocator | instructions (M) | vs %s | in the allocator (M) | vs %s | "
          "allocator instructions per request |" % (names[-1], names[-1]))
    print("|---|---:|---:|---:|---:|---:|")
    results, failed = {}, False
    work = tempfile.mkdtemp(prefix="callgrind_redis.")
    try:
        for a in names:
            try:
                results[a] = run_one(a, libs[a], args.requests, args.clients, work)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                print("callgrind_redis: %s: %s" % (a, e), file=sys.stderr)
                failed = True
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ref = results.get(names[-1])
    for a in names:
        if a not in results:
            print("| %s | failed | | | | |" % a)
            continue
        total, alloc = results[a]
        print("| %s | %.1f | %s | %.1f | %s | %.0f |" % (
            a, total / 1e6, "%.3f" % (total / ref[0]) if ref else "-", alloc / 1e6,
            "%.3f" % (alloc / ref[1]) if ref and ref[1] else "-", alloc / nreq))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
