#!/usr/bin/env python3
"""Compare brisk with glibc, jemalloc, tcmalloc and mimalloc.

Runs every workload of brisk_workloads under each allocator (brisk and the
baselines by LD_PRELOAD, glibc with no preload), interleaved run by run,
counts the instructions of each allocator's malloc/free fast path with
callgrind, and prints a markdown report: the machine, the exact command, the
options of every allocator, a table of median times and peak RSS with ratios
against jemalloc, geometric means, the fast-path counts, and whether brisk
meets its targets.  The memory workloads (decay, churn, reuse) get a section
of their own; decay's time (mostly a 2 s wait) is left out of the time
means, and churn also runs under brisk-nodecay (brisk with
BRISK_CONF=decay_ms=never), the reference of a throughput target.

    bench/compare.py                  quick: scale short, 3 repetitions (8-11 minutes)
    bench/compare.py --full           scale full, 7 repetitions (about 95 minutes)
    bench/compare.py --smoke          each allocator once on larson and the memory
                                      workloads, scale tiny, no callgrind; checks the
                                      outputs are produced

    --build-dir DIR     where libbrisk.so and the bench programs are (default
                        build/release; configure it with -DBRISK_BUILD_BENCH=ON)
    --json PATH         write all runs and summaries as JSON
    --chart PATH        render a PNG chart with gnuplot
    --report PATH       also write the markdown report to PATH
    --no-callgrind      skip the fast-path instruction counts

Standard library only.  Progress goes to stderr, the report to stdout.
Exit status: 0, or 1 when a run failed (the report lists it) or, with
--smoke, when an output is missing.
"""

import argparse
import concurrent.futures
import datetime
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBDIR = "/usr/lib/x86_64-linux-gnu"

# name -> library to preload (None: no preload).  brisk's is found in the
# build directory.
BASELINES = [
    ("glibc", None),
    ("jemalloc", LIBDIR + "/libjemalloc.so.2"),
    ("tcmalloc", LIBDIR + "/libtcmalloc_minimal.so.4"),
    ("mimalloc", LIBDIR + "/libmimalloc.so.2"),
]
ALLOCATOR_ORDER = ["brisk"] + [name for name, _ in BASELINES]

# The environment variables through which each allocator takes options.  They
# are passed through unchanged; the report says which are set.
# (names, prefixes, how the report names them)
OPTION_VARS = {
    "brisk": (["BRISK_CONF"], [], "BRISK_CONF"),
    "glibc": (["GLIBC_TUNABLES", "MALLOC_ARENA_MAX", "MALLOC_ARENA_TEST", "MALLOC_CHECK_",
               "MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_PERTURB_",
               "MALLOC_TOP_PAD_", "MALLOC_TRIM_THRESHOLD_"], [],
              "GLIBC_TUNABLES and the MALLOC_*_ variables"),
    "jemalloc": (["MALLOC_CONF", "JE_MALLOC_CONF"], [], "MALLOC_CONF"),
    "tcmalloc": ([], ["TCMALLOC_"], "TCMALLOC_*"),
    "mimalloc": ([], ["MIMALLOC_"], "MIMALLOC_*"),
}

DEFAULT_WORKLOADS = ["larson", "xmalloc", "cache-scratch", "cache-thrash",
                     "fragmentation", "server", "large", "decay", "churn", "reuse"]

# The memory workloads (issue 4).  decay's time is mostly its 2 s wait, so it
# is not a figure of merit: it is left out of the time means (its result
# line says merit=memory, and main() adds any other workload whose line says
# so); churn and reuse are timed like the others.  Their
# memory figures go to the report's "Memory" section.
MEMORY_WORKLOADS = ["decay", "churn", "reuse"]
UNTIMED_WORKLOADS = {"decay"}

# brisk with time-based decay switched off, run for churn only: the
# throughput target compares brisk with it.
NODECAY = "brisk-nodecay"
NODECAY_CONF = "decay_ms=never"
NODECAY_WORKLOADS = ["churn"]

# Fast-path instruction counts: sizes, batches, and the two pair counts
# whose difference cancels start-up and exit.
FASTPATH_SIZES = [32, 512, 8192]
FASTPATH_BATCHES = [1, 100]
FASTPATH_N1, FASTPATH_N2 = 100000, 200000

# brisk's targets (issue 3).
TARGET_FASTPATH = 45        # instructions per malloc/free pair, every size
TARGET_TIME_VS_JE = 0.8     # geometric mean wall time, x jemalloc
TARGET_RSS_VS_JE = 1.0      # geometric mean peak RSS, x jemalloc
# brisk's memory targets (issue 4).
TARGET_DECAY_2S_PCT = 10.0  # decay: RSS 2 s after the frees, % of peak (below)
TARGET_TRIM_PCT = 5.0       # decay: RSS after the release call, % of peak (below)
TARGET_CHURN_RSS_LIVE = 1.2  # churn: (RSS - base) / live, max over the run (at most)
TARGET_HUGEPAGE = 0.5       # churn: AnonHugePages / RSS, median (above; THP on)
TARGET_MAPS = 1000          # churn: lines of /proc/self/maps, max (below)
TARGET_NODECAY_SLOWDOWN = 0.03  # churn: throughput at most 3% below brisk-nodecay

MODES = {
    # mode: (scale, repetitions)
    "smoke": ("tiny", 1),
    "quick": ("short", 3),
    "full": ("full", 7),
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Finding things


def resolve_build_dir(path):
    if os.path.isabs(path) or os.path.isdir(path):
        return os.path.abspath(path)
    return os.path.join(REPO, path)


def find_program(build_dir, name, subdirs):
    for sub in subdirs:
        p = os.path.join(build_dir, sub, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    for root, dirs, files in os.walk(build_dir):
        dirs[:] = [d for d in dirs if d != "CMakeFiles"]
        if name in files and os.access(os.path.join(root, name), os.X_OK):
            return os.path.join(root, name)
    return None


def capture(cmd, **kw):
    """stdout of cmd, or None if it cannot run or fails."""
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True, timeout=60, **kw)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout if r.returncode == 0 else None


def package_version(path):
    """'libjemalloc2 5.3.0-1' for a file installed by a Debian package."""
    owner = capture(["dpkg-query", "-S", os.path.realpath(path)])
    if not owner:
        return None
    pkg = owner.split(":")[0].strip()
    version = capture(["dpkg-query", "-W", "-f=${Version}", pkg])
    return f"{pkg} {version}" if version else pkg


def brisk_version():
    version = None
    try:
        with open(os.path.join(REPO, "CMakeLists.txt")) as f:
            m = re.search(r"project\(brisk VERSION ([0-9.]+)", f.read())
            version = m.group(1) if m else None
    except OSError:
        pass
    rev = capture(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
    if rev:
        dirty = capture(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"])
        rev = rev.strip() + ("+local changes" if dirty else "")
    parts = [p for p in (version and "brisk " + version, rev and "git " + rev) if p]
    return ", ".join(parts) or None


def allocator_options(name, env):
    names, prefixes, described = OPTION_VARS[name]
    found = [f"`{k}={env[k]}`" for k in sorted(env)
             if k in names or any(k.startswith(p) for p in prefixes)]
    if found:
        return "from the environment: " + " ".join(found)
    return f"defaults ({described} unset)"


# ---------------------------------------------------------------------------
# The machine


def read_file(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def thp_mode():
    """The transparent-hugepage mode: "always", "madvise", "never" or None."""
    m = re.search(r"\[(\w+)\]", read_file("/sys/kernel/mm/transparent_hugepage/enabled"))
    return m.group(1) if m else None


def machine_info(topology_bin):
    u = os.uname()
    cpuinfo = read_file("/proc/cpuinfo")
    m = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M)
    model = m.group(1).strip() if m else platform.processor() or "unknown"
    m = re.search(r"^MemTotal:\s*(\d+) kB", read_file("/proc/meminfo"), re.M)
    mem = int(m.group(1)) * 1024 if m else 0
    info = {
        "uname": f"{u.sysname} {u.nodename} {u.release} {u.version} {u.machine}",
        "cpu_model": model,
        "cpus_online": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "memory_bytes": mem,
        "load_average_start": list(os.getloadavg()),
        "glibc": " ".join(platform.libc_ver()),
        "thp": thp_mode(),
        "topology": None,
    }
    if topology_bin:
        info["topology"] = capture([topology_bin])
    return info


# ---------------------------------------------------------------------------
# One timed run


def run_timed(cmd, env, timeout):
    """Runs cmd; returns (exit code, stdout, stderr, wall s, rusage)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        timer = threading.Timer(timeout, lambda: proc.send_signal(signal.SIGKILL))
        timer.start()
        try:
            _, status, rusage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: no wait later
        out.seek(0)
        err.seek(0)
        return (proc.returncode, out.read().decode(errors="replace"),
                err.read().decode(errors="replace"), wall, rusage)


def parse_result(stdout):
    """The key=value fields of the workload's last 'result' line."""
    fields = None
    for line in stdout.splitlines():
        if line.startswith("result "):
            fields = dict(tok.split("=", 1) for tok in line.split()[1:] if "=" in tok)
    return fields


def run_workload(args, alloc, workload, rep):
    cmd = [args.workloads_bin, workload, "--scale", args.scale]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.seed is not None:
        cmd += ["--seed", str(args.seed)]
    if args.expect_allocator:
        cmd += ["--expect-allocator", alloc.get("expect", alloc["name"])]
    load1 = os.getloadavg()[0]
    code, out, err, wall, ru = run_timed(cmd, alloc["env"], args.timeout)
    fields = parse_result(out) or {}
    ok = code == 0 and fields.get("check") == "ok"
    rec = {
        "workload": workload,
        "allocator": alloc["name"],
        "rep": rep,
        "load1": load1,
        "ok": ok,
        "exit_code": code,
        "wall_s": wall,
        "user_s": ru.ru_utime,
        "sys_s": ru.ru_stime,
        "cpu_s": ru.ru_utime + ru.ru_stime,
        "ru_maxrss_bytes": ru.ru_maxrss * 1024,
        "result": fields,
    }
    # Peak RSS: the program's own VmHWM when it reports it (brisk_workloads
    # does, as peak_rss_bytes).  ru_maxrss is kept but not preferred: the
    # kernel folds the RSS of the process that spawned the program, as it
    # was at exec, into the child's ru_maxrss, which puts a floor of this
    # Python process's RSS (15-20 MiB) under every small workload.
    if fields.get("peak_rss_bytes", "").isdigit():
        rec["peak_rss_bytes"] = int(fields["peak_rss_bytes"])
        rec["peak_rss_source"] = "VmHWM"
    else:
        rec["peak_rss_bytes"] = rec["ru_maxrss_bytes"]
        rec["peak_rss_source"] = "ru_maxrss"
    try:
        rec["seconds"] = float(fields["seconds"])
    except (KeyError, ValueError):
        rec["seconds"] = None
    if not ok:
        rec["seconds"] = None
        tail = (out.strip().splitlines()[-3:] + err.strip().splitlines()[-5:])
        rec["failure"] = ("killed after %d s" % args.timeout if code == -signal.SIGKILL
                          else "exit %d" % code)
        rec["output_tail"] = tail
    return rec


# ---------------------------------------------------------------------------
# Callgrind fast-path counts


def callgrind_count(fastpath_bin, lib, size, pairs, batch, null=False):
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
           "--trace-children=yes", "env"]
    if lib:
        cmd.append("LD_PRELOAD=" + lib)
    cmd += [fastpath_bin, str(size), str(pairs), str(batch)]
    if null:
        cmd.append("--null")
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=env, timeout=600)
    counts = re.findall(r"^==\d+== Collected : (\d+)", r.stderr, re.M)
    if r.returncode != 0 or not counts:
        raise RuntimeError("callgrind failed: %s\n%s" % (" ".join(cmd), r.stderr[-2000:]))
    return int(counts[-1])


def run_callgrind(args, allocators):
    """{allocator: {"32": x, "32x100": y, ...}}, plus "loop" for --null."""
    jobs = []
    for alloc in allocators:
        for size in FASTPATH_SIZES:
            for batch in FASTPATH_BATCHES:
                jobs.append((alloc["name"], alloc["lib"], size, batch, False))
    # The loop alone does not depend on the size: one per batch.
    for batch in FASTPATH_BATCHES:
        jobs.append(("loop", None, FASTPATH_SIZES[0], batch, True))

    def one(job):
        name, lib, size, batch, null = job
        c1 = callgrind_count(args.fastpath_bin, lib, size, FASTPATH_N1, batch, null)
        c2 = callgrind_count(args.fastpath_bin, lib, size, FASTPATH_N2, batch, null)
        return job, (c2 - c1) / (FASTPATH_N2 - FASTPATH_N1)

    results = {}
    workers = max(1, min(len(os.sched_getaffinity(0)), 8))
    log(f"compare: callgrind fast-path counts: {len(jobs) * 2} valgrind runs, {workers} at a time")
    done = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for job, per_pair in pool.map(one, jobs):
            name, _, size, batch, null = job
            for sz in (FASTPATH_SIZES if null else [size]):
                results.setdefault(name, {})[fastpath_key(sz, batch)] = per_pair
            done += 1
            log(f"[callgrind {done:2d}/{len(jobs)}] {name:9s} "
                + ("any size  " if null else f"size {size:5d}")
                + f" batch {batch:3d}: {per_pair:.1f} instructions/pair")
    return results


def fastpath_key(size, batch):
    return f"{size}" if batch == 1 else f"{size}x{batch}"


def fastpath_label(size, batch):
    return f"{size} B" if batch == 1 else f"{size} B, batch {batch}"


def key_label(key):
    size, _, batch = key.partition("x")
    return fastpath_label(int(size), int(batch or 1))


# ---------------------------------------------------------------------------
# Statistics


def geomean(values):
    values = [v for v in values if v is not None and v > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def summarize(runs, workloads, allocators, baseline):
    """Per workload and allocator: medians, spread and ratios to baseline."""
    summary = {}
    for w in workloads:
        summary[w] = {}
        for a in allocators:
            rs = [r for r in runs if r["workload"] == w and r["allocator"] == a]
            ok = [r for r in rs if r["ok"]]
            s = {"runs": len(rs), "ok": len(ok), "failed": len(rs) - len(ok)}
            if ok:
                secs = [r["seconds"] for r in ok]
                s["seconds"] = statistics.median(secs)
                s["seconds_min"] = min(secs)
                s["seconds_max"] = max(secs)
                s["wall_s"] = statistics.median(r["wall_s"] for r in ok)
                s["cpu_s"] = statistics.median(r["cpu_s"] for r in ok)
                s["peak_rss_bytes"] = statistics.median(r["peak_rss_bytes"] for r in ok)
                live = [int(r["result"]["peak_live_bytes"]) for r in ok
                        if r["result"].get("peak_live_bytes", "").isdigit()]
                s["peak_live_bytes"] = statistics.median(live) if live else None
            summary[w][a] = s
        base = summary[w].get(baseline, {})
        for a in allocators:
            s = summary[w][a]
            for key, ratio in (("seconds", "time_ratio"), ("wall_s", "wall_ratio"),
                               ("cpu_s", "cpu_ratio"), ("peak_rss_bytes", "rss_ratio")):
                if s.get(key) and base.get(key):
                    s[ratio] = s[key] / base[key]
                else:
                    s[ratio] = None
    # decay's time is its wait: it is left out of the time means (not out
    # of the peak RSS mean).
    timed = timed_workloads(workloads)
    means = {}
    for a in allocators:
        m = {}
        for ratio in ("time_ratio", "wall_ratio", "cpu_ratio"):
            m[ratio] = geomean(summary[w][a][ratio] for w in timed)
        m["rss_ratio"] = geomean(summary[w][a]["rss_ratio"] for w in workloads)
        m["workloads"] = sum(1 for w in timed if summary[w][a]["time_ratio"] is not None)
        m["rss_workloads"] = sum(1 for w in workloads if summary[w][a]["rss_ratio"] is not None)
        means[a] = m
    return summary, means


def timed_workloads(workloads):
    """The workloads whose time counts in the time means."""
    return [w for w in workloads if w not in UNTIMED_WORKLOADS]


def result_float(run, key):
    try:
        return float(run["result"][key])
    except (KeyError, TypeError, ValueError):
        return None


# The memory figures: (workload, result field, key in the summary).
MEMORY_FIELDS = [
    ("decay", "pct_free", "decay_pct_free"),
    ("decay", "pct_1s", "decay_pct_1s"),
    ("decay", "pct_2s", "decay_pct_2s"),
    ("decay", "pct_trim", "decay_pct_trim"),
    ("decay", "peak_rss_bytes", "decay_peak_rss_bytes"),
    ("churn", "churn_ops_per_sec", "churn_ops_per_sec"),
    ("churn", "live_bytes", "churn_live_bytes"),
    ("churn", "rss_over_live_median", "churn_rss_over_live_median"),
    ("churn", "rss_over_live_max", "churn_rss_over_live_max"),
    ("churn", "hugepage_coverage_median", "churn_hugepage_coverage"),
    ("churn", "maps_max", "churn_maps_max"),
    ("reuse", "faults_per_iter", "reuse_faults_per_iter"),
    ("reuse", "iters_per_sec", "reuse_iters_per_sec"),
]


def summarize_memory(runs, workloads, allocators):
    """Per allocator: the median over the repetitions of each memory figure
    (None where the workload was not run or failed), decay's release entry
    point, and the THP mode churn saw."""
    memory = {}
    for a in allocators:
        m = {}
        for w, field, key in MEMORY_FIELDS:
            vals = [result_float(r, field) for r in runs
                    if r["workload"] == w and r["allocator"] == a and r["ok"]]
            vals = [v for v in vals if v is not None]
            m[key] = statistics.median(vals) if vals else None
        trims = {r["result"].get("trim") for r in runs
                 if r["workload"] == "decay" and r["allocator"] == a and r["ok"]} - {None}
        m["decay_trim"] = ", ".join(sorted(trims)) or None
        thp = {r["result"].get("thp") for r in runs
               if r["workload"] == "churn" and r["allocator"] == a and r["ok"]} - {None}
        m["churn_thp"] = ", ".join(sorted(thp)) or None
        if any(m[k] is not None for k in m):
            memory[a] = m
    return memory


def judge_targets(allocators, baseline, summary, means, fastpath, fastpath_note, workloads,
                  memory=None, thp=None, scale="full"):
    """[(target, measured, verdict)] with verdict True, False or None."""
    if "brisk" not in allocators:
        return [("brisk's targets", "brisk was not run (--allocators)", None)]
    out = []
    n_workloads = len(timed_workloads(workloads))
    # A workload that failed under brisk fails the time and RSS targets.
    brisk_failed = [w for w in workloads if "brisk" in summary[w] and summary[w]["brisk"]["failed"]]
    if fastpath is not None:
        if "brisk" in fastpath:
            worst_key = max(fastpath["brisk"], key=fastpath["brisk"].get)
            worst = fastpath["brisk"][worst_key]
            out.append((f"fast path <= {TARGET_FASTPATH} instructions per malloc/free pair "
                        "at every measured size",
                        f"worst {worst:.1f} (at {key_label(worst_key)}), best "
                        f"{min(fastpath['brisk'].values()):.1f}",
                        worst <= TARGET_FASTPATH))
    else:
        out.append((f"fast path <= {TARGET_FASTPATH} instructions per malloc/free pair "
                    "at every measured size", "not measured: " + (fastpath_note or "?"), None))
    b = means.get("brisk", {})
    complete = b.get("workloads", 0) == n_workloads
    if baseline != "jemalloc":
        out.append((f"geometric mean wall time <= {TARGET_TIME_VS_JE}x jemalloc", "jemalloc not run",
                    None))
        out.append(("geometric mean peak RSS <= jemalloc's", "jemalloc not run", None))
    elif brisk_failed:
        why = "brisk failed on " + ", ".join(brisk_failed)
        out.append((f"geometric mean wall time <= {TARGET_TIME_VS_JE}x jemalloc", why, False))
        out.append(("geometric mean wall time <= the best of tcmalloc and mimalloc", why, False))
        out.append(("geometric mean peak RSS <= jemalloc's", why, False))
    else:
        t = b.get("time_ratio")
        out.append((f"geometric mean wall time <= {TARGET_TIME_VS_JE}x jemalloc",
                    f"{t:.3f}x" + ("" if complete else " (not every workload)") if t else "no data",
                    (t <= TARGET_TIME_VS_JE) if t else None))
        others = {a: means[a]["time_ratio"] for a in ("tcmalloc", "mimalloc")
                  if a in means and means[a]["time_ratio"]}
        if others and t:
            best = min(others, key=others.get)
            out.append(("geometric mean wall time <= the best of tcmalloc and mimalloc",
                        f"brisk {t:.3f}x, {best} {others[best]:.3f}x (x jemalloc)",
                        t <= others[best]))
        else:
            out.append(("geometric mean wall time <= the best of tcmalloc and mimalloc",
                        "tcmalloc and mimalloc not run" if not others else "no data",
                        None))
        r = b.get("rss_ratio")
        out.append((f"geometric mean peak RSS <= jemalloc's",
                    f"{r:.3f}x" if r else "no data",
                    (r <= TARGET_RSS_VS_JE) if r else None))
    out += judge_memory_targets(workloads, summary, memory or {}, thp, scale)
    return out


def judge_memory_targets(workloads, summary, memory, thp, scale="full"):
    """brisk's memory targets (issue 4), for the memory workloads that ran.

    The issue states the decay and churn targets for the sizes of scale
    full (a 1 GiB heap; 200 MiB live for 60 s).  At a smaller scale they are
    still judged, but the measured column says so: a fixed allowance such
    as brisk's dirty_max (64 MiB of free memory kept for reuse) is a larger
    share of a smaller heap."""
    out = []
    b = memory.get("brisk", {})
    at_scale = "" if scale == "full" else f"; at scale {scale}, the target is for scale full"

    def failed(w):
        return "brisk" in summary.get(w, {}) and summary[w]["brisk"]["ok"] == 0

    def judge(w, target, value, text, ok):
        if failed(w):
            out.append((target, f"{w} failed under brisk", False))
        elif value is None:
            out.append((target, "no data", None))
        else:
            out.append((target, text, ok))

    if "decay" in workloads:
        v = b.get("decay_pct_2s")
        judge("decay", f"decay: RSS 2 s after the frees < {TARGET_DECAY_2S_PCT:g}% of peak",
              v, f"{v:.1f}%{at_scale}" if v is not None else "",
              v is not None and v < TARGET_DECAY_2S_PCT)
        v = b.get("decay_pct_trim")
        judge("decay", f"decay: RSS after brisk_release_memory() < {TARGET_TRIM_PCT:g}% of peak",
              v, f"{v:.1f}%" if v is not None else "", v is not None and v < TARGET_TRIM_PCT)
    if "churn" in workloads:
        v = b.get("churn_rss_over_live_max")
        judge("churn", f"churn: RSS / live <= {TARGET_CHURN_RSS_LIVE:g} (max over the run)",
              v, f"{v:.2f} (median {fmt(b.get('churn_rss_over_live_median'), '.2f')}{at_scale})"
              if v is not None else "", v is not None and v <= TARGET_CHURN_RSS_LIVE)
        v = b.get("churn_hugepage_coverage")
        target = f"churn: hugepage coverage > {TARGET_HUGEPAGE * 100:g}% (when THP is available)"
        if thp == "never":
            out.append((target, "THP is off on this machine ([never])", None))
        else:
            judge("churn", target, v,
                  f"{v * 100:.0f}% (THP {thp or '?'})" if v is not None else "",
                  v is not None and v > TARGET_HUGEPAGE)
        v = b.get("churn_maps_max")
        judge("churn", f"churn: fewer than {TARGET_MAPS} mappings (/proc/self/maps lines, max)",
              v, f"{v:.0f}" if v is not None else "", v is not None and v < TARGET_MAPS)
        target = (f"churn: throughput within {TARGET_NODECAY_SLOWDOWN * 100:g}% of brisk with "
                  f"decay off ({NODECAY})")
        v = b.get("churn_ops_per_sec")
        nd = memory.get(NODECAY, {}).get("churn_ops_per_sec")
        if nd is None and not failed("churn"):
            out.append((target, f"{NODECAY} not run or failed", None))
        else:
            judge("churn", target, v,
                  f"{v / nd:.3f}x ({v / 1e6:.2f} vs {nd / 1e6:.2f} M ops/s)"
                  if v is not None and nd else "",
                  v is not None and bool(nd) and v >= (1 - TARGET_NODECAY_SLOWDOWN) * nd)
    return out


# ---------------------------------------------------------------------------
# Report


def fmt(v, spec, missing="–"):
    return missing if v is None else format(v, spec)


def mib(b):
    return None if b is None else b / (1 << 20)


def md_table(header, rows, align=None):
    align = align or ["---"] * len(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_report(ctx):
    a = ctx["args"]
    m = ctx["machine"]
    base = ctx["baseline"]
    out = []
    out.append("# brisk allocator comparison")
    out.append("")
    if a.mode == "smoke":
        out.append("**Smoke run** (tiny scale, one run each): checks that the harness works; "
                   "the numbers are not a measurement.")
        out.append("")
    out.append(f"- date: {ctx['date']}")
    out.append(f"- machine: {m['uname']}")
    out.append(f"- CPU: {m['cpu_model']}; {m['cpus_online']} CPUs online, "
               f"{m['cpus_usable']} usable by this process")
    out.append(f"- memory: {m['memory_bytes'] / (1 << 30):.1f} GiB; {m['glibc']}; "
               f"transparent hugepages: {m.get('thp') or 'unknown'}")
    out.append("- load average (1, 5, 15 minutes): %s at the start, %s at the end" % (
                   " ".join("%.2f" % x for x in m["load_average_start"]),
                   " ".join("%.2f" % x for x in ctx["load_average_end"])))
    busy = m["load_average_start"][0] > 0.5 * m["cpus_usable"]
    loads = [r["load1"] for r in ctx["runs"] if "load1" in r]
    if loads:
        out.append("- 1-minute load average when the timed runs started: median %.2f, max %.2f "
                   "(the benchmark's own threads count in it)" % (
                       statistics.median(loads), max(loads)))
    out.append(f"- command: `{ctx['command']}`")
    out.append(f"- mode: {a.mode}: workloads at scale `{a.scale}`, "
               f"{a.reps} repetition{'s' if a.reps != 1 else ''} per workload and allocator, "
               "interleaved (each repetition runs every workload under every allocator, "
               "the allocator order rotated from one workload and repetition to the next); "
               + (f"{a.threads} threads" if a.threads else "each workload's default threads")
               + (f", seed {a.seed}" if a.seed is not None else ""))
    out.append(f"- total time of the comparison: {ctx['elapsed_s']:.0f} s")
    out.append("")
    if busy and a.mode != "smoke":
        out.append(f"**Warning: the machine was busy** (1-minute load average "
                   f"{m['load_average_start'][0]:.2f} on {m['cpus_usable']} CPUs before the "
                   "first run): other processes competed for the CPUs, so the times are noisy "
                   "(the `spread` column shows how much); compare them with care, and prefer "
                   "a run on an idle machine.  Peak RSS depends little on the load, and the "
                   "instruction counts not at all.")
        out.append("")
    if m.get("topology"):
        out.append("Topology (bench/topology):")
        out.append("")
        out.append("```")
        out.append(m["topology"].rstrip())
        out.append("```")
        out.append("")
    else:
        out.append("Topology: not available (brisk_topology is built only with hwloc).")
        out.append("")

    out.append("## Allocators")
    out.append("")
    rows = []
    for al in ctx["allocators"]:
        rows.append([al["name"], f"`{al['lib']}`" if al["lib"] else "(none: the libc malloc)",
                     al["version"] or "?", al["options"]])
    nd = ctx.get("nodecay")
    if nd:
        rows.append([nd["name"], f"`{nd['lib']}`", nd["version"] or "?",
                     nd["options"] + " (" + ", ".join(NODECAY_WORKLOADS) + " only)"])
    out.append(md_table(["allocator", "LD_PRELOAD", "version", "options"], rows))
    for name, why in ctx["skipped"]:
        out.append(f"\nSkipped: **{name}**: {why}.")
    out.append("")
    if all(al["options"].startswith("defaults") for al in ctx["allocators"]):
        out.append("Every allocator runs with its default options: nothing is tuned"
                   + (f" (`{NODECAY}` is brisk with decay switched off, the reference "
                      "of the churn throughput target)." if nd else "."))
    else:
        out.append("Options set in the environment are passed through as shown (the driver "
                   "changes none); the other allocators run with their defaults.")
    out.append("")

    # Targets first: they are the point.
    out.append("## brisk's targets (issues 3 and 4)")
    out.append("")
    rows = []
    for target, measured, verdict in ctx["targets"]:
        v = {True: "met", False: "**NOT met**", None: "not judged"}[verdict]
        rows.append([target, measured, v])
    out.append(md_table(["target", "measured", "verdict"], rows))
    out.append("")
    missed = [t for t, _, v in ctx["targets"] if v is False]
    if a.mode == "smoke":
        out.append("(Smoke run: the verdicts above mean nothing.)")
    elif missed:
        out.append(f"brisk falls short of {len(missed)} of {len(ctx['targets'])} targets: "
                   + "; ".join(missed) + ".")
    elif all(v for _, _, v in ctx["targets"]):
        out.append("brisk meets every target in this run.")
    else:
        out.append("brisk misses no target that could be judged in this run.")
    out.append("")

    out.append(f"## Workloads (medians; ratios against {base})")
    out.append("")
    sources = sorted({r.get("peak_rss_source") for r in ctx["runs"] if r["ok"]} - {None})
    rss_text = {
        "VmHWM": "the program's own high-water mark (VmHWM, which brisk_workloads reports "
                 "as peak_rss_bytes; ru_maxrss is in the JSON, but it is floored at this "
                 "driver's own RSS, which the kernel counts for a child at exec)",
        "ru_maxrss": "ru_maxrss from wait4 (floored at this driver's RSS at exec, 15-20 MiB)",
    }
    out.append("`time` is the workload's own measured seconds (what the ratio uses); `wall` is "
               "the whole process, start-up and exit included; `CPU` is user + system time of "
               "the process (wait4); `peak RSS` is "
               + " or ".join(rss_text[x] for x in sources if x in rss_text)
               + ".  `spread` is (max - min) / median of `time` over the repetitions.")
    untimed = [w for w in ctx["workloads"] if w in UNTIMED_WORKLOADS]
    if untimed:
        out.append("")
        out.append(", ".join(untimed) + ": the time includes a wait in which the program does "
                   "not call the allocator (decay waits 2 s, 0.3 s at scale tiny), so it is not "
                   "a figure of merit and is left out of the time means (not out of the peak "
                   "RSS mean); its figures are in the Memory section.")
    out.append("")
    rows = []
    for w in ctx["workloads"]:
        for al in ctx["allocator_names"]:
            s = ctx["summary"][w][al]
            if not s["ok"]:
                rows.append([w, al, "FAILED", "", "", "", "", "", "", f"0/{s['runs']}"])
                continue
            spread = ((s["seconds_max"] - s["seconds_min"]) / s["seconds"]
                      if s["seconds"] else None)
            rows.append([
                w + (" (untimed)" if w in UNTIMED_WORKLOADS else ""),
                f"**{al}**" if al == "brisk" else al,
                fmt(s["seconds"], ".3f"), fmt(s["time_ratio"], ".2f"),
                fmt(spread * 100 if spread is not None else None, ".0f") + "%",
                fmt(s["wall_s"], ".3f"), fmt(s["cpu_s"], ".3f"),
                fmt(mib(s["peak_rss_bytes"]), ".1f"), fmt(s["rss_ratio"], ".2f"),
                f"{s['ok']}/{s['runs']}"])
    for al in ctx["allocator_names"]:
        g = ctx["means"][al]
        rows.append(["*geometric mean*", f"**{al}**" if al == "brisk" else al, "",
                     fmt(g["time_ratio"], ".2f"), "", "", "", "", fmt(g["rss_ratio"], ".2f"),
                     f"{g['workloads']}/{len(timed_workloads(ctx['workloads']))} workloads"])
    out.append(md_table(
        ["workload", "allocator", "time s", f"time vs {base}", "spread", "wall s", "CPU s",
         "peak RSS MiB", f"RSS vs {base}", "ok runs"],
        rows, ["---", "---"] + ["---:"] * 8))
    out.append("")

    out.append(f"## Geometric means over the workloads (x {base})")
    out.append("")
    rows = []
    for al in ctx["allocator_names"]:
        g = ctx["means"][al]
        rows.append([f"**{al}**" if al == "brisk" else al, fmt(g["time_ratio"], ".3f"),
                     fmt(g["wall_ratio"], ".3f"), fmt(g["cpu_ratio"], ".3f"),
                     fmt(g["rss_ratio"], ".3f"),
                     f"{g['workloads']}/{len(timed_workloads(ctx['workloads']))}",
                     f"{g['rss_workloads']}/{len(ctx['workloads'])}"])
    out.append(md_table(["allocator", "time", "process wall", "CPU", "peak RSS",
                         "timed workloads", "RSS workloads"],
                        rows, ["---"] + ["---:"] * 6))
    out.append("")
    if untimed:
        out.append("Time, wall and CPU means leave out " + ", ".join(untimed) + ".")
        out.append("")

    out += render_memory(ctx)

    out.append("## Fast path: instructions per malloc/free pair (callgrind)")
    out.append("")
    fp = ctx["fastpath"]
    if fp is None:
        out.append(ctx.get("fastpath_note") or "Not measured.")
    else:
        keys = [(s, b) for b in FASTPATH_BATCHES for s in FASTPATH_SIZES]
        rows = []
        for name in ctx["allocator_names"] + ["loop"]:
            if name not in fp:
                continue
            label = ("loop and calls alone (`--null`)" if name == "loop"
                     else f"**{name}**" if name == "brisk" else name)
            rows.append([label] + [fmt(fp[name].get(fastpath_key(s, b)), ".1f") for s, b in keys])
        out.append(md_table(["allocator"] + [fastpath_label(s, b) for s, b in keys], rows,
                            ["---"] + ["---:"] * len(keys)))
        out.append("")
        out.append(f"(count({FASTPATH_N2} pairs) - count({FASTPATH_N1} pairs)) / "
                   f"{FASTPATH_N2 - FASTPATH_N1}, from `valgrind --tool=callgrind` running "
                   "`brisk_fastpath <size> <pairs> [batch]` under each allocator.  Batch 1: "
                   "malloc then free; batch 100: 100 mallocs, then 100 frees in allocation "
                   "order.  The figures include the benchmark's loop, the two calls and the "
                   "PLT jumps; the `--null` row is that overhead alone (the same loop calling "
                   "two empty functions, without PLT jumps).")
    out.append("")

    failed = [r for r in ctx["runs"] if not r["ok"]]
    if failed:
        out.append("## Failed runs")
        out.append("")
        for r in failed:
            out.append(f"- {r['workload']} under {r['allocator']} (repetition {r['rep']}): "
                       f"{r.get('failure')}")
            for line in r.get("output_tail", []):
                out.append(f"    {line}")
        out.append("")
    if ctx.get("outputs"):
        out.append("Outputs: " + ", ".join(f"{k} `{v}`" for k, v in ctx["outputs"].items())
                   + (" (temporary: removed when the smoke check ends)"
                      if ctx.get("temporary_outputs") else ""))
        out.append("")
    return "\n".join(out)


def render_memory(ctx):
    """The "Memory" section: decay, churn and reuse figures per allocator."""
    mem = ctx.get("memory") or {}
    ran = [w for w in MEMORY_WORKLOADS if w in ctx["workloads"]]
    if not ran:
        return []
    out = ["## Memory (decay, churn, reuse; medians over the repetitions)", ""]
    names = ctx["allocator_names"] + ([NODECAY] if NODECAY in mem else [])
    header = ["allocator"]
    align = ["---"]
    cols = []
    if "decay" in ran:
        cols += [("decay_pct_free", "decay: after free", ".1f", "%"),
                 ("decay_pct_1s", "decay: 1 s", ".1f", "%"),
                 ("decay_pct_2s", "decay: 2 s", ".1f", "%"),
                 ("decay_pct_trim", "decay: after trim", ".1f", "%")]
    if "churn" in ran:
        cols += [("churn_rss_over_live_median", "churn: RSS/live median", ".2f", ""),
                 ("churn_rss_over_live_max", "churn: RSS/live max", ".2f", ""),
                 ("churn_hugepage_coverage", "churn: hugepages", ".0f", "%"),
                 ("churn_maps_max", "churn: max maps", ".0f", ""),
                 ("churn_ops_per_sec", "churn: M ops/s", ".2f", "")]
    if "reuse" in ran:
        cols += [("reuse_faults_per_iter", "reuse: faults/iter", ".1f", ""),
                 ("reuse_iters_per_sec", "reuse: iter/s", ".0f", "")]
    for _, title, _, _ in cols:
        header.append(title)
        align.append("---:")
    rows = []
    for n in names:
        m = mem.get(n, {})
        row = [f"**{n}**" if n == "brisk" else n]
        for key, _, spec, unit in cols:
            v = m.get(key)
            if v is not None and key == "churn_hugepage_coverage":
                v *= 100
            if v is not None and key == "churn_ops_per_sec":
                v /= 1e6
            row.append(fmt(v, spec) + (unit if v is not None else ""))
        rows.append(row)
    out.append(md_table(header, rows, align))
    out.append("")
    notes = []
    if "decay" in ran:
        trims = "; ".join(f"{n} `{mem[n]['decay_trim']}`" for n in names
                          if mem.get(n, {}).get("decay_trim"))
        notes.append("**decay**: 4 threads allocate and touch 256 MiB at scale short (1 GiB "
                     "full, 16 MiB tiny; 16 B-64 KiB blocks and 1-16 MiB ones), free it all "
                     "(half by another thread) and exit; then the program waits 2 s without "
                     "calling the allocator, and finally calls the allocator's release entry "
                     "point.  RSS as a percentage of the peak (VmHWM): right after the frees, "
                     "1 s and 2 s into the wait, and after the release call"
                     + (f" ({trims})" if trims else "") + ".")
    if "churn" in ran:
        notes.append("**churn**: a steady live heap (64 MiB at scale short, 200 MiB full, 8 MiB "
                     "tiny) replaced block by block by 4 threads; sampled every 200 ms.  "
                     "RSS/live is (RSS - the RSS before the workload) / live bytes; "
                     "hugepages is AnonHugePages / RSS (median; transparent hugepages: "
                     f"{ctx['machine'].get('thp') or 'unknown'}); max maps is the most lines "
                     "of /proc/self/maps; M ops/s is the churn phase's allocator calls per "
                     "second" + (f" (`{NODECAY}`: brisk with `BRISK_CONF={NODECAY_CONF}`, "
                                 "run on churn only)" if NODECAY in mem else "") + ".")
    if "reuse" in ran:
        notes.append("**reuse**: one thread mallocs a 5-25 MiB block, touches every page and "
                     "frees it, 300 times at scale short; minor page faults per iteration "
                     "(0: the allocator kept the pages for the next block).")
    for n_ in notes:
        out.append(n_)
        out.append("")
    return out


# ---------------------------------------------------------------------------
# Chart (gnuplot)


def gnuplot_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_chart(path, ctx):
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        return "gnuplot not found (apt-get install gnuplot-nox)"
    names = ctx["allocator_names"]
    base = ctx["baseline"]
    mem = ctx.get("memory") or {}
    decay = "decay" in ctx["workloads"] and any(
        mem.get(n, {}).get("decay_pct_free") is not None for n in names)
    panels = 3 if decay else 2
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for ratio in ("time_ratio", "rss_ratio"):
            # The time panel leaves out decay, whose time is its wait.
            labels = (timed_workloads(ctx["workloads"]) if ratio == "time_ratio"
                      else ctx["workloads"]) + ["geomean"]
            fn = os.path.join(tmp, ratio + ".dat")
            with open(fn, "w") as f:
                f.write("workload " + " ".join(gnuplot_string(n) for n in names) + "\n")
                for w in labels:
                    vals = []
                    for n in names:
                        v = (ctx["means"][n][ratio] if w == "geomean"
                             else ctx["summary"][w][n][ratio])
                        vals.append("?" if v is None else "%.4f" % v)
                    f.write(gnuplot_string(w) + " " + " ".join(vals) + "\n")
            files[ratio] = fn
        decay_plot = ""
        if decay:
            fn = os.path.join(tmp, "decay.dat")
            with open(fn, "w") as f:
                f.write("phase " + " ".join(gnuplot_string(n) for n in names) + "\n")
                for key, label in (("decay_pct_free", "after the frees"),
                                   ("decay_pct_1s", "1 s later"), ("decay_pct_2s", "2 s later"),
                                   ("decay_pct_trim", "after the release call")):
                    vals = [mem.get(n, {}).get(key) for n in names]
                    f.write(gnuplot_string(label) + " " + " ".join(
                        "?" if v is None else "%.2f" % v for v in vals) + "\n")
            decay_plot = f"""
unset arrow 1
set xtics norotate
set ylabel "decay: RSS, % of peak"
plot for [i=2:{len(names) + 1}] {gnuplot_string(fn)} using i:xtic(1) title columnheader(i)
"""
        height = 480 * panels
        terminals = capture([gnuplot, "-e", "set terminal"]) or ""
        term = f"pngcairo size 1280,{height} font ',10'" if "pngcairo" in terminals \
            else f"png size 1280,{height}"
        tmp_png = path + ".tmp"
        title = f"brisk comparison ({ctx['args'].mode}, scale {ctx['args'].scale}, " \
                f"{ctx['date'][:10]}): ratio to {base}, lower is better"
        script = f"""
set terminal {term}
set output {gnuplot_string(tmp_png)}
set datafile missing "?"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key outside right top vertical
set grid ytics
set yrange [0:*]
set offsets 0, 0, graph 0.08, 0
set xtics rotate by -20
set multiplot layout {panels},1 title {gnuplot_string(title)}
set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead dashtype 2 linewidth 1.5
set ylabel {gnuplot_string('time x ' + base)}
plot for [i=2:{len(names) + 1}] {gnuplot_string(files['time_ratio'])} using i:xtic(1) title columnheader(i)
set ylabel {gnuplot_string('peak RSS x ' + base)}
plot for [i=2:{len(names) + 1}] {gnuplot_string(files['rss_ratio'])} using i:xtic(1) title columnheader(i)
{decay_plot}
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
# Main


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Compare brisk with glibc, jemalloc, tcmalloc and mimalloc.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="scale short, 3 repetitions (the default)")
    mode.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="scale full, 7 repetitions")
    mode.add_argument("--smoke", dest="mode", action="store_const", const="smoke",
                      help="each allocator once on larson and the memory workloads at scale "
                           "tiny, no callgrind; checks that the tables and the JSON are produced")
    p.add_argument("--build-dir", default="build/release",
                   help="build directory with libbrisk.so and the bench programs "
                        "(default build/release; relative paths from the current "
                        "directory, else from the repository)")
    p.add_argument("--reps", type=int, help="repetitions (default: 3 quick, 7 full, 1 smoke)")
    p.add_argument("--scale", choices=["tiny", "short", "full"],
                   help="workload scale (default: short quick, full full, tiny smoke)")
    p.add_argument("--workloads", help="comma-separated workloads (default: all)")
    p.add_argument("--allocators", help="comma-separated allocators (default: %s)"
                   % ",".join(ALLOCATOR_ORDER))
    p.add_argument("--threads", type=int, help="threads per workload (default: its own)")
    p.add_argument("--seed", type=int, help="workload seed (default: its own)")
    p.add_argument("--timeout", type=int, default=600, help="seconds per run (default 600)")
    p.add_argument("--json", help="write the data as JSON to this path")
    p.add_argument("--chart", help="render a PNG chart to this path (gnuplot)")
    p.add_argument("--report", help="also write the markdown report to this path")
    p.add_argument("--no-callgrind", action="store_true", help="skip the fast-path counts")
    p.add_argument("--workloads-bin", help="brisk_workloads to run (default: from --build-dir)")
    p.add_argument("--lib", action="append", default=[], metavar="NAME=PATH",
                   help="library to preload for allocator NAME instead of the default "
                        "(repeatable), e.g. --lib jemalloc=/usr/local/lib/libjemalloc.so")
    args = p.parse_args(argv)
    args.mode = args.mode or "quick"
    scale, reps = MODES[args.mode]
    args.scale = args.scale or scale
    args.reps = args.reps or reps
    if args.reps < 1:
        p.error("--reps must be at least 1")
    if args.mode == "smoke":
        args.no_callgrind = True
    return args


def main(argv):
    args = parse_args(argv)
    t_start = time.monotonic()
    date = datetime.datetime.now(datetime.timezone.utc).astimezone().strftime(
        "%Y-%m-%d %H:%M:%S %Z")
    build = resolve_build_dir(args.build_dir)
    hint = (f"configure and build it with: cmake -S {REPO} -B {build} -G Ninja "
            "-DCMAKE_BUILD_TYPE=Release -DBRISK_BUILD_BENCH=ON && cmake --build " + build)
    brisk_lib = os.path.join(build, "libbrisk.so")
    args.workloads_bin = args.workloads_bin or find_program(
        build, "brisk_workloads", ["bench/workloads", "bench", "."])
    args.fastpath_bin = find_program(build, "brisk_fastpath", ["bench/fastpath", "bench", "."])
    topology_bin = find_program(build, "brisk_topology", ["bench/topology", "bench", "."])
    if not args.workloads_bin:
        log(f"compare: brisk_workloads not found under {build}; {hint}")
        return 2
    if not os.path.isfile(brisk_lib):
        log(f"compare: {brisk_lib} not found; {hint}")
        return 2

    # Allocators.
    base_env = dict(os.environ)
    base_env.pop("LD_PRELOAD", None)
    wanted = args.allocators.split(",") if args.allocators else ALLOCATOR_ORDER
    for name in wanted:
        if name not in ALLOCATOR_ORDER:
            log(f"compare: unknown allocator {name!r} (known: {', '.join(ALLOCATOR_ORDER)})")
            return 2
    libs = dict(BASELINES)
    libs["brisk"] = brisk_lib
    for spec in args.lib:
        name, sep, path = spec.partition("=")
        if not sep or name not in libs or name == "glibc":
            log(f"compare: bad --lib {spec!r} (NAME=PATH, NAME one of brisk, jemalloc, "
                "tcmalloc, mimalloc)")
            return 2
        libs[name] = os.path.abspath(path)
    allocators, skipped = [], []
    for name in ALLOCATOR_ORDER:
        if name not in wanted:
            continue
        lib = libs[name]
        if lib and not os.path.isfile(lib):
            why = f"{lib} is missing (scripts/deps.sh installs it)"
            log(f"compare: skipping {name}: {why}")
            skipped.append((name, why))
            continue
        env = dict(base_env)
        if lib:
            env["LD_PRELOAD"] = lib
        if name == "brisk":
            version = brisk_version()
        elif name == "glibc":
            version = " ".join(platform.libc_ver())
        else:
            version = package_version(lib)
        allocators.append({"name": name, "lib": lib, "env": env, "version": version,
                           "options": allocator_options(name, base_env)})
    names = [al["name"] for al in allocators]
    if not allocators:
        log("compare: no allocator to run")
        return 2
    if "jemalloc" in names:
        baseline = "jemalloc"
    else:
        baseline = next((n_ for n_ in ["glibc"] + names if n_ in names and n_ != "brisk"),
                        names[0])
        log(f"compare: jemalloc is not run: ratios are against {baseline}")

    # Workloads.
    listed = capture([args.workloads_bin, "--list"], env=base_env)
    available = listed.split() if listed else DEFAULT_WORKLOADS
    if args.workloads:
        workloads = args.workloads.split(",")
        for w in workloads:
            if w not in available:
                log(f"compare: unknown workload {w!r} (known: {', '.join(available)})")
                return 2
    elif args.mode == "smoke":
        # One timed workload, and the memory workloads (their section of the
        # report, and brisk-nodecay) when this brisk_workloads has them.
        workloads = ["larson" if "larson" in available else available[0]]
        workloads += [w for w in MEMORY_WORKLOADS if w in available and w not in workloads]
    else:
        workloads = available
    usage = capture([args.workloads_bin, "--help"], env=base_env) or ""
    args.expect_allocator = "--expect-allocator" in usage

    # brisk with decay off, for the churn throughput target.
    nodecay = None
    brisk_al = next((al for al in allocators if al["name"] == "brisk"), None)
    if brisk_al and any(w in workloads for w in NODECAY_WORKLOADS):
        env = dict(brisk_al["env"])
        conf = env.get("BRISK_CONF")
        env["BRISK_CONF"] = (conf + "," if conf else "") + NODECAY_CONF
        nodecay = {"name": NODECAY, "expect": "brisk", "lib": brisk_al["lib"], "env": env,
                   "version": brisk_al["version"],
                   "options": f"`BRISK_CONF={env['BRISK_CONF']}` (set by the driver)"}

    def allocators_for(w):
        return allocators + ([nodecay] if nodecay and w in NODECAY_WORKLOADS else [])

    machine = machine_info(topology_bin)

    # Fast-path counts.
    fastpath, fastpath_note = None, None
    if args.no_callgrind:
        fastpath_note = "Skipped (--no-callgrind)." if args.mode != "smoke" else "Skipped (smoke)."
    elif not shutil.which("valgrind"):
        fastpath_note = "Skipped: valgrind is not installed."
        log("compare: valgrind not found: no fast-path counts")
    elif not args.fastpath_bin:
        fastpath_note = f"Skipped: brisk_fastpath not found under {build}."
        log(f"compare: {fastpath_note}")
    else:
        fastpath = run_callgrind(args, allocators)

    # Timed runs, interleaved.
    total = args.reps * sum(len(allocators_for(w)) for w in workloads)
    log(f"compare: {len(workloads)} workloads x {len(allocators)} allocators x {args.reps} "
        f"repetitions" + (f" (+ {NODECAY} on " + ", ".join(NODECAY_WORKLOADS) + ")"
                          if nodecay else "") + f" = {total} runs (scale {args.scale})")
    if args.mode != "smoke":
        # Warm the page cache and the binary's first start.
        run_timed([args.workloads_bin, workloads[0], "--scale", "tiny"], base_env, args.timeout)
    runs = []
    n = 0
    for rep in range(1, args.reps + 1):
        for wi, w in enumerate(workloads):
            als = allocators_for(w)
            k = (rep - 1 + wi) % len(als)
            for al in als[k:] + als[:k]:
                n += 1
                r = run_workload(args, al, w, rep)
                runs.append(r)
                if r["ok"]:
                    log(f"[{n:3d}/{total}] rep {rep} {w:14s} {al['name']:13s} "
                        f"{r['seconds']:8.3f} s (wall {r['wall_s']:.3f} s, "
                        f"CPU {r['cpu_s']:.3f} s, RSS {mib(r['peak_rss_bytes']):.1f} MiB)")
                else:
                    log(f"[{n:3d}/{total}] rep {rep} {w:14s} {al['name']:13s} FAILED: "
                        f"{r['failure']}: " + " | ".join(r["output_tail"]))

    # A workload whose result line says merit=memory is not timed either.
    UNTIMED_WORKLOADS.update(r["workload"] for r in runs
                             if (r.get("result") or {}).get("merit") == "memory")
    main_runs = [r for r in runs if r["allocator"] != NODECAY]
    summary, means = summarize(main_runs, workloads, names, baseline)
    memory = summarize_memory(runs, workloads, names + ([NODECAY] if nodecay else []))
    targets = judge_targets(names, baseline, summary, means, fastpath, fastpath_note,
                            workloads, memory, machine.get("thp"), args.scale)
    ctx = {
        "args": args, "date": date, "machine": machine, "baseline": baseline,
        "command": " ".join(shlex.quote(x) for x in [sys.argv[0]] + argv),
        "allocators": allocators, "allocator_names": names, "skipped": skipped,
        "workloads": workloads, "runs": runs, "summary": summary, "means": means,
        "memory": memory, "nodecay": nodecay,
        "fastpath": fastpath, "fastpath_note": fastpath_note, "targets": targets,
        "load_average_end": list(os.getloadavg()),
        "elapsed_s": time.monotonic() - t_start, "outputs": {},
    }

    # Outputs: chart and JSON paths are named in the report, so they come first.
    smoke_dir = None
    if args.mode == "smoke" and not (args.json and args.chart):
        smoke_dir = tempfile.mkdtemp(prefix="brisk-compare-smoke.")
        ctx["temporary_outputs"] = True
        args.json = args.json or os.path.join(smoke_dir, "compare.json")
        if shutil.which("gnuplot"):
            args.chart = args.chart or os.path.join(smoke_dir, "compare.png")
    chart_error = None
    if args.chart:
        chart_error = render_chart(args.chart, ctx)
        if chart_error:
            log(f"compare: no chart: {chart_error}")
        else:
            ctx["outputs"]["chart"] = args.chart
    if args.json:
        ctx["outputs"]["JSON"] = args.json
    report = render_report(ctx)
    if args.json:
        data = {
            "date": date, "command": ctx["command"], "mode": args.mode, "scale": args.scale,
            "repetitions": args.reps, "threads": args.threads, "seed": args.seed,
            "machine": machine, "load_average_end": ctx["load_average_end"],
            "elapsed_s": ctx["elapsed_s"], "baseline": baseline,
            "allocators": [{k: al[k] for k in ("name", "lib", "version", "options")}
                           for al in allocators],
            "extra_configurations": ([{"name": NODECAY, "lib": nodecay["lib"],
                                       "options": nodecay["options"],
                                       "workloads": NODECAY_WORKLOADS}] if nodecay else []),
            "untimed_workloads": [w for w in workloads if w in UNTIMED_WORKLOADS],
            "skipped": [{"name": n_, "why": w_} for n_, w_ in skipped],
            "workloads": workloads, "runs": runs, "summary": summary, "geomean": means,
            "memory": memory,
            "fastpath": {"sizes": FASTPATH_SIZES, "batches": FASTPATH_BATCHES,
                         "pairs": [FASTPATH_N1, FASTPATH_N2],
                         "instructions_per_pair": fastpath, "note": fastpath_note},
            "targets": [{"target": t, "measured": m_, "met": v} for t, m_, v in targets],
        }
        write_json(args.json, data)
    smoke = (lambda: smoke_check(report, args, names, workloads, chart_error, total))
    return finish("compare", args, report, ctx["elapsed_s"], runs, smoke, smoke_dir)


def write_json(path, data):
    """Write data as JSON to path, atomically (a temporary file, then rename)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def finish(tool, args, report, elapsed_s, runs, smoke_problems, smoke_dir):
    """Write and print the report; the exit status: 1 when a run failed or,
    with --smoke, when smoke_problems() lists a missing output."""
    if args.report:
        with open(args.report, "w") as f:
            f.write(report + "\n")
    print(report, flush=True)
    log(f"{tool}: done in {elapsed_s:.0f} s")
    status = 0
    if any(not r["ok"] for r in runs):
        log(f"{tool}: some runs failed (see the report)")
        status = 1
    if args.mode == "smoke":
        problems = smoke_problems()
        for p in problems:
            log(f"{tool} --smoke: " + p)
        if problems:
            status = 1
        else:
            log(f"{tool} --smoke: report, JSON" + (" and chart" if args.chart else "")
                + " produced")
        if smoke_dir:
            shutil.rmtree(smoke_dir, ignore_errors=True)
    return status


def smoke_check(report, args, names, workloads, chart_error, expected_runs):
    problems = []
    for name in names:
        if not re.search(r"^\| %s \| (\*\*)?%s(\*\*)? \| [0-9.]+ \|" % (
                re.escape(workloads[0]), re.escape(name)), report, re.M):
            problems.append(f"no table row for {workloads[0]} under {name}")
    if "## Geometric means" not in report:
        problems.append("no geometric-mean table")
    try:
        with open(args.json) as f:
            data = json.load(f)
        for name in names:
            if not data["summary"][workloads[0]][name].get("seconds"):
                problems.append(f"JSON: no median time for {name}")
        if len(data["runs"]) != expected_runs:
            problems.append("JSON: wrong number of runs")
        memory_ran = [w for w in MEMORY_WORKLOADS if w in workloads]
        if memory_ran:
            if "## Memory" not in report:
                problems.append("no Memory section")
            for name in names:
                if not data["memory"].get(name):
                    problems.append(f"JSON: no memory figures for {name}")
            for w, _, key in MEMORY_FIELDS:
                if w in memory_ran and "brisk" in names \
                        and data["memory"].get("brisk", {}).get(key) is None:
                    problems.append(f"JSON: no {key} for brisk")
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
