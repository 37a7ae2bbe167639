#!/usr/bin/env bash
# apps.sqlite: the sqlite3 shell and our C API client under brisk (see
# README.md).  Each runs plainly and with LD_PRELOAD=libbrisk.so: the
# outputs (row counts, sums, SHA3 checksums of whole sorted results) must
# be identical, and the brisk runs must map libbrisk.so.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

sqlite3=$(need sqlite3)
apps_init sqlite
cd "$work"
trap '' PIPE            # a sqlite3 that stops reading must not kill the test

# Plain run of the shell's workload.
t0=$(date +%s%N)
timeout 120 env -u LD_PRELOAD "$sqlite3" -bail plain.db < "$here/sqlite_workload.sql" > shell.plain.out 2> shell.plain.err ||
    { cat shell.plain.err >&2; fail "plain sqlite3 failed"; }
note "sqlite3 shell, plain: $(elapsed_since "$t0")"

# The brisk run reads the same script through a FIFO, so that it is still
# running, with all its work done, when its /proc/PID/maps is read; the
# script's end writes a marker file (.output closes it, which flushes it).
mkfifo shell.in
t0=$(date +%s%N)
# (The background child blocks opening the FIFO until exec 3> opens its
# other end, then execs sqlite3: $! is sqlite3's pid.)
env LD_PRELOAD="$BRISK_LIB_REAL" "$sqlite3" -bail brisk.db < shell.in > shell.brisk.stdout 2> shell.brisk.err &
pid=$!
track_pid "$pid"
track_log "$work/shell.brisk.err"
exec 3> shell.in
{
    echo ".output shell.brisk.out"
    cat "$here/sqlite_workload.sql"
    printf ".output marker\nSELECT 'done';\n.output stdout\n"
} >&3 || fail "sqlite3 under brisk stopped reading its input"
for ((i = 0; i < 600; i++)); do
    grep -qx 'done' marker 2> /dev/null && break
    running "$pid" || { exec 3>&-; fail "sqlite3 under brisk exited early: $(tail -n 5 shell.brisk.err)"; }
    sleep 0.2
done
[ "$i" -lt 600 ] || fail "sqlite3 under brisk did not finish its workload in 120 s"
prove_brisk "$pid" sqlite3
exec 3>&-
wait_gone "$pid" 30 || fail "sqlite3 did not exit at the end of its input"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 0 ] || fail "sqlite3 under brisk exited with status $rc: $(tail -n 5 shell.brisk.err)"
note "sqlite3 shell, brisk: $(elapsed_since "$t0")"
check_log shell.brisk.err
if ! cmp -s shell.plain.out shell.brisk.out; then
    diff shell.plain.out shell.brisk.out | head -n 20 >&2
    fail "the sqlite3 shell's output differs under brisk"
fi
grep -q '^rows|200000|' shell.brisk.out || fail "the bulk insert did not give 200000 rows"
grep -q '^after|190000|' shell.brisk.out || fail "190000 rows expected after the deletes"
[ "$(tail -n 1 shell.brisk.out)" = ok ] || fail "PRAGMA integrity_check did not say ok"
note "sqlite3 shell: $(wc -l < shell.brisk.out) identical result lines; $(grep '^rows|' shell.brisk.out)"

# Our C API client (tests/apps/sqlite_capi.c), plainly and under brisk.
capi=${BRISK_HELPERS:-}/sqlite_capi
if [ ! -x "$capi" ]; then
    note "SKIP (part): $capi was not built (libsqlite3-dev was missing when cmake ran)"
    echo "sqlite: OK (the shell only)"
    exit 0
fi
t0=$(date +%s%N)
timeout 120 env -u LD_PRELOAD "$capi" capi.plain.db 200000 > capi.plain.out 2> capi.plain.err ||
    { cat capi.plain.err >&2; fail "sqlite_capi failed (plain)"; }
note "sqlite_capi, plain: $(elapsed_since "$t0")"
t0=$(date +%s%N)
timeout 120 env LD_PRELOAD="$BRISK_LIB_REAL" "$capi" capi.brisk.db 200000 > capi.brisk.out 2> capi.brisk.err ||
    { cat capi.brisk.err >&2; fail "sqlite_capi failed under brisk"; }
note "sqlite_capi, brisk: $(elapsed_since "$t0")"
track_log "$work/capi.brisk.err"
check_log capi.brisk.err
grep -qx "sqlite_capi: libbrisk mapped" capi.brisk.err || fail "sqlite_capi under brisk does not map libbrisk"
grep -qx "sqlite_capi: libbrisk not mapped" capi.plain.err || fail "the plain sqlite_capi maps libbrisk"
if ! cmp -s capi.plain.out capi.brisk.out; then
    diff capi.plain.out capi.brisk.out >&2 || true
    fail "sqlite_capi's output differs under brisk"
fi
grep -qx "integrity_check: ok" capi.brisk.out || fail "sqlite_capi: no integrity_check"
sed 's/^/   /' capi.brisk.out
echo "sqlite: OK"
