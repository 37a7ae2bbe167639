#!/usr/bin/env bash
# apps.redis: redis-server under brisk (see README.md).
#
# Debian's redis-server is linked against libjemalloc and calls some of
# jemalloc's own API (mallctl, nallocx, malloc_stats_print): with brisk
# preloaded those must bind to libbrisk.so too (src/api/jemalloc_compat.c),
# or jemalloc would be asked about memory brisk manages.  The loader's trace
# (LD_DEBUG=bindings) checks it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

server=$(need redis-server)
cli=$(need redis-cli redis-tools)
bench=$(need redis-benchmark redis-tools)
python=$(need_python)
apps_init redis
cd "$work"

# The jemalloc entry points the server imports: libbrisk.so must define
# every one of them.
jemalloc_api="mallocx rallocx xallocx sallocx dallocx sdallocx nallocx mallctl mallctlnametomib mallctlbymib malloc_stats_print"
server_real=$(readlink -f "$server")
if command -v nm > /dev/null; then
    imports=$(nm -D --undefined-only "$server_real" | awk '{print $NF}' | sed 's/@.*//' | sort -u)
    exported=$(nm -D --defined-only "$BRISK_LIB_REAL" | awk '{print $NF}' | sort -u)
    je_imports=
    for s in $jemalloc_api; do
        if grep -qx "$s" <<< "$imports"; then
            je_imports="$je_imports $s"
            grep -qx "$s" <<< "$exported" || fail "redis-server imports $s, which libbrisk.so does not define"
        fi
    done
    libs=$(ldd "$server_real")     # (no "| grep -q": with pipefail, ldd's SIGPIPE would fail it)
    if grep -q libjemalloc <<< "$libs"; then
        note "redis-server is linked against libjemalloc; imports of jemalloc's API:${je_imports:- none}"
    else
        note "redis-server is not linked against libjemalloc (imports of its API:${je_imports:- none})"
    fi
else
    note "nm (binutils) not installed: not listing redis-server's imports"
fi

mkdir -p data ld
redis_ready() { [ "$("$cli" -p "$1" PING)" = PONG ]; }
start_server redis-server "$work/redis.log" redis_ready \
    env LD_PRELOAD="$BRISK_LIB_REAL" LD_DEBUG=bindings LD_DEBUG_OUTPUT="$work/ld/trace" \
    "$server" --port @PORT@ --bind 127.0.0.1 --dir "$work/data" --save "" --appendonly no \
    --protected-mode no --daemonize no --enable-debug-command yes \
    --io-threads 2 --io-threads-do-reads yes --lazyfree-lazy-user-del yes
pid=$server_pid
prove_brisk "$pid" redis-server

# Load: strings of 1 byte to 1.5 MiB and the other types, read back and
# compared; UNLINK (lazy free), DEBUG RELOAD, BGSAVE (fork) in between.
t0=$(date +%s%N)
timeout 150 "$python" "$here/redis_client.py" "$port" load || fail "the Redis workload failed"
note "workload: $(elapsed_since "$t0")"
timeout 60 "$python" "$here/redis_client.py" "$port" memory || fail "INFO memory checks failed"
note "redis-server RSS $(($(rss_kib "$pid") / 1024)) MiB"

# A short redis-benchmark run: 16 clients, pipelined, two client threads.
t0=$(date +%s%N)
timeout 120 "$bench" -h 127.0.0.1 -p "$port" -q -n 10000 -c 16 -P 8 -d 200 -r 50000 --threads 2 \
    -t set,get,incr,lpush,rpop,sadd,hset,zadd,lrange_100,mset > bench.out 2>&1 ||
    { cat bench.out >&2; fail "redis-benchmark failed"; }
tr '\r' '\n' < bench.out | grep -E 'requests per second' > bench.lines || true
nlines=$(wc -l < bench.lines)
[ "$nlines" -ge 10 ] || { cat bench.out >&2; fail "redis-benchmark reported $nlines of 10 tests"; }
! grep -qiE 'error|refused' bench.out || { cat bench.out >&2; fail "redis-benchmark reported errors"; }
sed 's/^/   /' bench.lines
note "redis-benchmark: $(elapsed_since "$t0")"
dbsize=$("$cli" -p "$port" DBSIZE)
[[ $dbsize =~ ^[1-9][0-9]*$ ]] || fail "DBSIZE after redis-benchmark is '$dbsize'"

# Everything freed: memory must go back.
timeout 60 "$python" "$here/redis_client.py" "$port" purge || fail "memory did not drop after FLUSHALL"
prove_brisk "$pid" redis-server

# Clean stop.
"$cli" -p "$port" SHUTDOWN NOSAVE > /dev/null 2>&1 || true
wait_gone "$pid" 30 || fail "redis-server did not exit after SHUTDOWN"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 0 ] || fail "redis-server exited with status $rc"
grep -q "ready to exit, bye bye" redis.log || fail "redis-server did not log its clean exit"
check_log redis.log

# The loader's record: in the server (and its forked children), the
# malloc family and jemalloc's API bind to libbrisk.so, and nothing but
# libjemalloc itself binds to libjemalloc.
traces=(ld/trace.*)
[ -e "${traces[0]}" ] || fail "no loader trace in ld/"
awk -v lib="$BRISK_LIB_REAL" -v api="$jemalloc_api malloc free calloc realloc posix_memalign aligned_alloc memalign valloc malloc_usable_size" '
    BEGIN { n = split(api, a, " "); for (i = 1; i <= n; i++) want[a[i]] = 1 }
    /binding file .* normal symbol `/ {
        s = substr($0, index($0, "normal symbol `") + 15); s = substr(s, 1, index(s, "'\''") - 1)
        r = substr($0, index($0, "binding file ") + 13); j = index(r, " to ")
        from = substr(r, 1, j - 1); sub(/ \[[0-9]+\]$/, "", from)
        to = substr(r, j + 4); to = substr(to, 1, index(to, "]: normal symbol `") - 1); sub(/ \[[0-9]+$/, "", to)
        if (to ~ /libjemalloc/ && from !~ /libjemalloc/) { print "FAIL: " from " binds " s " to " to; bad++ }
        if ((s in want) && to != lib && from !~ /libjemalloc/) { print "FAIL: " from " binds " s " to " to; bad++ }
        if ((s in want) && to == lib) bound[s] = 1
    }
    END {
        for (s in bound) list = list " " s
        print "-- bound to libbrisk.so:" list
        exit bad > 0
    }' "${traces[@]}" || fail "symbols of the malloc family or of jemalloc's API did not bind to libbrisk.so"
for s in $je_imports; do
    grep -qF "normal symbol \`$s'" "${traces[@]}" || fail "the trace does not show $s bound"
done
echo "redis: OK"
