#!/usr/bin/env bash
# apps.postgres: a PostgreSQL cluster under brisk (see README.md).
#
# PostgreSQL refuses to run as root: as root, the cluster belongs to the
# postgres user (nobody if there is none) and every server command runs as
# that user (runuser); as anyone else, as that user.  libbrisk.so is copied
# into the test's directory so that user can read it wherever the build is.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

# The server programs: Debian keeps them in /usr/lib/postgresql/N/bin.
bindir=
if command -v pg_config > /dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then
    bindir=$(pg_config --bindir)
else
    for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V); do
        [ -x "$d/initdb" ] && [ -x "$d/pgbench" ] && bindir=$d
    done
    [ -n "$bindir" ] || { command -v initdb > /dev/null && bindir=$(dirname "$(command -v initdb)"); }
fi
[ -n "$bindir" ] || skip "PostgreSQL is not installed (apt-get install postgresql; scripts/deps.sh installs it)"
for p in initdb pg_ctl postgres pgbench psql; do
    [ -x "$bindir/$p" ] || skip "$bindir/$p is missing (apt-get install postgresql)"
done
python=$(need_python)
pick_user
apps_init postgres
cd "$work"
note "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') in $bindir, server user $apps_user"

mkdir -p lib pg/sock
cp "$BRISK_LIB_REAL" lib/
lib="$work/lib/$(basename "$BRISK_LIB_REAL")"
chmod 755 lib
chmod 644 "$lib"
[ "$(id -u)" -ne 0 ] || chown -R "$apps_user" pg
data="$work/pg/data"

psql_() { timeout 120 "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U bench -d postgres -At "$@"; }
sql() { psql_ -c "$1"; }

# initdb runs the bootstrap and single-user backends: under brisk too.
t0=$(date +%s%N)
timeout 120 "${asu[@]}" env LD_PRELOAD="$lib" "$bindir/initdb" -D "$data" -U bench --auth=trust --no-locale -E UTF8 \
    > initdb.log 2>&1 || { cat initdb.log >&2; fail "initdb failed"; }
track_log "$work/initdb.log"
check_log initdb.log
note "initdb under brisk: $(elapsed_since "$t0")"

# Stop the cluster at exit whatever happens (immediate: it is scratch).
at_exit "as_user '$bindir/pg_ctl' stop -D '$data' -m immediate -w -t 20"
track_log "$work/pg/server.log"
for attempt in 1 2 3; do
    port=$(free_port)
    cat > pg/port.conf <<EOF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work/pg/sock'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 64MB
max_connections = 30
work_mem = 16MB
maintenance_work_mem = 64MB
max_wal_size = 1GB
huge_pages = off
max_parallel_workers_per_gather = 2
autovacuum_naptime = 2s
log_min_messages = warning
log_line_prefix = '%m [%p] '
EOF
    [ "$(id -u)" -ne 0 ] || chown "$apps_user" pg/port.conf
    grep -q "^include_if_exists = '$work/pg/port.conf'" "$data/postgresql.conf" ||
        echo "include_if_exists = '$work/pg/port.conf'" | as_user tee -a "$data/postgresql.conf" > /dev/null
    if timeout 90 "${asu[@]}" env LD_PRELOAD="$lib" "$bindir/pg_ctl" start -D "$data" -l "$work/pg/server.log" -w -t 60 \
        > pg_ctl.log 2>&1; then
        break
    fi
    if grep -q "already in use" pg/server.log 2> /dev/null && [ "$attempt" -lt 3 ]; then
        note "port $port taken, retrying"
        continue
    fi
    cat pg_ctl.log >&2
    fail "pg_ctl start failed"
done
pm=$(head -n 1 "$data/postmaster.pid")
track_pid "$pm"
note "postmaster (pid $pm) on 127.0.0.1:$port"
prove_brisk "$pm" postmaster "$lib"
children=$(ps -o pid=,args= --ppid "$pm" || true)
[ -n "$children" ] || fail "the postmaster has no child processes"
while read -r cpid cargs; do
    [ -n "$cpid" ] || continue
    prove_brisk "$cpid" "$cargs" "$lib"
done <<< "$children"

# A backend proves it itself: it reads its own /proc/self/maps.
backend=$(sql "SELECT pg_backend_pid() || ' ' || (position('$lib' in pg_read_file('/proc/self/maps')) > 0)::int")
[ "${backend#* }" = 1 ] || fail "backend ${backend% *} does not map $lib: $backend"
note "brisk mapped in a backend (pid ${backend% *}), read by the backend from /proc/self/maps"

# pgbench: initialise at scale 2 (200,000 accounts), then 4 clients.
scale=5 clients=4 per_client=1000
t0=$(date +%s%N)
timeout 150 "$bindir/pgbench" -h 127.0.0.1 -p "$port" -U bench -i -s "$scale" -q postgres > pgbench-init.log 2>&1 ||
    { cat pgbench-init.log >&2; fail "pgbench -i failed"; }
note "pgbench -i -s $scale: $(elapsed_since "$t0")"
t0=$(date +%s%N)
timeout 150 "$bindir/pgbench" -h 127.0.0.1 -p "$port" -U bench -c "$clients" -j 2 -t "$per_client" postgres \
    > pgbench.log 2>&1 || { cat pgbench.log >&2; fail "pgbench failed"; }
note "pgbench -c $clients -t $per_client: $(elapsed_since "$t0"), $(grep -E '^tps' pgbench.log | head -n 1)"
done_tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\)\/.*/\1/p' pgbench.log)
[ "$done_tx" = $((clients * per_client)) ] || { cat pgbench.log >&2; fail "pgbench processed '$done_tx' of $((clients * per_client)) transactions"; }
if grep -q "^number of failed transactions: [1-9]" pgbench.log; then
    cat pgbench.log >&2
    fail "pgbench had failed transactions"
fi

# The data: row counts, and TPC-B consistency (every transaction added the
# same delta to one account, teller and branch, and logged it in history).
counts=$(sql "SELECT (SELECT count(*) FROM pgbench_accounts) || ' ' || (SELECT count(*) FROM pgbench_tellers)
    || ' ' || (SELECT count(*) FROM pgbench_branches) || ' ' || (SELECT count(*) FROM pgbench_history)")
[ "$counts" = "$((scale * 100000)) $((scale * 10)) $scale $((clients * per_client))" ] ||
    fail "row counts (accounts tellers branches history) are '$counts'"
sums=$(sql "SELECT (SELECT sum(abalance) FROM pgbench_accounts) || ' ' || (SELECT sum(tbalance) FROM pgbench_tellers)
    || ' ' || (SELECT sum(bbalance) FROM pgbench_branches) || ' ' || (SELECT sum(delta) FROM pgbench_history)")
read -r sa st sb sh <<< "$sums"
if [ "$sa" != "$sh" ] || [ "$st" != "$sh" ] || [ "$sb" != "$sh" ]; then
    fail "balances disagree: accounts $sa, tellers $st, branches $sb, history deltas $sh"
fi
note "rows: accounts tellers branches history = $counts; every balance sum = history's $sh"
acc=$(sql "SELECT count(*) FROM pgbench_accounts a JOIN pgbench_history h USING (aid) WHERE a.bid <> (a.aid - 1) / 100000 + 1")
[ "$acc" = 0 ] || fail "$acc history rows name an account of the wrong branch"

# Allocation-heavy queries with answers known in advance: a 200,000-row
# sort of md5 strings aggregated into one 6.4 MB string, a parallel scan
# (background worker processes), a hash aggregate, a big array.
want=$("$python" -c 'import hashlib
h = sorted(hashlib.md5(str(i).encode()).hexdigest() for i in range(1, 200001))
print(hashlib.md5("".join(h).encode()).hexdigest())')
got=$(sql "SELECT md5(string_agg(h, '' ORDER BY h)) FROM (SELECT md5(i::text) AS h FROM generate_series(1, 200000) i) s")
[ "$got" = "$want" ] || fail "sorted md5 checksum: got $got, expected $want"
got=$(psql_ <<EOF
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SELECT count(*) || ' ' || sum(aid::bigint) FROM pgbench_accounts;
EOF
)
n=$((scale * 100000))
[ "$got" = "$n $((n * (n + 1) / 2))" ] || fail "parallel count/sum of aid: got '$got'"
got=$(sql "SELECT count(*) || ' ' || sum(c) FROM (SELECT md5((i % 50000)::text) AS k, count(*) AS c FROM generate_series(1, 300000) i GROUP BY k) s")
[ "$got" = "50000 300000" ] || fail "hash aggregate: got '$got'"
got=$(sql "SELECT array_length(array_agg(repeat('x', i % 100)), 1) || ' ' || sum(length(repeat('x', i % 100))) FROM generate_series(1, 100000) i")
[ "$got" = "100000 4950000" ] || fail "array_agg: got '$got'"
note "sort/aggregate checksums, parallel scan, hash aggregate: as expected"

# Every server process still maps brisk (the parallel workers have exited).
prove_brisk "$pm" postmaster "$lib"
note "postmaster RSS $(($(rss_kib "$pm") / 1024)) MiB"

# Clean stop: a fast shutdown, all processes gone.
allpids="$pm $(ps -o pid= --ppid "$pm" | tr '\n' ' ')"
timeout 90 "${asu[@]}" "$bindir/pg_ctl" stop -D "$data" -m fast -w -t 60 > pg_stop.log 2>&1 || { cat pg_stop.log >&2; fail "pg_ctl stop failed"; }
for p in $allpids; do
    wait_gone "$p" 20 || fail "server process $p still running after pg_ctl stop"
done
grep -q "database system is shut down" pg/server.log || fail "the server log does not show a clean shutdown"
check_log pg/server.log
echo "postgres: OK"
