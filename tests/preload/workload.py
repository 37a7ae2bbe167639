"""A Python workload for the preload tests: dicts, json, regular
expressions, threads, sorting, big integers, compression.  stdout is
deterministic (run with PYTHONHASHSEED=0) and compared between a plain run
and a run under LD_PRELOAD=libbrisk.so.

With BRISK_EXPECTED=1 (the brisk run) the script also checks, on stderr, that
libbrisk.so is mapped in this very process and that a large bytes object
shows up in brisk_stats()."""
import ctypes
import hashlib
import json
import os
import re
import sys
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor


def digest(obj):
    return hashlib.sha256(repr(obj).encode()).hexdigest()[:16]


def rng(seed):
    x = seed
    while True:
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        yield x >> 33


def words(n, seed):
    g = rng(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    out = []
    for _ in range(n):
        k = 2 + next(g) % 9
        out.append("".join(alphabet[next(g) % 26] for _ in range(k)))
    return out


def check_brisk():
    """Only in the brisk run: prove brisk serves this interpreter."""
    with open("/proc/self/maps") as f:
        maps = [l for l in f if "libbrisk" in l]
    if not maps:
        sys.exit("workload.py: libbrisk is not mapped in this process")
    lib = ctypes.CDLL(None)
    buf = ctypes.create_string_buffer(64 * 1024)
    stats = lib.brisk_stats
    stats.argtypes = [ctypes.c_void_p]

    def allocated():
        stats(buf)
        return ctypes.c_size_t.from_buffer(buf).value

    before = allocated()
    big = bytes(32 << 20)          # CPython takes this from malloc
    during = allocated()
    del big
    print(f"workload.py: libbrisk mapped ({len(maps)} mappings), 32 MiB bytes object: "
          f"brisk allocated {before} -> {during}", file=sys.stderr)
    if during < before + (32 << 20):
        sys.exit("workload.py: the 32 MiB object did not come from brisk")


def main():
    if os.environ.get("BRISK_EXPECTED") == "1":
        check_brisk()

    # dicts: word counts over 300k words, many inserts and deletes
    ws = words(100000, 1)
    counts = {}
    for w in ws:
        counts[w] = counts.get(w, 0) + 1
    for w in list(counts)[::3]:
        del counts[w]
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    print("dict:", len(counts), top)
    nested = {i: {"k": str(i), "v": [i, i * i, {"s": "x" * (i % 50)}]} for i in range(30000)}
    print("nested:", digest(sorted(nested.items())[::997]))

    # json round trips of large documents
    doc = {"items": [{"id": i, "name": ws[i], "tags": ws[i:i + (i % 7)], "score": i / 7}
                     for i in range(30000)]}
    text = json.dumps(doc, sort_keys=True)
    back = json.loads(text)
    print("json:", len(text), hashlib.sha256(text.encode()).hexdigest()[:16], back == doc)
    pretty = json.dumps(back["items"][:2000], indent=2, sort_keys=True)
    print("json pretty:", len(pretty), pretty.count("\n"))

    # regular expressions
    corpus = " ".join(ws)
    pat = re.compile(r"\b([a-z])([a-z]*)\1\b")
    found = pat.findall(corpus)
    print("regex findall:", len(found), found[:5])
    subbed = re.sub(r"(a+)(b|c)", lambda m: m.group(2).upper() + str(len(m.group(1))), corpus)
    print("regex sub:", len(subbed), hashlib.sha256(subbed.encode()).hexdigest()[:16])
    split = re.split(r"[aeiou]{2,}", corpus)
    print("regex split:", len(split))

    # threads: workers build and return structures; results combined in order
    def work(seed):
        local = words(12000, seed)
        d = {}
        for i, w in enumerate(local):
            d.setdefault(w[:3], []).append(i)
        blob = zlib.compress("\n".join(local).encode(), 6)
        return seed, len(d), sum(len(v) for v in d.values()), len(blob), digest(sorted(d)[:100])

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, range(2, 14)))
    for r in results:
        print("thread:", r)

    lock = threading.Lock()
    shared = []

    def appender(k):
        for i in range(10000):
            s = f"{k}:{i}:" + "y" * (i % 100)
            with lock:
                shared.append(s)

    ts = [threading.Thread(target=appender, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print("threads append:", len(shared), digest(sorted(shared)[::1000]))

    # sorting and big integers
    nums = [x % 1000003 for x, _ in zip(rng(7), range(200000))]
    nums.sort()
    print("sort:", nums[:3], nums[-3:], sum(nums))
    f = 1
    for i in range(2, 1200):
        f *= i
    print("bigint: digits", len(str(f)), "sum", sum(map(int, str(f))))

    # bytes, bytearrays, compression
    data = bytearray()
    for i in range(100000):
        data += (ws[i % len(ws)] + "\n").encode()
    comp = zlib.compress(bytes(data), 9)
    print("zlib:", len(data), len(comp), zlib.decompress(comp) == bytes(data))


if __name__ == "__main__":
    main()
