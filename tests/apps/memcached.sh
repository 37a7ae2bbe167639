#!/usr/bin/env bash
# apps.memcached: memcached -t 4 under brisk (see README.md).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

server=$(need memcached)
python=$(need_python)
apps_init memcached
cd "$work"

# memcached refuses to run as root without -u: drop to an unprivileged user.
user_opt=()
if [ "$(id -u)" -eq 0 ]; then
    if getent passwd memcache > /dev/null; then user_opt=(-u memcache); else user_opt=(-u nobody); fi
fi

memcached_ready() {
    "$python" -c 'import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
s.sendall(b"version\r\n")
sys.exit(0 if s.recv(100).startswith(b"VERSION") else 1)' "$1"
}
start_server memcached "$work/memcached.log" memcached_ready \
    env LD_PRELOAD="$BRISK_LIB_REAL" "$server" -p @PORT@ -U 0 -l 127.0.0.1 -t 4 -m 512 -c 1024 -v "${user_opt[@]}"
pid=$server_pid
note "memcached runs $(awk '/^Threads:/ {print $2}' "/proc/$pid/status") threads"
prove_brisk "$pid" memcached

# Our client: 8 concurrent connections, every value read back.
timeout 120 "$python" "$here/memcached_client.py" "$port" 8 || fail "the memcached workload failed"
note "memcached RSS $(($(rss_kib "$pid") / 1024)) MiB"

# memaslap (memcaslap in Debian's libmemcached-tools): a short mixed
# get/set load from 2 threads, 16 concurrent clients, 1% of gets verified.
slap=$(command -v memcaslap || command -v memaslap || true)
if [ -n "$slap" ]; then
    timeout 60 "$slap" -s "127.0.0.1:$port" -T 2 -c 16 -t 4s -v 0.01 > memaslap.log 2>&1 ||
        { cat memaslap.log >&2; fail "$(basename "$slap") failed"; }
    grep -qE '^Run time' memaslap.log || { cat memaslap.log >&2; fail "$(basename "$slap") printed no summary"; }
    grep -E '^(cmd_get|cmd_set|verify_failed|Run time)' memaslap.log | tr '\n' ' ' | sed 's/^/   /; s/ *$/\n/'
    # It checks 1% of the values it reads back: verify_misses and
    # verify_failed must be 0.
    if ! awk '/^(verify_misses|verify_failed):/ { n++; if ($2 != 0) bad = 1 } END { exit !(n == 2 && !bad) }' memaslap.log; then
        cat memaslap.log >&2
        fail "$(basename "$slap") reported failed verifications"
    fi
else
    note "memaslap/memcaslap not installed (apt-get install libmemcached-tools): skipping the memaslap load"
fi

# Our client once more: the server still serves correct data after memaslap.
timeout 120 "$python" "$here/memcached_client.py" "$port" 4 100 > second.log 2>&1 ||
    { cat second.log >&2; fail "the second memcached workload failed"; }
prove_brisk "$pid" memcached

# Clean stop: SIGTERM, exit status 0.
kill -TERM "$pid"
wait_gone "$pid" 30 || fail "memcached did not exit after SIGTERM"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 0 ] || fail "memcached exited with status $rc"
check_log memcached.log
echo "memcached: OK"
